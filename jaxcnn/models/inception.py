"""Inception-v2 (BN-Inception) as seed document 003 builds it, and torchvision's Inception-v3.

`inception_v2`: the Keras network of seed 003 (oxflower17, Inception-V2), layer for layer.
Every convolution has a bias and is followed by ReLU and *then* batch norm (the seed's
Conv2D_BN; Keras's BatchNormalization: momentum 0.99, epsilon 1e-3); padding is Keras's
"same" throughout (TensorFlow's: the odd extra row and column go at the bottom and right),
and its "same" average pool leaves the padding out of the average.
    conv 64@7x7/2, max-pool 3x3/2, conv 64@1x1, conv 192@3x3, max-pool 3x3/2      28x28x192
    two blocks of four branches (1x1 | 1x1-3x3 | 1x1-3x3-3x3 | 3x3 avg-pool-1x1),
    a reduction (1x1-3x3/2 | 1x1-3x3-3x3/2 | 3x3/2 max-pool)                    14x14x576
    four blocks, a reduction                                                     7x7x1024
    a block, a block whose pool branch is a 3x3 max-pool                         7x7x1024
    7x7 average pool (stride 1, no padding), flatten, dense classes.
Keras's initialisers: Glorot-uniform weights, zero biases. Both 3x3 convs of a block's
double branch have the same width, as in the seed's code. There is no dropout and no
auxiliary classifier. Meant for 224x224x3 (193 to 224 give the 7x7 map the final pool
expects). Parameters for 1000 classes: 11,295,240 trainable (flax's `params`); Keras's
model.summary() also counts the batch norm moving means and variances (here `batch_stats`,
20,032), 11,315,272 in all. For the seed's 17 classes: 10,287,665 trainable, 10,307,697 in
all. tests/test_models_zoo_b.py builds the seed's code in Keras and compares outputs.

`inception_v3`: Szegedy et al. (2015), "Rethinking the Inception architecture for computer
vision", in torchvision's form so that its weights convert exactly: conv (no bias), batch
norm epsilon 1e-3, ReLU; the auxiliary classifier on Mixed_6e (5x5/3 average pool, conv
128@1x1, conv 768@5x5, global average pool, dense classes); dropout 0.5 before the final
dense layer. 27,161,264 parameters for 1000 classes with the auxiliary classifier (option
aux_logits=True, the default), 23,834,568 without. Meant for 299x299x3; the auxiliary
classifier needs at least a 17x17 map at Mixed_6e (inputs of at least 297x297); without it
inputs from 75x75 work. In training it returns (logits, (aux,)), at evaluation
plain logits. Initialisation as torchvision: weights N(0, 0.1^2) (the auxiliary conv1
0.01^2, its dense 0.001^2), dense biases PyTorch's default, batch norm 1 and 0.
transform_input=True re-maps ImageNet-normalised inputs as torchvision's pretrained weights
expect. Parameter names mirror torchvision's modules.
"""
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import register
from jaxcnn.models.batch_norm import BatchNorm
from jaxcnn.models.googlenet import BasicConv, transform_imagenet_input
from jaxcnn.models.layers import flatten, torch_default_bias_init

ModuleDef = Any

# ---------------------------------------------------------------------------------------
# Inception-v2, seed document 003 (Keras).

_glorot = nn.initializers.glorot_uniform()


class ConvBN(nn.Module):
  """The seed's Conv2D_BN: conv with bias ("same" padding), ReLU, then batch norm."""
  features: int
  kernel: int
  stride: int = 1
  bn_momentum: float = 0.99
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = self.conv(self.features, (self.kernel, self.kernel), strides=self.stride,
                  padding="SAME", dtype=self.dtype, kernel_init=_glorot, name="conv")(x)
    x = nn.relu(x)
    return self.norm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-3,
                     dtype=self.dtype, axis_name=self.bn_axis_name, name="bn")(x)


class _V2Module(nn.Module):
  """Shared fields of the v2 blocks."""
  bn_momentum: float = 0.99
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  def conv_bn(self, features, kernel, stride, name):
    return ConvBN(features, kernel, stride, bn_momentum=self.bn_momentum,
                  bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                  norm=self.norm, name=name)


