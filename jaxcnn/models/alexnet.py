"""AlexNet.

`alexnet`: torchvision's single-tower AlexNet (the "one weird trick" layout, 64-192-384-256-256
channels), 61,100,840 parameters for 1000 classes; an adaptive average pool brings the
features to 6x6 as torchvision does, so inputs from 63x63 up work. Options:
  lrn=True     the paper's local response normalisation after the ReLUs of conv1 and conv2
               (k=2, n=5, alpha=1e-4, beta=0.75; computed as PyTorch's LocalResponseNorm).
  init="torch" PyTorch's default initialisation, which torchvision's AlexNet keeps;
  init="paper" Krizhevsky et al. section 5: weights N(0, 0.01^2); biases 1 in conv2, conv4,
               conv5 and the hidden dense layers, 0 in conv1, conv3 and the output layer.

`alexnet_d2l`: the first seed document's simplified AlexNet for Fashion-MNIST resized to
224x224x1: conv 96@11 stride 4, max-pool 3/2, conv 256@5 pad 2, max-pool, convs
384-384-256 @3 pad 1, max-pool, dense 4096-4096 with dropout 0.5, classes; PyTorch's
default initialisation. 46,764,746 parameters for 10 classes.
"""
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import register
from jaxcnn.models.conv import Conv
from jaxcnn.models.layers import (LocalResponseNorm, accepting_init_option, adaptive_avg_pool,
                                  flatten, torch_default_bias_init, torch_default_kernel_init)

# Layers whose bias the paper initialises to 1 ("to accelerate the early stages of learning
# by providing the ReLUs with positive inputs").
_PAPER_BIAS_ONE = {"conv2", "conv4", "conv5", "fc1", "fc2"}


def _inits(init: str, name: str, fan_in: int):
  if init == "torch":
    return torch_default_kernel_init, torch_default_bias_init(fan_in)
  if init == "paper":
    bias = 1.0 if name in _PAPER_BIAS_ONE else 0.0
    return nn.initializers.normal(0.01), nn.initializers.constant(bias)
  raise ValueError(f"init must be 'torch' or 'paper', not {init!r}.")


def _max_pool(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


class _Head(nn.Module):
  """Dense 4096-4096-classes with ReLUs and dropout 0.5: torchvision drops the inputs of the
  two hidden dense layers, d2l (and the paper) their outputs."""
  num_classes: int
  init_scheme: str
  dropout_first: bool
  dtype: Any

  @nn.compact
  def __call__(self, x, train: bool):
    def dense(features, name, fan_in):
      kernel_init, bias_init = _inits(self.init_scheme, name, fan_in)
      return nn.Dense(features, dtype=self.dtype, kernel_init=kernel_init, bias_init=bias_init,
                      name=name)

    drop = lambda y: nn.Dropout(0.5, deterministic=not train)(y)  # noqa: E731
    for i in (1, 2):
      if self.dropout_first:
        x = drop(x)
      x = nn.relu(dense(4096, f"fc{i}", x.shape[-1])(x))
      if not self.dropout_first:
        x = drop(x)
    return dense(self.num_classes, "fc3", 4096)(x)


class AlexNet(nn.Module):
  """torchvision's AlexNet, optionally with the paper's LRN and initialisation."""
  num_classes: int = 1000
  lrn: bool = False
  init_scheme: str = "torch"  # the option init=...
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    # (features, kernel, stride, padding, max-pool after, LRN after)
    specs = [(64, 11, 4, 2, True, True), (192, 5, 1, 2, True, True),
             (384, 3, 1, 1, False, False), (256, 3, 1, 1, False, False),
             (256, 3, 1, 1, True, False)]
    for i, (features, kernel, stride, pad, pool, lrn) in enumerate(specs, 1):
      name = f"conv{i}"
      kernel_init, bias_init = _inits(self.init_scheme, name, x.shape[-1] * kernel * kernel)
      x = Conv(features, (kernel, kernel), strides=(stride, stride),
               padding=((pad, pad), (pad, pad)), dtype=self.dtype,
               kernel_init=kernel_init, bias_init=bias_init, name=name)(x)
      x = nn.relu(x)
      if lrn and self.lrn:
        x = LocalResponseNorm(name=f"lrn{i}")(x)
      if pool:
        x = _max_pool(x)
    x = flatten(adaptive_avg_pool(x, (6, 6)))
    return _Head(self.num_classes, self.init_scheme, True, self.dtype, name="classifier")(x, train)


register("alexnet", input_shape=(224, 224, 3))(accepting_init_option(AlexNet, ("torch", "paper")))


@register("alexnet_d2l", input_shape=(224, 224, 1))
class AlexNetD2L(nn.Module):
  """The seed's AlexNet for 224x224 Fashion-MNIST (one input channel, 10 classes)."""
  num_classes: int = 10
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    specs = [(96, 11, 4, 0, True), (256, 5, 1, 2, True), (384, 3, 1, 1, False),
             (384, 3, 1, 1, False), (256, 3, 1, 1, True)]
    for i, (features, kernel, stride, pad, pool) in enumerate(specs, 1):
      x = Conv(features, (kernel, kernel), strides=(stride, stride),
               padding=((pad, pad), (pad, pad)), dtype=self.dtype,
               kernel_init=torch_default_kernel_init,
               bias_init=torch_default_bias_init(x.shape[-1] * kernel * kernel),
               name=f"conv{i}")(x)
      x = nn.relu(x)
      if pool:
        x = _max_pool(x)
    return _Head(self.num_classes, "torch", False, self.dtype, name="classifier")(
        flatten(x), train)
