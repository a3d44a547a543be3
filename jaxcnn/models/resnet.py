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
resnet20); "B" a 1x1 conv + BN projection there; "none" no shortcut at all.

Plain counterparts, the paper's "plain" baselines (sections 4.1 and 4.2; figure 3, middle):
the same stacks with shortcut="none", ReLU after each block's last BN. plain18, plain34:
resnet18/34 without their three projection shortcuts, 11,515,688 and 21,623,848 parameters
for 1000 classes; plain20, plain56: resnet20/56 (whose option-A shortcuts have no
parameters), 269,722 and 853,018 for 10 classes.

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

resnet18_blog: seed 001's CIFAR-10 "ResNet18" (PyTorch), which shares only the widths with
the paper's ResNet-18: a 3x3 stride-3 unpadded stem conv + BN + ReLU, then four residual
blocks (64, 128, 256, 512 channels; one block per stage, not two) each of stride 2, on maps
of 32 -> 10 -> 5 -> 3 -> 2 -> 1; every shortcut a strided 1x1 conv + BN projection, identity
shape or not; every conv with a bias; ReLU after the add; global average pool; dense.
PyTorch's default initialisation and batch norm. 4,910,410 parameters for 10 classes.

resnet_blog_small: the PyTorch network of seed 000 (CIFAR-10), named "ResNet18" there but of
two blocks, its blk3/blk4 commented out: conv 16@3x3 + BN + ReLU, a block 16 -> 16 with the
identity shortcut, a block 16 -> 32 whose shortcut is a 1x1 conv + BN; nothing strided, so
the dense layer reads the flattened 32x32x32 map (its size depends on the input). Unlike the
paper, no ReLU after the add (the seed's block returns extra(x) + out). Convs with biases,
PyTorch's initialisation. 347,498 parameters for 10 classes.

resnet18_keras: seed 000's Keras ResNet-18: conv2d_bn (conv with bias, "same" padding, BN,
ReLU) as a 7x7/2 stem, a "same" 3x3/2 max-pool, four stages of two basic blocks (64, 128,
256, 512), global average pool, dense. It departs from the paper in the block: both convs
are conv2d_bn, so the ReLU comes before the add on the residual branch and none after it
(the output is shortcut + relu(bn(conv(...)))), and the projection, where the shape changes,
is a 1x1 conv with a bias and without BN. Keras's defaults: Glorot-uniform kernels, zero
biases, batch norm momentum 0.99 and epsilon 1e-3. The seed's text says the stages are the
paper's conv2_x ... conv5_x (56, 28, 14, 7 at 224), but its code calls residual_block with
is_first_layer=True for all four, which leaves every stride at 1: conv3_x-conv5_x never
downsample and run at 56x56 (4x, 16x, 64x the paper's work per layer; the projections
then only widen). The default follows the text and the paper, whose table the text cites,
since is_first_layer exists to exempt only the stage after the max-pool; downsample=False
builds the code as written. The parameters are the same either way (the global pool takes
any map): 11,692,520 for 1000 classes, plus 7,808 batch-norm moving statistics.
The seed regularises every conv kernel (the 1x1 projections too; no bias, BN or the dense
layer) with Keras's l2(1e-4), a loss term 1e-4 * sum(w^2): a gradient of 2e-4 * w. The
repository has one global weight decay (config.weight_decay, jaxcnn/train/optim.py: added
to the gradient of every parameter), so a config for it should set weight_decay = 2e-4 with
"sgd" or "adam" (not "adamw": decoupled), which also decays the biases, the BN parameters
and the dense layer; decaying the conv kernels alone would need a mask there.
"""
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import register
from jaxcnn.models.batch_norm import BatchNorm
from jaxcnn.models.layers import (batch_norm, flatten, kaiming_normal_fan_out,
                                  torch_default_bias_init, torch_default_kernel_init)

ModuleDef = Any


class _Block(nn.Module):
  """Shared fields of the two residual blocks."""
  features: int  # the 3x3 convs' channels; a bottleneck outputs 4x as many
  strides: int = 1
  # "A": identity + zero padding; "B": projection where the shape changes; "none": plain net
  shortcut: str = "B"
  zero_init_residual: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  def conv_layer(self, features, kernel, strides=1, name=None):
    pad = kernel // 2
    return self.conv(features, (kernel, kernel), strides=(strides, strides),
                     padding=((pad, pad), (pad, pad)), use_bias=False, dtype=self.dtype,
                     kernel_init=kaiming_normal_fan_out, name=name)

  def bn(self, train, name, last=False):
    scale_init = (nn.initializers.zeros if last and self.zero_init_residual
                  else nn.initializers.ones)
    return batch_norm(self.norm, train, self.dtype, name, self.bn_axis_name, scale_init)

  def add_shortcut(self, x, residual, train):
    if self.shortcut == "none":
      return nn.relu(residual)
    out_features = residual.shape[-1]
    if self.strides == 1 and x.shape[-1] == out_features:
      return nn.relu(residual + x)
    if self.shortcut == "A":
      x = x[:, ::self.strides, ::self.strides, :]
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, out_features - x.shape[-1])))
    else:
      x = self.conv_layer(out_features, 1, self.strides, name="downsample_conv")(x)
      x = self.bn(train, "downsample_bn")(x)
    return nn.relu(residual + x)


class BasicBlock(_Block):
  """Two 3x3 convs (ResNet-18/34 and the CIFAR nets)."""

  @nn.compact
  def __call__(self, x, train: bool):
    y = self.conv_layer(self.features, 3, self.strides, "conv1")(x)
    y = nn.relu(self.bn(train, "bn1")(y))
    y = self.bn(train, "bn2", last=True)(self.conv_layer(self.features, 3, name="conv2")(y))
    return self.add_shortcut(x, y, train)


class Bottleneck(_Block):
  """1x1 reduce, 3x3 (with the stride: torchvision's v1.5), 1x1 expand to 4x features."""

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.relu(self.bn(train, "bn1")(self.conv_layer(self.features, 1, name="conv1")(x)))
    y = self.conv_layer(self.features, 3, self.strides, "conv2")(y)
    y = nn.relu(self.bn(train, "bn2")(y))
    y = self.bn(train, "bn3", last=True)(self.conv_layer(self.features * 4, 1, name="conv3")(y))
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
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False, dense: bool = False):
    """`dense` (VGG's dense evaluation, which ResNet's paper also uses) changes nothing: the
    global average pool before the linear layer already averages its scores over the whole
    map, of any size."""
    del dense
    if self.shortcut not in ("A", "B", "none"):
      raise ValueError(f"shortcut must be 'A', 'B' or 'none', not {self.shortcut!r}.")
    if self.shortcut == "none" and self.zero_init_residual:
      # Without the shortcut a block whose last BN starts at zero outputs zeros.
      raise ValueError("zero_init_residual needs shortcuts; a plain net would start at zero.")
    x = x.astype(self.dtype)
    kernel, strides = (7, 2) if self.stem == "imagenet" else (3, 1)
    x = self.conv(self.widths[0], (kernel, kernel), strides=(strides, strides),
                  padding=((kernel // 2, kernel // 2),) * 2, use_bias=False, dtype=self.dtype,
                  kernel_init=kaiming_normal_fan_out, name="conv1")(x)
    x = nn.relu(batch_norm(self.norm, train, self.dtype, "bn1", self.bn_axis_name)(x))
    if self.stem == "imagenet":
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block = Bottleneck if self.bottleneck else BasicBlock
    for i, (size, features) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(size):
        x = block(features, strides=2 if i > 0 and j == 0 else 1, shortcut=self.shortcut,
                  zero_init_residual=self.zero_init_residual, bn_axis_name=self.bn_axis_name,
                  dtype=self.dtype, conv=self.conv, norm=self.norm,
                  name=f"layer{i + 1}_{j}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=torch_default_kernel_init,
                    bias_init=torch_default_bias_init(x.shape[-1]), name="fc")(x)


for _name, _sizes, _bottleneck in [
    ("resnet18", (2, 2, 2, 2), False), ("resnet34", (3, 4, 6, 3), False),
    ("resnet50", (3, 4, 6, 3), True), ("resnet101", (3, 4, 23, 3), True),
    ("resnet152", (3, 8, 36, 3), True)]:
  register(_name, stage_sizes=_sizes, bottleneck=_bottleneck)(ResNet)

for _depth in (20, 32, 44, 56, 110):
  register(f"resnet{_depth}", num_classes=10,
           stage_sizes=((_depth - 2) // 6,) * 3, stem="cifar", widths=(16, 32, 64),
           shortcut="A")(ResNet)

register("resnet18_cifar", num_classes=10, stage_sizes=(2, 2, 2, 2),
         stem="cifar")(ResNet)

for _name, _sizes in [("plain18", (2, 2, 2, 2)), ("plain34", (3, 4, 6, 3))]:
  register(_name, stage_sizes=_sizes, shortcut="none")(ResNet)

for _depth in (20, 56):
  register(f"plain{_depth}", num_classes=10,
           stage_sizes=((_depth - 2) // 6,) * 3, stem="cifar", widths=(16, 32, 64),
           shortcut="none")(ResNet)


class BlogBlock(nn.Module):
  """The ResBlk of seeds 000 and 001: conv 3x3 (with the stride) + BN + ReLU, conv 3x3 + BN,
  added to `extra(x)`: a 1x1 conv (with the stride) + BN, or the identity. Convs with biases,
  PyTorch's defaults."""
  features: int
  strides: int = 1
  always_project: bool = False  # seed 001: the projection even where the shape is unchanged
  relu_after_add: bool = True  # seed 001 has it, seed 000 not
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  def conv_layer(self, x, kernel, strides, name):
    pad = kernel // 2
    return self.conv(self.features, (kernel, kernel), strides=(strides, strides),
                     padding=((pad, pad), (pad, pad)), dtype=self.dtype,
                     kernel_init=torch_default_kernel_init,
                     bias_init=torch_default_bias_init(x.shape[-1] * kernel * kernel),
                     name=name)(x)

  @nn.compact
  def __call__(self, x, train: bool):
    bn = lambda name: batch_norm(  # noqa: E731
        self.norm, train, self.dtype, name, self.bn_axis_name)
    y = nn.relu(bn("bn1")(self.conv_layer(x, 3, self.strides, "conv1")))
    y = bn("bn2")(self.conv_layer(y, 3, 1, "conv2"))
    if self.always_project or self.strides != 1 or x.shape[-1] != self.features:
      x = bn("extra_bn")(self.conv_layer(x, 1, self.strides, "extra_conv"))
    y = x + y
    return nn.relu(y) if self.relu_after_add else y


class BlogResNet(nn.Module):
  """Seeds 000's and 001's PyTorch nets (module docstring): a conv + BN + ReLU stem, a chain
  of BlogBlocks, then a global average pool ("pool") or a flatten ("flatten"), dense.
  Parameter names follow the seeds' modules (blk1, extra, outlayer)."""
  num_classes: int = 10
  stem: tuple[int, int, int, int] = (64, 3, 3, 0)  # features, kernel, stride, padding
  # (features, stride) of each block
  blocks: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 2), (512, 2))
  always_project: bool = True
  relu_after_add: bool = True
  head: str = "pool"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.head not in ("pool", "flatten"):
      raise ValueError(f"head must be 'pool' or 'flatten', not {self.head!r}.")
    x = x.astype(self.dtype)
    features, kernel, stride, pad = self.stem
    x = self.conv(features, (kernel, kernel), strides=(stride, stride),
                  padding=((pad, pad), (pad, pad)), dtype=self.dtype,
                  kernel_init=torch_default_kernel_init,
                  bias_init=torch_default_bias_init(x.shape[-1] * kernel * kernel),
                  name="conv1")(x)
    x = nn.relu(batch_norm(self.norm, train, self.dtype, "bn1", self.bn_axis_name)(x))
    for i, (features, strides) in enumerate(self.blocks, 1):
      x = BlogBlock(features, strides, self.always_project, self.relu_after_add,
                    self.bn_axis_name, self.dtype, conv=self.conv, norm=self.norm,
                    name=f"blk{i}")(x, train)
    # F.adaptive_avg_pool2d(x, [1, 1]) in seed 001: the mean over the map
    x = jnp.mean(x, axis=(1, 2)) if self.head == "pool" else flatten(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=torch_default_kernel_init,
                    bias_init=torch_default_bias_init(x.shape[-1]), name="outlayer")(x)


register("resnet18_blog", num_classes=10)(BlogResNet)
register("resnet_blog_small", num_classes=10, stem=(16, 3, 1, 1),
         blocks=((16, 1), (32, 1)), always_project=False, relu_after_add=False,
         head="flatten")(BlogResNet)


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
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool):
    # The seed: glorot_uniform in the convolutional block, random_uniform in identity blocks.
    init = nn.initializers.glorot_uniform() if self.projection else keras_random_uniform

    def conv(features, kernel, strides, name):
      pad = kernel // 2  # "valid" for the 1x1s, "same" for the 3x3 at stride 1
      return self.conv(features, (kernel, kernel), strides=(strides, strides),
                       padding=((pad, pad), (pad, pad)), dtype=self.dtype, kernel_init=init,
                       name=name)

    def bn(name):
      return _keras_batch_norm(self.norm, train, self.bn_momentum, self.dtype,
                               self.bn_axis_name, name)

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
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = jnp.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))  # ZeroPadding2D((3, 3))
    x = self.conv(self.widths[0], (7, 7), strides=(2, 2), padding="VALID", dtype=self.dtype,
                  kernel_init=nn.initializers.glorot_uniform(), name="conv1")(x)
    x = _keras_batch_norm(self.norm, train, self.bn_momentum, self.dtype, self.bn_axis_name,
                          "bn1")(x)
    x = nn.max_pool(nn.relu(x), (3, 3), strides=(2, 2))
    for i, (size, features) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(size):
        x = KerasBottleneck(features, strides=2 if i > 0 and j == 0 else 1,
                            projection=j == 0, bn_momentum=self.bn_momentum,
                            bn_axis_name=self.bn_axis_name, dtype=self.dtype, conv=self.conv,
                            norm=self.norm, name=f"stage{i + 2}_{j}")(x, train)
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    kernel_init=nn.initializers.glorot_uniform(), name="fc")(
                        x.reshape((x.shape[0], -1)))


