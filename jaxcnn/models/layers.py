"""The few pieces shared by several model families: initialisers, batch norm, LRN, pooling."""
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn


# PyTorch's default for nn.Linear / nn.Conv2d: kaiming_uniform(a=sqrt(5)), i.e.
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight. The seeds' networks are trained
# with it, and for sigmoid networks (d2l's LeNet) the initial scale shapes the curve.
torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in: int):
  """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); flax has no fan-in bias init."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def constant_init(value: float):
  """Every entry `value` (AlexNet's bias 1 in some layers)."""
  return nn.initializers.constant(value)


# He et al. (2015), as torchvision's kaiming_normal_(mode="fan_out", nonlinearity="relu"):
# N(0, 2 / (k*k*out_channels)); a plain (untruncated) normal as in PyTorch.
kaiming_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def batch_norm(norm, train: bool, dtype, name: str, axis_name: str | None = None,
               scale_init=nn.initializers.ones) -> nn.Module:
  """`norm` (a family's BatchNorm field) with PyTorch's defaults: momentum 0.1 there is 0.9
  here, epsilon 1e-5."""
  return norm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
              axis_name=axis_name, scale_init=scale_init, name=name)


class LocalResponseNorm(nn.Module):
  """Local response normalisation across channels (AlexNet, section 3.3), NHWC.

  Computed as PyTorch's nn.LocalResponseNorm does, so converted models agree:
      b_c = a_c / (k + alpha / n * sum_{c' in window(c)} a_c'^2) ** beta
  with the window c - n//2 .. c + (n-1)//2 clipped at the edges (the average over a
  zero-padded window). Note alpha is divided by n; the paper's formula has no 1/n.
  """
  size: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  k: float = 2.0

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    squared = jnp.pad(jnp.square(x.astype(jnp.float32)),
                      [(0, 0)] * (x.ndim - 1) + [(self.size // 2, (self.size - 1) // 2)])
    window_sum = sum(squared[..., i:i + channels] for i in range(self.size))
    div = (self.k + self.alpha / self.size * window_sum) ** self.beta
    return (x / div).astype(x.dtype)


def _adaptive_pool_1d(x, axis: int, out: int):
  size = x.shape[axis]
  if size == out:
    return x
  if size % out == 0:  # equal bins: one reshape
    shape = x.shape[:axis] + (out, size // out) + x.shape[axis + 1:]
    return x.reshape(shape).mean(axis=axis + 1)
  # PyTorch's bins: [floor(i*size/out), ceil((i+1)*size/out)); they overlap or repeat.
  bins = [jax.lax.slice_in_dim(x, (i * size) // out, -(-(i + 1) * size // out), axis=axis)
          .mean(axis=axis, keepdims=True) for i in range(out)]
  return jnp.concatenate(bins, axis=axis)


def adaptive_avg_pool(x, output_size: tuple[int, int]):
  """PyTorch's AdaptiveAvgPool2d on NHWC: any input size to `output_size` (H, W)."""
  x = _adaptive_pool_1d(x, 1, output_size[0])
  return _adaptive_pool_1d(x, 2, output_size[1])


def flatten(x):
  return x.reshape((x.shape[0], -1))


class WindowDense(nn.Module):
  """A dense layer over a flattened (h, w, C) window, applied at every position of a map.

  Its parameters are nn.Dense's on `flatten` of the window (kernel [h * w * C, features],
  bias [features]), so a network trained with nn.Dense loads unchanged: this is the
  fully connected layer "converted to a convolutional layer" of VGG's dense evaluation
  (Simonyan & Zisserman, sec. 3.2). A map of exactly the window gives nn.Dense's output in
  a [N, 1, 1, features] map. flax has no such layer: nn.Conv's kernel has another shape.
  """
  features: int
  window: tuple[int, int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h, w = self.window
    c = x.shape[-1]
    if x.shape[1] < h or x.shape[2] < w:
      raise ValueError(f"A {x.shape[1]}x{x.shape[2]} map is smaller than the {h}x{w} window "
                       f"of the dense layer {self.name}: evaluate at a larger scale.")
    # Initialisers are irrelevant: the layer is only applied to trained parameters.
    kernel = self.param("kernel", nn.initializers.zeros, (h * w * c, self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = jax.lax.conv_general_dilated(x, kernel.reshape(h, w, c, self.features), (1, 1),
                                     "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def accepting_init_option(cls, choices: tuple[str, ...]):
  """A factory for `cls` that takes the option `init=` as the field `init_scheme`.

  A flax Module cannot have a field called `init` (it would hide Module.init), but `init` is
  the natural name in a config's model_options: {"init": "paper"}. An unknown scheme is a
  TypeError, which models.create reports as a bad option.
  """

  def make(*, init: str | None = None, **options):
    if init is not None:
      options["init_scheme"] = init
    scheme = options.get("init_scheme")
    if scheme is not None and scheme not in choices:
      raise TypeError(f"init must be one of {', '.join(choices)}, not {scheme!r}")
    return cls(**options)

  make.__name__ = make.__qualname__ = cls.__name__
  return make


def max_pool_2x2(x):
  """2x2 max-pool with stride 2, floor mode (PyTorch's MaxPool2d(2, 2), flax's VALID pool).

  The families that use it take it as a field (`max_pool_2x2`), so that a platform can give
  them its own formulation of the same values (jaxcnn.cpu.pooling).
  """
  return nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