class InceptionV2Block(_V2Module):
  """The seed's InceptionBlock_1 (pool="avg") and InceptionBlock_3 (pool="max"):
  1x1 | 1x1-3x3 | 1x1-3x3-3x3 | 3x3 pool (stride 1)-1x1."""
  channels: tuple[int, ...] = ()  # 1x1, 3x3 reduce, 3x3, double reduce, double, pool proj
  pool: str = "avg"

  @nn.compact
  def __call__(self, x, train: bool = False):
    ch1x1, ch3x3red, ch3x3, dbl_red, dbl, pool_proj = self.channels
    b1 = self.conv_bn(ch1x1, 1, 1, "branch1x1")(x, train)
    b2 = self.conv_bn(ch3x3red, 1, 1, "branch3x3_1")(x, train)
    b2 = self.conv_bn(ch3x3, 3, 1, "branch3x3_2")(b2, train)
    b3 = self.conv_bn(dbl_red, 1, 1, "branch3x3dbl_1")(x, train)
    b3 = self.conv_bn(dbl, 3, 1, "branch3x3dbl_2")(b3, train)
    b3 = self.conv_bn(dbl, 3, 1, "branch3x3dbl_3")(b3, train)
    if self.pool == "avg":  # TensorFlow's "same" average leaves the padding out
      b4 = nn.avg_pool(x, (3, 3), padding="SAME", count_include_pad=False)
    else:
      b4 = nn.max_pool(x, (3, 3), padding="SAME")
    b4 = self.conv_bn(pool_proj, 1, 1, "branch_pool")(b4, train)
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class InceptionV2Reduction(_V2Module):
  """The seed's InceptionBlock_2: 1x1-3x3/2 | 1x1-3x3-3x3/2 | 3x3/2 max-pool."""
  channels: tuple[int, ...] = ()  # 3x3 reduce, 3x3, double reduce, double

  @nn.compact
  def __call__(self, x, train: bool = False):
    ch3x3red, ch3x3, dbl_red, dbl = self.channels
    b1 = self.conv_bn(ch3x3red, 1, 1, "branch3x3_1")(x, train)
    b1 = self.conv_bn(ch3x3, 3, 2, "branch3x3_2")(b1, train)
    b2 = self.conv_bn(dbl_red, 1, 1, "branch3x3dbl_1")(x, train)
    b2 = self.conv_bn(dbl, 3, 1, "branch3x3dbl_2")(b2, train)
    b2 = self.conv_bn(dbl, 3, 2, "branch3x3dbl_3")(b2, train)
    b3 = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    return jnp.concatenate([b1, b2, b3], axis=-1)


# The seed's channel lists in order: "block" (InceptionBlock_1) and "block_max"
# (InceptionBlock_3): 1x1, 3x3 reduce, 3x3, double reduce, double, pool proj;
# "reduce" (InceptionBlock_2): 3x3 reduce, 3x3, double reduce, double.
V2_LAYOUT = (
    ("3a", "block", (64, 64, 64, 64, 96, 32)),
    ("3b", "block", (64, 64, 96, 64, 96, 64)),
    ("3c", "reduce", (128, 160, 64, 96)),
    ("4a", "block", (224, 64, 96, 96, 128, 128)),
    ("4b", "block", (192, 96, 128, 96, 128, 128)),
    ("4c", "block", (160, 128, 160, 128, 160, 128)),
    ("4d", "block", (96, 128, 192, 160, 192, 128)),
    ("4e", "reduce", (128, 192, 192, 256)),
    ("5a", "block", (352, 192, 320, 160, 224, 128)),
    ("5b", "block_max", (352, 192, 320, 192, 224, 128)),
)


@register("inception_v2")
class InceptionV2(_V2Module):
  """BN-Inception as seed 003's Keras code builds it; see the module docstring."""
  num_classes: int = 17
  bn_momentum: float = 0.99  # Keras's BatchNormalization default

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = self.conv_bn(64, 7, 2, "conv1")(x, train)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    x = self.conv_bn(64, 1, 1, "conv2")(x, train)
    x = self.conv_bn(192, 3, 1, "conv3")(x, train)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    for name, kind, channels in V2_LAYOUT:
      shared = dict(channels=channels, bn_momentum=self.bn_momentum,
                    bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                    norm=self.norm, name=f"inception{name}")
      if kind == "reduce":
        x = InceptionV2Reduction(**shared)(x, train)
      else:
        x = InceptionV2Block(pool="avg" if kind == "block" else "max", **shared)(x, train)
    if x.shape[1] < 7 or x.shape[2] < 7:
      raise ValueError(f"inception_v2 needs inputs of at least 193x193 (the final 7x7 pool "
                       f"gets a {x.shape[1]}x{x.shape[2]} map); it is built for 224x224.")
    x = flatten(nn.avg_pool(x, (7, 7)))
    return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=_glorot, name="fc")(x)


