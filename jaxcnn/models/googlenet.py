"""GoogLeNet (Inception v1), as torchvision builds it or as the paper did.

Szegedy et al. (2014), "Going deeper with convolutions". By default in torchvision's form so
that its weights convert exactly (jaxcnn.convert): every convolution is followed by batch norm
(epsilon 1e-3) and a ReLU and has no bias, the max-pools round their output size up
(PyTorch's ceil_mode) and the head is a global average pool, dropout 0.2 and one dense layer.
6,624,904 parameters for 1000 classes without the auxiliary classifiers, 13,004,888 with them.
Meant for 224x224x3; any input from 32x32 up works (the pools are global or adaptive).

Options:
  variant="torchvision"  the form above; "paper": the network of the paper (Table 1, section 5)
                    as BVLC's Caffe model bvlc_googlenet builds it, see below.
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
  dropout=None      before the classifier: the variant's, 0.2 (torchvision) or 0.4 (paper).

variant="paper": no batch norm, every convolution has a bias and is followed by a ReLU; local
response normalisation (size 5, alpha 1e-4, beta 0.75, Caffe's k = 1) after the first max-pool
and after the 3x3 convolution of conv2; the 5x5 convolutions (paper_5x5 is implied); every
max-pool 3x3 with stride 2 and rounded up as Caffe's (torchvision's last one is 2x2); the global
(at 224: 7x7) average pool, dropout 0.4 and the classifier. The auxiliary heads are section 5's:
a 5x5 average pool with stride 3 (14x14 -> 4x4 at 224), conv 128@1x1 + ReLU, dense 1024 + ReLU,
dropout 0.7, dense classes (the dense 1024's input, 4x4x128 at 224, follows the input size).
6,998,552 parameters for 1000 classes without the auxiliary heads, 13,378,280 with them (as
counted from bvlc_googlenet's train_val.prototxt). With the heads it needs inputs of at least 79x79 (a 5x5 map at inception 4a), without
them 32x32. Initialisation as bvlc_googlenet's train_val.prototxt: every weight Caffe's
"xavier", U(-sqrt(3 / fan_in), sqrt(3 / fan_in)); biases 0.2, the three classifiers' 0.

torchvision's initialisation as its init_weights=True: conv and dense weights N(0, 0.01^2)
(truncated at +-2, i.e. 200 standard deviations: never), dense biases PyTorch's default,
batch norm scale 1 and bias 0. Parameter names mirror torchvision's modules (a Sequential's
index joins its name with "_": inception3a.branch2.1 is inception3a/branch2_1).
"""
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import register
from jaxcnn.models.batch_norm import BatchNorm
from jaxcnn.models.layers import (LocalResponseNorm, adaptive_avg_pool, flatten,
                                  torch_default_bias_init)

ModuleDef = Any
VARIANTS = ("torchvision", "paper")

# Caffe's "xavier" filler as bvlc_googlenet uses it (variance_norm FAN_IN, its default):
# U(-sqrt(3 / fan_in), sqrt(3 / fan_in)), not Glorot's average of fan-in and fan-out.
caffe_xavier = nn.initializers.variance_scaling(1.0, "fan_in", "uniform")


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


class CaffeConv(nn.Module):
  """The paper's convolution (bvlc_googlenet): conv with a bias of 0.2, ReLU; no batch norm.

  `train` is accepted so that it is called as BasicConv is."""
  features: int
  kernel: tuple[int, int] = (1, 1)
  stride: int = 1
  padding: tuple[int, int] = (0, 0)
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    ph, pw = self.padding
    x = self.conv(self.features, self.kernel, strides=self.stride,
                  padding=((ph, ph), (pw, pw)), dtype=self.dtype, kernel_init=caffe_xavier,
                  bias_init=nn.initializers.constant(0.2), name="conv")(x)
    return nn.relu(x)


