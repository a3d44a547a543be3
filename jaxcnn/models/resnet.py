"""ResNet (He et al., 2015, "Deep residual learning for image recognition").

ImageNet ResNets as torchvision's v1.5: resnet18, resnet34 (basic blocks), resnet50,
resnet101, resnet152 (bottleneck blocks, the stride on the 3x3 conv rather than the first
1x1 as in the paper). Stem conv 7x7/2 + BN + ReLU + max-pool 3/2, four stages of 64-128-256-512
(x4 for bottlenecks) channels, global average pool, dense. A shortcut is the identity, or a
1x1 conv + BN where the shape changes. Convs: He normal (fan-out), no bias; the dense
layer PyTorch's default. Option zero_init_residual: the last BN's scale in each block starts
at zero, so each block starts as the identity (Goyal et al., 2017).
Parameters for 1000 classes: 11,689,512; 21,797,672; 25,557,032; 44,549,160; 60,192,808.

CIFAR ResNets of the paper's section 4.2: resnet20/32/44/56/110 (6n+2 layers): 3x3 conv
16 + BN + ReLU, three stages of n basic blocks with 16-32-64 channels (the first block of
stages 2 and 3 has stride 2), global average pool, dense. Option shortcut: "A" (the paper's
choice for CIFAR) identity shortcuts everywhere, subsampling by taking every other pixel and
zero-padding the new channels where the shape changes, no extra parameters (0.27M for
resnet20); "B" a 1x1 conv + BN projection there.

resnet18_cifar: the widespread CIFAR adaptation of ResNet-18 (3x3 stride-1 stem, no
max-pool, then torchvision's four stages); 11,173,962 parameters for 10 classes.

resnet50_keras: the Keras ResNet-50 of seed 004 (deeplearning.ai's, trained on the 64x64
SIGNS hand-sign images, 6 classes): ResNet v1 as the paper draws it, unlike torchvision's in
five ways: the stride sits in the first 1x1 conv of a stage's first block (and its 1x1
projection shortcut), every conv has a bias, the stem is a 3-pixel zero padding then a
7x7/2 conv without padding and an unpadded 3x3/2 max-pool, the head is a 2x2/2 average pool
and a dense layer on the flattened map (1x1x2048 for 64x64 inputs, so the dense layer's size
depends on the input), and batch norm is Keras's (momentum 0.99, epsilon 1e-3). Initialisers
as the seed: Glorot uniform for the stem, the first block of each stage and the dense layer,
U(-0.05, 0.05) (Keras's RandomUniform) for the identity blocks, zero biases. For 64x64x3 and
6 classes: 23,546,886 parameters (Keras's "trainable") and 53,120 batch-norm moving
statistics (its "non-trainable"), 23,600,006 in all, as the seed's model.summary() prints.
"""
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import register
from jaxcnn.models.batch_norm import BatchNorm
from jaxcnn.models.conv import Conv
from jaxcnn.models.layers import (batch_norm, kaiming_normal_fan_out, torch_default_bias_init,
                                  torch_default_kernel_init)


class _Block(nn.Module):
  """Shared fields of the two residual blocks."""
  features: int  # the 3x3 convs' channels; a bottleneck outputs 4x as many
  strides: int = 1
  shortcut: str = "B"  # "A": identity + zero padding; "B": projection where the shape changes
  zero_init_residual: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  def conv(self, features, kernel, strides=1, name=None):
    pad = kernel // 2
    return Conv(features, (kernel, kernel), strides=(strides, strides),
                padding=((pad, pad), (pad, pad)), use_bias=False, dtype=self.dtype,
                kernel_init=kaiming_normal_fan_out, name=name)

  def bn(self, train, name, last=False):
    scale_init = (nn.initializers.zeros if last and self.zero_init_residual
                  else nn.initializers.ones)
    return batch_norm(train, self.dtype, name, self.bn_axis_name, scale_init)

  def add_shortcut(self, x, residual, train):
    out_features = residual.shape[-1]
    if self.strides == 1 and x.shape[-1] == out_features:
      return nn.relu(residual + x)
    if self.shortcut == "A":
      x = x[:, ::self.strides, ::self.strides, :]
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, out_features - x.shape[-1])))
    else:
      x = self.conv(out_features, 1, self.strides, name="downsample_conv")(x)
      x = self.bn(train, "downsample_bn")(x)
    return nn.relu(residual + x)


class BasicBlock(_Block):
  """Two 3x3 convs (ResNet-18/34 and the CIFAR nets)."""

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.relu(self.bn(train, "bn1")(self.conv(self.features, 3, self.strides, "conv1")(x)))
    y = self.bn(train, "bn2", last=True)(self.conv(self.features, 3, name="conv2")(y))
    return self.add_shortcut(x, y, train)


class Bottleneck(_Block):
  """1x1 reduce, 3x3 (with the stride: torchvision's v1.5), 1x1 expand to 4x features."""

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.relu(self.bn(train, "bn1")(self.conv(self.features, 1, name="conv1")(x)))
    y = nn.relu(self.bn(train, "bn2")(self.conv(self.features, 3, self.strides, "conv2")(y)))
    y = self.bn(train, "bn3", last=True)(self.conv(self.features * 4, 1, name="conv3")(y))
    return self.add_shortcut(x, y, train)