# ---------------------------------------------------------------------------------------
# Inception-v3, torchvision.


class _V3Module(nn.Module):
  """Shared fields of the v3 blocks; `basic_conv` is torchvision's BasicConv2d."""
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  def basic_conv(self, features, kernel, stride=1, padding=(0, 0), *, name, std=0.1):
    if isinstance(kernel, int):
      kernel = (kernel, kernel)
    if isinstance(padding, int):
      padding = (padding, padding)
    return BasicConv(features, kernel, stride, padding, std=std,
                     bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                     norm=self.norm, name=name)


def _avg_pool_3x3(x):
  # F.avg_pool2d(x, 3, stride=1, padding=1): the zero padding counts in the average.
  return nn.avg_pool(x, (3, 3), padding=((1, 1), (1, 1)), count_include_pad=True)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2))


# (kernel, padding) of the factorised 1x7 / 7x1 and 1x3 / 3x1 convolutions.
_1x7, _7x1 = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
_1x3, _3x1 = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))


class InceptionA(_V3Module):
  """35x35 blocks: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | 3x3 avg-pool-1x1."""
  pool_features: int = 32

  @nn.compact
  def __call__(self, x, train: bool = False):
    b1 = self.basic_conv(64, 1, name="branch1x1")(x, train)
    b5 = self.basic_conv(48, 1, name="branch5x5_1")(x, train)
    b5 = self.basic_conv(64, 5, padding=2, name="branch5x5_2")(b5, train)
    bd = self.basic_conv(64, 1, name="branch3x3dbl_1")(x, train)
    bd = self.basic_conv(96, 3, padding=1, name="branch3x3dbl_2")(bd, train)
    bd = self.basic_conv(96, 3, padding=1, name="branch3x3dbl_3")(bd, train)
    bp = self.basic_conv(self.pool_features, 1, name="branch_pool")(_avg_pool_3x3(x), train)
    return jnp.concatenate([b1, b5, bd, bp], axis=-1)


class InceptionB(_V3Module):
  """Grid reduction 35 -> 17: 3x3/2 | 1x1-3x3-3x3/2 | 3x3/2 max-pool."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    b3 = self.basic_conv(384, 3, 2, name="branch3x3")(x, train)
    bd = self.basic_conv(64, 1, name="branch3x3dbl_1")(x, train)
    bd = self.basic_conv(96, 3, padding=1, name="branch3x3dbl_2")(bd, train)
    bd = self.basic_conv(96, 3, 2, name="branch3x3dbl_3")(bd, train)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(_V3Module):
  """17x17 blocks with 7x7 convolutions factorised into 1x7 and 7x1."""
  channels_7x7: int = 128

  @nn.compact
  def __call__(self, x, train: bool = False):
    c7 = self.channels_7x7
    b1 = self.basic_conv(192, 1, name="branch1x1")(x, train)
    b7 = self.basic_conv(c7, 1, name="branch7x7_1")(x, train)
    b7 = self.basic_conv(c7, **_1x7, name="branch7x7_2")(b7, train)
    b7 = self.basic_conv(192, **_7x1, name="branch7x7_3")(b7, train)
    bd = self.basic_conv(c7, 1, name="branch7x7dbl_1")(x, train)
    bd = self.basic_conv(c7, **_7x1, name="branch7x7dbl_2")(bd, train)
    bd = self.basic_conv(c7, **_1x7, name="branch7x7dbl_3")(bd, train)
    bd = self.basic_conv(c7, **_7x1, name="branch7x7dbl_4")(bd, train)
    bd = self.basic_conv(192, **_1x7, name="branch7x7dbl_5")(bd, train)
    bp = self.basic_conv(192, 1, name="branch_pool")(_avg_pool_3x3(x), train)
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_V3Module):
  """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | 3x3/2 max-pool."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    b3 = self.basic_conv(192, 1, name="branch3x3_1")(x, train)
    b3 = self.basic_conv(320, 3, 2, name="branch3x3_2")(b3, train)
    b7 = self.basic_conv(192, 1, name="branch7x7x3_1")(x, train)
    b7 = self.basic_conv(192, **_1x7, name="branch7x7x3_2")(b7, train)
    b7 = self.basic_conv(192, **_7x1, name="branch7x7x3_3")(b7, train)
    b7 = self.basic_conv(192, 3, 2, name="branch7x7x3_4")(b7, train)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(_V3Module):
  """8x8 blocks whose 3x3s split into parallel 1x3 and 3x1 (expanded filter banks)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    def split(y, prefix):
      return jnp.concatenate([self.basic_conv(384, **_1x3, name=f"{prefix}a")(y, train),
                              self.basic_conv(384, **_3x1, name=f"{prefix}b")(y, train)], axis=-1)

    b1 = self.basic_conv(320, 1, name="branch1x1")(x, train)
    b3 = split(self.basic_conv(384, 1, name="branch3x3_1")(x, train), "branch3x3_2")
    bd = self.basic_conv(448, 1, name="branch3x3dbl_1")(x, train)
    bd = self.basic_conv(384, 3, padding=1, name="branch3x3dbl_2")(bd, train)
    bd = split(bd, "branch3x3dbl_3")
    bp = self.basic_conv(192, 1, name="branch_pool")(_avg_pool_3x3(x), train)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3Aux(_V3Module):
  """The auxiliary classifier on Mixed_6e's 17x17x768 map."""
  num_classes: int = 1000

  @nn.compact
  def __call__(self, x, train: bool = False):
    if x.shape[1] < 17 or x.shape[2] < 17:
      raise ValueError(
          f"inception_v3's auxiliary classifier needs at least a 17x17 map at Mixed_6e "
          f"(inputs of at least 297x297), not {x.shape[1]}x{x.shape[2]}; use "
          f"aux_logits=False for smaller inputs.")
    x = nn.avg_pool(x, (5, 5), strides=(3, 3))
    x = self.basic_conv(128, 1, name="conv0")(x, train)
    x = self.basic_conv(768, 5, name="conv1", std=0.01)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    kernel_init=nn.initializers.normal(0.001),
                    bias_init=torch_default_bias_init(768), name="fc")(x)


