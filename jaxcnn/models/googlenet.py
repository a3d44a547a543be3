"""GoogLeNet (Inception v1), as torchvision builds it.

Szegedy et al. (2014), "Going deeper with convolutions", in torchvision's form so that its
weights convert exactly (jaxcnn.convert): every convolution is followed by batch norm
(epsilon 1e-3) and a ReLU and has no bias, the max-pools round their output size up
(PyTorch's ceil_mode) and the head is a global average pool, dropout 0.2 and one dense layer.
6,624,904 parameters for 1000 classes without the auxiliary classifiers, 13,004,888 with them.
Meant for 224x224x3; any input from 32x32 up works (the pools are global or adaptive).

Options:
  aux_logits=True   the two auxiliary classifiers on inception 4a and 4d (adaptive average
                    pool to 4x4, conv 128@1x1, dense 1024, dropout 0.7, dense classes). In
                    training the network returns (logits, (aux1, aux2)), which the train step
                    weights by config.aux_loss_weight (the paper's 0.3); at evaluation plain
                    logits. Their parameters exist in either mode. False: no auxiliary heads
                    (torchvision's pretrained checkpoint has none).
  paper_5x5=False   torchvision's inception blocks use a 3x3 convolution in the branch the
                    paper gives a 5x5 (a slip it keeps for its pretrained weights); True uses
                    the paper's 5x5 (7,005,832 parameters for 1000 classes without the
                    auxiliary classifiers; torchvision weights no longer convert).
  transform_input=False  torchvision's pretrained weights expect inputs scaled as
                    (x - 0.5) / 0.5; True re-maps ImageNet-normalised inputs to that, as
                    torchvision does when it loads those weights.

Initialisation as torchvision's init_weights=True: conv and dense weights N(0, 0.01^2)
(truncated at +-2, i.e. 200 standard deviations: never), dense biases PyTorch's default,
batch norm scale 1 and bias 0. Parameter names mirror torchvision's modules (a Sequential's
index joins its name with "_": inception3a.branch2.1 is inception3a/branch2_1).
"""
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import register
from jaxcnn.models.batch_norm import BatchNorm
from jaxcnn.models.layers import adaptive_avg_pool, flatten, torch_default_bias_init

ModuleDef = Any


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: bias-free conv, batch norm (epsilon 1e-3), ReLU."""
  features: int
  kernel: tuple[int, int] = (1, 1)
  stride: int = 1
  padding: tuple[int, int] = (0, 0)
  std: float = 0.01  # the weight's initial standard deviation
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    ph, pw = self.padding
    x = self.conv(self.features, self.kernel, strides=self.stride,
                  padding=((ph, ph), (pw, pw)), use_bias=False, dtype=self.dtype,
                  kernel_init=nn.initializers.normal(self.std), name="conv")(x)
    # PyTorch's momentum 0.1 is flax's 0.9.
    x = self.norm(use_running_average=not train, momentum=0.9, epsilon=1e-3,
                  dtype=self.dtype, axis_name=self.bn_axis_name, name="bn")(x)
    return nn.relu(x)


def _ceil_pool_size(size: int, window: int, stride: int, pad: int) -> int:
  """PyTorch's pooled size with ceil_mode=True: rounded up, but no window may start in the
  right-hand padding."""
  out = -(-(size + 2 * pad - window) // stride) + 1
  if (out - 1) * stride >= size + pad:
    out -= 1
  return out


def max_pool_ceil(x, window: int, stride: int, pad: int = 0):
  """nn.MaxPool2d(window, stride, pad, ceil_mode=True) on NHWC.

  Rounding up lets the last window hang over the bottom/right edge: that side gets the extra
  padding. flax's max_pool pads with -inf, so padded cells never win.
  """
  pads = []
  for size in x.shape[1:3]:
    out = _ceil_pool_size(size, window, stride, pad)
    pads.append((pad, max(0, (out - 1) * stride + window - size - pad)))
  return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pads)


def transform_imagenet_input(x):
  """torchvision's transform_input: an ImageNet-normalised input to (x - 0.5) / 0.5."""
  mean = jnp.array([0.485, 0.456, 0.406], x.dtype)
  std = jnp.array([0.229, 0.224, 0.225], x.dtype)
  return x * (std / 0.5) + (mean - 0.5) / 0.5