register("resnet50_keras", num_classes=6)(KerasResNet)


def _keras_batch_norm(norm, train, momentum, dtype, axis_name, name):
  """`norm` as Keras's BatchNormalization: epsilon 1e-3, the given momentum."""
  return norm(use_running_average=not train, momentum=momentum, epsilon=1e-3, dtype=dtype,
              axis_name=axis_name, name=name)


class KerasConvBN(nn.Module):
  """Seed 000's conv2d_bn: conv with a bias ("same" padding), BN, ReLU."""
  features: int
  kernel: int
  strides: int = 1
  bn_momentum: float = 0.99
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool):
    x = self.conv(self.features, (self.kernel, self.kernel),
                  strides=(self.strides, self.strides), padding="SAME", dtype=self.dtype,
                  kernel_init=nn.initializers.glorot_uniform(), name="conv")(x)
    return nn.relu(_keras_batch_norm(self.norm, train, self.bn_momentum, self.dtype,
                                     self.bn_axis_name, "bn")(x))


class KerasBasicBlock(nn.Module):
  """Seed 000's basic_block and shortcut: two conv2d_bn (the second ReLU before the add), a
  1x1 conv with a bias and no BN where the shape changes, the add, no ReLU after it."""
  features: int
  strides: int = 1
  bn_momentum: float = 0.99
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool):
    conv_bn = lambda strides, name: KerasConvBN(  # noqa: E731
        self.features, 3, strides, self.bn_momentum, self.bn_axis_name, self.dtype,
        conv=self.conv, norm=self.norm, name=name)
    y = conv_bn(self.strides, "conv_bn1")(x, train)
    y = conv_bn(1, "conv_bn2")(y, train)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = self.conv(self.features, (1, 1), strides=(self.strides, self.strides),
                    padding="VALID", dtype=self.dtype,
                    kernel_init=nn.initializers.glorot_uniform(), name="shortcut_conv")(x)
    return x + y