def conv_unit(variant: str, features: int, k: int, *, name: str, stride: int = 1,
              bn_axis_name=None, dtype=jnp.float32, conv=nn.Conv, norm=BatchNorm):
  """A k x k convolution padded by k // 2, in `variant`'s form: BasicConv or CaffeConv."""
  padding = (k // 2, k // 2)
  if variant == "paper":
    return CaffeConv(features, (k, k), stride, padding, dtype=dtype, conv=conv, name=name)
  return BasicConv(features, (k, k), stride, padding, bn_axis_name=bn_axis_name, dtype=dtype,
                   conv=conv, norm=norm, name=name)


def caffe_lrn(name: str) -> LocalResponseNorm:
  """bvlc_googlenet's LRN layers. Caffe divides alpha by the window size as PyTorch does, with
  k = 1 where AlexNet's paper has 2: LocalResponseNorm with k=1 computes Caffe's."""
  return LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0, name=name)


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
  variant: str = "torchvision"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    def conv(features, k, name):
      return conv_unit(self.variant, features, k, bn_axis_name=self.bn_axis_name,
                       dtype=self.dtype, conv=self.conv, norm=self.norm, name=name)

    paper_5x5 = self.paper_5x5 or self.variant == "paper"
    b1 = conv(self.ch1x1, 1, "branch1")(x, train)
    b2 = conv(self.ch3x3red, 1, "branch2_0")(x, train)
    b2 = conv(self.ch3x3, 3, "branch2_1")(b2, train)
    b3 = conv(self.ch5x5red, 1, "branch3_0")(x, train)
    b3 = conv(self.ch5x5, 5 if paper_5x5 else 3, "branch3_1")(b3, train)
    b4 = conv(self.pool_proj, 1, "branch4_1")(max_pool_ceil(x, 3, 1, 1), train)
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class InceptionAux(nn.Module):
  """Auxiliary classifier: average pool to 4x4 (torchvision: adaptive; the paper: 5x5 with
  stride 3), conv 128@1x1, dense 1024, dropout, dense classes."""
  num_classes: int
  dropout: float = 0.7
  variant: str = "torchvision"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    paper = self.variant == "paper"
    if paper:
      if x.shape[1] < 5 or x.shape[2] < 5:
        raise ValueError(
            f"googlenet (variant='paper') needs inputs of at least 79x79 for its auxiliary "
            f"heads: {self.name}'s 5x5 pool got a {x.shape[1]}x{x.shape[2]} map. Use larger "
            f"inputs or aux_logits=False.")
      # VALID: at 224 (a 14x14 map) the same 4x4 as Caffe's rounded-up pool.
      x = nn.avg_pool(x, (5, 5), strides=(3, 3), padding="VALID")
    else:
      x = adaptive_avg_pool(x, (4, 4))
    x = conv_unit(self.variant, 128, 1, bn_axis_name=self.bn_axis_name, dtype=self.dtype,
                  conv=self.conv, norm=self.norm, name="conv")(x, train)
    x = flatten(x)  # (H, W, C) order; the converter permutes torchvision's (C, H, W) rows
    if paper:
      fc1 = nn.Dense(1024, dtype=self.dtype, kernel_init=caffe_xavier,
                     bias_init=nn.initializers.constant(0.2), name="fc1")
      fc2 = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=caffe_xavier, name="fc2")
    else:
      fc1 = torch_dense(1024, 2048, 0.01, self.dtype, "fc1")
      fc2 = torch_dense(self.num_classes, 1024, 0.01, self.dtype, "fc2")
    x = nn.relu(fc1(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return fc2(x)


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
  """GoogLeNet, torchvision's (batch norm) or the paper's (variant="paper", LRN); see the
  module docstring for the options."""
  num_classes: int = 1000
  variant: str = "torchvision"
  aux_logits: bool = True
  paper_5x5: bool = False
  transform_input: bool = False
  dropout: float | None = None  # None: the variant's
  dropout_aux: float = 0.7
  bn_axis_name: str | None = None  # synchronised batch norm (set by the training loop)
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.variant not in VARIANTS:
      raise ValueError(f"googlenet's variant must be one of {', '.join(VARIANTS)}, "
                       f"not {self.variant!r}.")
    paper = self.variant == "paper"
    x = x.astype(self.dtype)
    if self.transform_input:
      x = transform_imagenet_input(x)
    layers = dict(variant=self.variant, bn_axis_name=self.bn_axis_name, dtype=self.dtype,
                  conv=self.conv, norm=self.norm)

    def conv(features, k, name, stride=1):
      return conv_unit(features=features, k=k, stride=stride, name=name, **layers)

    def block(name):
      return Inception(*BLOCKS[name], paper_5x5=self.paper_5x5, **layers, name=name)

    def aux_head(name):
      return InceptionAux(self.num_classes, self.dropout_aux, **layers, name=name)

    # The auxiliary heads also run while initialising, so that an eval-mode init (as
    # create_train_state does) creates their parameters for training.
    run_aux = self.aux_logits and (train or self.is_initializing())

    x = conv(64, 7, "conv1", stride=2)(x, train)
    x = max_pool_ceil(x, 3, 2)
    if paper:
      x = caffe_lrn("norm1")(x)
    x = conv(64, 1, "conv2")(x, train)
    x = conv(192, 3, "conv3")(x, train)
    if paper:
      x = caffe_lrn("norm2")(x)
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
    x = max_pool_ceil(x, 3, 2) if paper else max_pool_ceil(x, 2, 2)
    x = block("inception5a")(x, train)
    x = block("inception5b")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    dropout = self.dropout if self.dropout is not None else (0.4 if paper else 0.2)
    x = nn.Dropout(dropout, deterministic=not train)(x)
    if paper:
      fc = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=caffe_xavier, name="fc")
    else:
      fc = torch_dense(self.num_classes, 1024, 0.01, self.dtype, "fc")
    logits = fc(x)
    if train and self.aux_logits:
      return logits, (aux1, aux2)
    return logits
