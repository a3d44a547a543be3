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

`alexnet_keras`: seed 003's Keras AlexNet for the 17-category flowers, 224x224x3: conv
96@11x11/4, conv 256@5x5, 2x2/2 max-pool, conv 384@3x3, 2x2/2 max-pool, convs 384@3x3 and
256@3x3, 2x2/2 max-pool, flatten (7x7x256), dense 4096-4096 with dropout 0.5 after each,
classes; ReLU; every conv Keras's "same" padding; Keras's initialisers (Glorot-uniform
kernels, zero biases). The paper's channels and dense layers, in one tower and without LRN,
but unlike the paper (whose text the seed summarises): every conv "same" (the seed's table
copies the paper's 55x55 after conv1, its code gives 56x56), 2x2/2 non-overlapping max-pools
(the paper's overlap, 3x3/2) after conv2, conv3 and conv5 (the paper's after conv1, conv2
and conv5), hence a 7x7x256 map before the dense layers (6x6x256 in the paper). The first
dense layer's size depends on the input, as in the seed's Keras model; inputs from 29x29
work (a 1x1 map). 71,982,481 parameters for 17 classes (Keras's model.summary() has no
non-trainable ones), 76,009,832 for 1000.
"""
from typing import Any, Callable

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import layers, register
from jaxcnn.models.layers import (LocalResponseNorm, WindowDense, accepting_init_option,
                                  adaptive_avg_pool, flatten, torch_default_bias_init,
                                  torch_default_kernel_init)

ModuleDef = Any

# Layers whose bias the paper initialises to 1 ("to accelerate the early stages of learning
# by providing the ReLUs with positive inputs").
_PAPER_BIAS_ONE = {"conv2", "conv4", "conv5", "fc1", "fc2"}


def _inits(init: str, name: str, fan_in: int):
  if init == "torch":
    return torch_default_kernel_init, torch_default_bias_init(fan_in)
  if init == "paper":
    bias = 1.0 if name in _PAPER_BIAS_ONE else 0.0
    return nn.initializers.normal(0.01), nn.initializers.constant(bias)
  if init == "keras":  # Conv2D's and Dense's defaults
    return nn.initializers.glorot_uniform(), nn.initializers.zeros
  raise ValueError(f"init must be 'torch', 'paper' or 'keras', not {init!r}.")


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


class _DenseHead(nn.Module):
  """torchvision AlexNet's _Head at evaluation, its dense layers applied as convolutions
  (fc1 over 6x6 windows), the class score map averaged spatially. A map smaller than 6x6 is
  first brought to it by the adaptive pool, as in the ordinary pass."""
  num_classes: int
  dtype: Any

  @nn.compact
  def __call__(self, x):
    if x.shape[1] < 6 or x.shape[2] < 6:
      x = adaptive_avg_pool(x, (max(6, x.shape[1]), max(6, x.shape[2])))
    x = nn.relu(WindowDense(4096, (6, 6), self.dtype, name="fc1")(x))
    x = nn.relu(WindowDense(4096, (1, 1), self.dtype, name="fc2")(x))
    x = WindowDense(self.num_classes, (1, 1), self.dtype, name="fc3")(x)
    return jnp.mean(x, axis=(1, 2))


class AlexNet(nn.Module):
  """torchvision's AlexNet, optionally with the paper's LRN and initialisation."""
  num_classes: int = 1000
  lrn: bool = False
  init_scheme: str = "torch"  # the option init=...
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, train: bool = False, dense: bool = False):
    """`dense`: the dense layers applied as convolutions over the whole map (fc1 over 6x6
    windows, as after the adaptive pool), the class scores averaged over the positions
    (VGG's dense evaluation); a 224x224 input gives the ordinary output."""
    x = x.astype(self.dtype)
    # (features, kernel, stride, padding, max-pool after, LRN after)
    specs = [(64, 11, 4, 2, True, True), (192, 5, 1, 2, True, True),
             (384, 3, 1, 1, False, False), (256, 3, 1, 1, False, False),
             (256, 3, 1, 1, True, False)]
    for i, (features, kernel, stride, pad, pool, lrn) in enumerate(specs, 1):
      name = f"conv{i}"
      kernel_init, bias_init = _inits(self.init_scheme, name, x.shape[-1] * kernel * kernel)
      x = self.conv(features, (kernel, kernel), strides=(stride, stride),
                    padding=((pad, pad), (pad, pad)), dtype=self.dtype,
                    kernel_init=kernel_init, bias_init=bias_init, name=name)(x)
      x = nn.relu(x)
      if lrn and self.lrn:
        x = LocalResponseNorm(name=f"lrn{i}")(x)
      if pool:
        x = _max_pool(x)
    if dense:
      return _DenseHead(self.num_classes, self.dtype, name="classifier")(x)
    x = flatten(adaptive_avg_pool(x, (6, 6)))
    return _Head(self.num_classes, self.init_scheme, True, self.dtype, name="classifier")(x, train)


register("alexnet")(accepting_init_option(AlexNet, ("torch", "paper")))


@register("alexnet_d2l")
class AlexNetD2L(nn.Module):
  """The seed's AlexNet for 224x224 Fashion-MNIST (one input channel, 10 classes)."""
  num_classes: int = 10
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    specs = [(96, 11, 4, 0, True), (256, 5, 1, 2, True), (384, 3, 1, 1, False),
             (384, 3, 1, 1, False), (256, 3, 1, 1, True)]
    for i, (features, kernel, stride, pad, pool) in enumerate(specs, 1):
      x = self.conv(features, (kernel, kernel), strides=(stride, stride),
                    padding=((pad, pad), (pad, pad)), dtype=self.dtype,
                    kernel_init=torch_default_kernel_init,
                    bias_init=torch_default_bias_init(x.shape[-1] * kernel * kernel),
                    name=f"conv{i}")(x)
      x = nn.relu(x)
      if pool:
        x = _max_pool(x)
    return _Head(self.num_classes, "torch", False, self.dtype, name="classifier")(
        flatten(x), train)


@register("alexnet_keras")
class AlexNetKeras(nn.Module):
  """Seed 003's Keras AlexNet (the module docstring); 17 classes in the seed."""
  num_classes: int = 1000
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  max_pool_2x2: Callable = layers.max_pool_2x2

  @nn.compact
  def __call__(self, x, train: bool = False):
    height, width = x.shape[1:3]
    x = x.astype(self.dtype)
    kernel_init, bias_init = _inits("keras", "", 0)
    # (features, kernel, stride, 2x2/2 max-pool after)
    specs = [(96, 11, 4, False), (256, 5, 1, True), (384, 3, 1, True), (384, 3, 1, False),
             (256, 3, 1, True)]
    for i, (features, kernel, stride, pool) in enumerate(specs, 1):
      x = nn.relu(self.conv(features, (kernel, kernel), strides=(stride, stride),
                            padding="SAME", dtype=self.dtype, kernel_init=kernel_init,
                            bias_init=bias_init, name=f"conv{i}")(x))
      if pool:
        x = self.max_pool_2x2(x)  # Keras's MaxPool2D(2, 2): "valid", floor
    if not x.shape[1] or not x.shape[2]:
      # An empty map would give a dense layer with no inputs, not an error.
      raise ValueError(f"alexnet_keras needs inputs of at least 29x29, not {height}x{width}.")
    return _Head(self.num_classes, "keras", False, self.dtype, name="classifier")(
        flatten(x), train)