class KerasResNet18(nn.Module):
  """Seed 000's Keras ResNet-18 (see the module docstring); stage_sizes allow ResNet-34."""
  num_classes: int = 1000
  stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
  widths: tuple[int, ...] = (64, 128, 256, 512)
  downsample: bool = True  # False: the seed's code as written, no stride after the max-pool
  bn_momentum: float = 0.99  # Keras's BatchNormalization default
  bn_axis_name: str | None = None  # synchronised batch norm (set by the training loop)
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    x = KerasConvBN(self.widths[0], 7, 2, self.bn_momentum, self.bn_axis_name, self.dtype,
                    conv=self.conv, norm=self.norm, name="conv1")(x, train)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    for i, (size, features) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(size):
        strides = 2 if self.downsample and i > 0 and j == 0 else 1
        x = KerasBasicBlock(features, strides, self.bn_momentum, self.bn_axis_name,
                            self.dtype, conv=self.conv, norm=self.norm,
                            name=f"stage{i + 2}_{j}")(x, train)
    x = jnp.mean(x, axis=(1, 2))
    # The seed's dense layer has a softmax; the loss takes the logits.
    return nn.Dense(self.num_classes, dtype=self.dtype,
                    kernel_init=nn.initializers.glorot_uniform(), name="fc")(x)


register("resnet18_keras")(KerasResNet18)