class ResNet(nn.Module):
  """A stem, stages of residual blocks (stage i has widths[i] channels), pool, dense."""
  num_classes: int = 1000
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
  bottleneck: bool = False
  stem: str = "imagenet"  # "imagenet": 7x7/2 + max-pool; "cifar": 3x3/1
  widths: tuple[int, ...] = (64, 128, 256, 512)
  shortcut: str = "B"
  zero_init_residual: bool = False
  bn_axis_name: str | None = None  # synchronised batch norm (set by the training loop)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.shortcut not in ("A", "B"):
      raise ValueError(f"shortcut must be 'A' or 'B', not {self.shortcut!r}.")
    x = x.astype(self.dtype)
    kernel, strides = (7, 2) if self.stem == "imagenet" else (3, 1)
    x = Conv(self.widths[0], (kernel, kernel), strides=(strides, strides),
             padding=((kernel // 2, kernel // 2),) * 2, use_bias=False, dtype=self.dtype,
             kernel_init=kaiming_normal_fan_out, name="conv1")(x)
    x = nn.relu(batch_norm(train, self.dtype, "bn1", self.bn_axis_name)(x))
    if self.stem == "imagenet":
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block = Bottleneck if self.bottleneck else BasicBlock
    for i, (size, features) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(size):
        x = block(features, strides=2 if i > 0 and j == 0 else 1, shortcut=self.shortcut,
                  zero_init_residual=self.zero_init_residual, bn_axis_name=self.bn_axis_name,
                  dtype=self.dtype, name=f"layer{i + 1}_{j}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=torch_default_kernel_init,
                    bias_init=torch_default_bias_init(x.shape[-1]), name="fc")(x)


for _name, _sizes, _bottleneck in [
    ("resnet18", (2, 2, 2, 2), False), ("resnet34", (3, 4, 6, 3), False),
    ("resnet50", (3, 4, 6, 3), True), ("resnet101", (3, 4, 23, 3), True),
    ("resnet152", (3, 8, 36, 3), True)]:
  register(_name, input_shape=(224, 224, 3), stage_sizes=_sizes, bottleneck=_bottleneck)(ResNet)

for _depth in (20, 32, 44, 56, 110):
  register(f"resnet{_depth}", input_shape=(32, 32, 3), num_classes=10,
           stage_sizes=((_depth - 2) // 6,) * 3, stem="cifar", widths=(16, 32, 64),
           shortcut="A")(ResNet)

register("resnet18_cifar", input_shape=(32, 32, 3), num_classes=10, stage_sizes=(2, 2, 2, 2),
         stem="cifar")(ResNet)


def keras_random_uniform(key, shape, dtype=jnp.float32):
  """Keras's RandomUniform() default: U(-0.05, 0.05)."""
  return jax.random.uniform(key, shape, dtype, -0.05, 0.05)


class KerasBottleneck(nn.Module):
  """The seed's convolutional_block (projection=True) and identity_block: 1x1 (with the
  stride), 3x3 "same", 1x1 to 4x features, each with a bias; BN after each; add; ReLU."""
  features: int
  strides: int = 1
  projection: bool = False
  bn_momentum: float = 0.99
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    # The seed: glorot_uniform in the convolutional block, random_uniform in identity blocks.
    init = nn.initializers.glorot_uniform() if self.projection else keras_random_uniform

    def conv(features, kernel, strides, name):
      pad = kernel // 2  # "valid" for the 1x1s, "same" for the 3x3 at stride 1
      return Conv(features, (kernel, kernel), strides=(strides, strides),
                  padding=((pad, pad), (pad, pad)), dtype=self.dtype, kernel_init=init,
                  name=name)

    def bn(name):
      return BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       epsilon=1e-3, dtype=self.dtype, axis_name=self.bn_axis_name,
                       name=name)

    y = nn.relu(bn("bn1")(conv(self.features, 1, self.strides, "conv1")(x)))
    y = nn.relu(bn("bn2")(conv(self.features, 3, 1, "conv2")(y)))
    y = bn("bn3")(conv(self.features * 4, 1, 1, "conv3")(y))
    if self.projection:
      x = bn("shortcut_bn")(conv(self.features * 4, 1, self.strides, "shortcut_conv")(x))
    return nn.relu(y + x)


class KerasResNet(nn.Module):
  """Seed 004's Keras ResNet-50 (see the module docstring); stage_sizes allow other depths."""
  num_classes: int = 6
  stage_sizes: tuple[int, ...] = (3, 4, 6, 3)
  widths: tuple[int, ...] = (64, 128, 256, 512)
  bn_momentum: float = 0.99  # Keras's BatchNormalization default
  bn_axis_name: str | None = None  # synchronised batch norm (set by the training loop)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))  # ZeroPadding2D((3, 3))
    x = Conv(self.widths[0], (7, 7), strides=(2, 2), padding="VALID", dtype=self.dtype,
             kernel_init=nn.initializers.glorot_uniform(), name="conv1")(x)
    x = BatchNorm(use_running_average=not train, momentum=self.bn_momentum, epsilon=1e-3,
                  dtype=self.dtype, axis_name=self.bn_axis_name, name="bn1")(x)
    x = nn.max_pool(nn.relu(x), (3, 3), strides=(2, 2))
    for i, (size, features) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(size):
        x = KerasBottleneck(features, strides=2 if i > 0 and j == 0 else 1,
                            projection=j == 0, bn_momentum=self.bn_momentum,
                            bn_axis_name=self.bn_axis_name, dtype=self.dtype,
                            name=f"stage{i + 2}_{j}")(x, train)
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    kernel_init=nn.initializers.glorot_uniform(), name="fc")(
                        x.reshape((x.shape[0], -1)))


register("resnet50_keras", input_shape=(64, 64, 3), num_classes=6)(KerasResNet)