def torch_dense(features: int, fan_in: int, std: float, dtype, name: str) -> nn.Dense:
  """A dense layer with N(0, std^2) weights and PyTorch's default bias."""
  return nn.Dense(features, dtype=dtype, kernel_init=nn.initializers.normal(std),
                  bias_init=torch_default_bias_init(fan_in), name=name)


class Inception(nn.Module):
  """Four branches concatenated: 1x1 | 1x1-3x3 | 1x1-3x3 (5x5 in the paper) |
  3x3 max-pool (stride 1)-1x1."""
  ch1x1: int
  ch3x3red: int
  ch3x3: int
  ch5x5red: int
  ch5x5: int
  pool_proj: int
  paper_5x5: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    def conv(features, k, name):
      return BasicConv(features, (k, k), padding=(k // 2, k // 2),
                       bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                       norm=self.norm, name=name)

    b1 = conv(self.ch1x1, 1, "branch1")(x, train)
    b2 = conv(self.ch3x3red, 1, "branch2_0")(x, train)
    b2 = conv(self.ch3x3, 3, "branch2_1")(b2, train)
    b3 = conv(self.ch5x5red, 1, "branch3_0")(x, train)
    b3 = conv(self.ch5x5, 5 if self.paper_5x5 else 3, "branch3_1")(b3, train)
    b4 = conv(self.pool_proj, 1, "branch4_1")(max_pool_ceil(x, 3, 1, 1), train)
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class InceptionAux(nn.Module):
  """Auxiliary classifier: 4x4 adaptive average pool, conv 128@1x1, dense 1024, dropout,
  dense classes."""
  num_classes: int
  dropout: float = 0.7
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = adaptive_avg_pool(x, (4, 4))
    x = BasicConv(128, bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                  norm=self.norm, name="conv")(x, train)
    x = flatten(x)  # (H, W, C) order; the converter permutes torchvision's (C, H, W) rows
    x = nn.relu(torch_dense(1024, 2048, 0.01, self.dtype, "fc1")(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return torch_dense(self.num_classes, 1024, 0.01, self.dtype, "fc2")(x)


# (ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj): Table 1 of the paper.
BLOCKS = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


@register("googlenet")
class GoogLeNet(nn.Module):
  """GoogLeNet with batch norm (torchvision); see the module docstring for the options."""
  num_classes: int = 1000
  aux_logits: bool = True
  paper_5x5: bool = False
  transform_input: bool = False
  dropout: float = 0.2
  dropout_aux: float = 0.7
  bn_axis_name: str | None = None  # synchronised batch norm (set by the training loop)
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    if self.transform_input:
      x = transform_imagenet_input(x)
    layers = dict(bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                  norm=self.norm)

    def conv(features, k, name, stride=1):
      return BasicConv(features, (k, k), stride=stride, padding=(k // 2, k // 2), **layers,
                       name=name)

    def block(name):
      return Inception(*BLOCKS[name], paper_5x5=self.paper_5x5, **layers, name=name)

    def aux_head(name):
      return InceptionAux(self.num_classes, self.dropout_aux, **layers, name=name)

    # The auxiliary heads also run while initialising, so that an eval-mode init (as
    # create_train_state does) creates their parameters for training.
    run_aux = self.aux_logits and (train or self.is_initializing())

    x = conv(64, 7, "conv1", stride=2)(x, train)
    x = max_pool_ceil(x, 3, 2)
    x = conv(64, 1, "conv2")(x, train)
    x = conv(192, 3, "conv3")(x, train)
    x = max_pool_ceil(x, 3, 2)
    x = block("inception3a")(x, train)
    x = block("inception3b")(x, train)
    x = max_pool_ceil(x, 3, 2)
    x = block("inception4a")(x, train)
    aux1 = aux_head("aux1")(x, train) if run_aux else None
    x = block("inception4b")(x, train)
    x = block("inception4c")(x, train)
    x = block("inception4d")(x, train)
    aux2 = aux_head("aux2")(x, train) if run_aux else None
    x = block("inception4e")(x, train)
    x = max_pool_ceil(x, 2, 2)
    x = block("inception5a")(x, train)
    x = block("inception5b")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    logits = torch_dense(self.num_classes, 1024, 0.01, self.dtype, "fc")(x)
    if train and self.aux_logits:
      return logits, (aux1, aux2)
    return logits