@register("inception_v3")
class InceptionV3(_V3Module):
  """torchvision's Inception-v3; see the module docstring."""
  num_classes: int = 1000
  aux_logits: bool = True
  transform_input: bool = False
  dropout: float = 0.5

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    if self.transform_input:
      x = transform_imagenet_input(x)
    shared = dict(bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                  norm=self.norm)
    x = self.basic_conv(32, 3, 2, name="Conv2d_1a_3x3")(x, train)
    x = self.basic_conv(32, 3, name="Conv2d_2a_3x3")(x, train)
    x = self.basic_conv(64, 3, padding=1, name="Conv2d_2b_3x3")(x, train)
    x = _max_pool_3x3_s2(x)
    x = self.basic_conv(80, 1, name="Conv2d_3b_1x1")(x, train)
    x = self.basic_conv(192, 3, name="Conv2d_4a_3x3")(x, train)
    x = _max_pool_3x3_s2(x)
    x = InceptionA(pool_features=32, name="Mixed_5b", **shared)(x, train)
    x = InceptionA(pool_features=64, name="Mixed_5c", **shared)(x, train)
    x = InceptionA(pool_features=64, name="Mixed_5d", **shared)(x, train)
    x = InceptionB(name="Mixed_6a", **shared)(x, train)
    x = InceptionC(channels_7x7=128, name="Mixed_6b", **shared)(x, train)
    x = InceptionC(channels_7x7=160, name="Mixed_6c", **shared)(x, train)
    x = InceptionC(channels_7x7=160, name="Mixed_6d", **shared)(x, train)
    x = InceptionC(channels_7x7=192, name="Mixed_6e", **shared)(x, train)
    aux = None
    # Also run while initialising, so that an eval-mode init creates the head's parameters.
    if self.aux_logits and (train or self.is_initializing()):
      aux = InceptionV3Aux(num_classes=self.num_classes, name="AuxLogits", **shared)(x, train)
    x = InceptionD(name="Mixed_7a", **shared)(x, train)
    x = InceptionE(name="Mixed_7b", **shared)(x, train)
    x = InceptionE(name="Mixed_7c", **shared)(x, train)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=nn.initializers.normal(0.1),
                      bias_init=torch_default_bias_init(2048), name="fc")(x)
    if train and self.aux_logits:
      return logits, (aux,)
    return logits
