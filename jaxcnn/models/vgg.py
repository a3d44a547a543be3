"""VGG (Simonyan & Zisserman, 2014), the six configurations of the paper's Table 1.

    vgg11 (A)  vgg11_lrn (A-LRN)  vgg13 (B)  vgg16c (C)  vgg16 (D)  vgg19 (E)
    vgg11_bn  vgg13_bn  vgg16_bn  vgg19_bn    (batch norm after every conv, as torchvision)

3x3 convolutions with padding 1 (configuration C adds a 1x1 convolution at the end of the
last three blocks), ReLU, 2x2 max-pool after each of the five blocks. A-LRN puts a local
response normalisation (AlexNet's) after the first conv's ReLU. Options:
  batch_norm    conv -> BN -> ReLU (any configuration; the conv keeps its bias as torchvision)
  head          "imagenet": adaptive average pool to 7x7 (torchvision), dense 4096-4096-classes
                with ReLU and dropout 0.5; "cifar": one dense layer on the flattened features
                (1x1x512 for 32x32 inputs)
  init          "torchvision": He normal (fan-out) convs, N(0, 0.01^2) dense, zero biases;
                "xavier": Glorot uniform weights, zero biases (the seed's Keras VGG);
                "paper": N(0, 0.01^2) weights, zero biases. (The paper writes "10^-2
                variance"; its Caffe models and most reproductions use 0.01 as the standard
                deviation, and so does this option.)
Parameters for 1000 classes with the imagenet head: vgg11 132,863,336; vgg13 133,047,848;
vgg16 138,357,544; vgg19 143,667,240; the _bn versions add four per conv channel.
"""
from typing import Any, Callable

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import layers, register
from jaxcnn.models.batch_norm import BatchNorm
from jaxcnn.models.layers import (LocalResponseNorm, accepting_init_option, adaptive_avg_pool,
                                  WindowDense, batch_norm, flatten,
                                  kaiming_normal_fan_out)

ModuleDef = Any

# Each block: its convolutions' (channels, kernel size); a 2x2 max-pool ends every block.
CONFIGS: dict[str, tuple[tuple[tuple[int, int], ...], ...]] = {
    "A": (((64, 3),), ((128, 3),), ((256, 3),) * 2, ((512, 3),) * 2, ((512, 3),) * 2),
    "B": (((64, 3),) * 2, ((128, 3),) * 2, ((256, 3),) * 2, ((512, 3),) * 2, ((512, 3),) * 2),
    "C": (((64, 3),) * 2, ((128, 3),) * 2, ((256, 3),) * 2 + ((256, 1),),
          ((512, 3),) * 2 + ((512, 1),), ((512, 3),) * 2 + ((512, 1),)),
    "D": (((64, 3),) * 2, ((128, 3),) * 2, ((256, 3),) * 3, ((512, 3),) * 3, ((512, 3),) * 3),
    "E": (((64, 3),) * 2, ((128, 3),) * 2, ((256, 3),) * 4, ((512, 3),) * 4, ((512, 3),) * 4),
}

_INITS = {  # scheme: (conv kernel, dense kernel); biases are zero in all three
    "torchvision": (kaiming_normal_fan_out, nn.initializers.normal(0.01)),
    "xavier": (nn.initializers.glorot_uniform(), nn.initializers.glorot_uniform()),
    "paper": (nn.initializers.normal(0.01), nn.initializers.normal(0.01)),
}


class VGG(nn.Module):
  num_classes: int = 1000
  config: str = "D"
  batch_norm: bool = False
  lrn: bool = False  # A-LRN
  head: str = "imagenet"
  init_scheme: str = "torchvision"  # the option init=...
  dropout_rate: float = 0.5
  bn_axis_name: str | None = None  # synchronised batch norm (set by the training loop)
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  norm: ModuleDef = BatchNorm
  max_pool_2x2: Callable = layers.max_pool_2x2

  @nn.compact
  def __call__(self, x, train: bool = False, dense: bool = False):
    """`dense`: VGG's dense evaluation (sec. 3.2): the dense layers applied as convolutions
    over the whole map of a larger image, the class scores averaged over the positions.
    A 224x224 input (the imagenet head) or 32x32 (the cifar head) gives the ordinary output."""
    conv_init, dense_init = _INITS[self.init_scheme]
    x = x.astype(self.dtype)
    i = 0
    for block in CONFIGS[self.config]:
      for features, kernel in block:
        i += 1
        pad = kernel // 2
        x = self.conv(features, (kernel, kernel), padding=((pad, pad), (pad, pad)),
                      dtype=self.dtype, kernel_init=conv_init, name=f"conv{i}")(x)
        if self.batch_norm:
          x = batch_norm(self.norm, train, self.dtype, f"bn{i}", self.bn_axis_name)(x)
        x = nn.relu(x)
        if self.lrn and i == 1:
          x = LocalResponseNorm(name="lrn")(x)
      x = self.max_pool_2x2(x)

    def dense_layer(features, name):
      return nn.Dense(features, dtype=self.dtype, kernel_init=dense_init, name=name)

    if self.head not in ("imagenet", "cifar"):
      raise ValueError(f"head must be 'imagenet' or 'cifar', not {self.head!r}.")
    if dense:
      return self._dense_scores(x)
    if self.head == "cifar":
      return dense_layer(self.num_classes, "fc")(flatten(x))
    x = flatten(adaptive_avg_pool(x, (7, 7)))
    for j in (1, 2):
      x = nn.relu(dense_layer(4096, f"fc{j}")(x))
      x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return dense_layer(self.num_classes, "fc3")(x)

  def _dense_scores(self, x):
    """The head as convolutions: the first dense layer over the window it was trained on
    (7x7 after the imagenet head's pool; the cifar head's 1x1 map of a 32x32 input), the
    others 1x1; then the class score map's spatial mean. A map smaller than 7x7 is first
    brought to it by the adaptive pool, as in the ordinary pass."""
    if self.head == "cifar":
      x = WindowDense(self.num_classes, (1, 1), self.dtype, name="fc")(x)
    else:
      if x.shape[1] < 7 or x.shape[2] < 7:
        x = adaptive_avg_pool(x, (max(7, x.shape[1]), max(7, x.shape[2])))
      x = nn.relu(WindowDense(4096, (7, 7), self.dtype, name="fc1")(x))
      x = nn.relu(WindowDense(4096, (1, 1), self.dtype, name="fc2")(x))
      x = WindowDense(self.num_classes, (1, 1), self.dtype, name="fc3")(x)
    return jnp.mean(x, axis=(1, 2))


def paper_pre_init_layers(config: str) -> tuple[str, ...]:
  """The paper's pre-initialisation of configuration `config` from a trained A, as
  "target=source" pairs for config.init_from_layers: A's first four conv layers go to the
  same places of the deeper net's blocks (first conv of blocks 1 and 2, first two of block
  3: the only reading in which the shapes agree), and its three dense layers to the same.
  """
  def positions(letter):
    names, i = {}, 0
    for b, block in enumerate(CONFIGS[letter]):
      for j in range(len(block)):
        i += 1
        names[(b, j)] = f"conv{i}"
    return names

  source, target = positions("A"), positions(config)
  first_four = sorted(source, key=lambda bj: int(source[bj][4:]))[:4]
  return tuple([f"{target[bj]}={source[bj]}" for bj in first_four] +
               [f"fc{j}=fc{j}" for j in (1, 2, 3)])


_make = accepting_init_option(VGG, tuple(_INITS))
for _name, _options in {
    "vgg11": dict(config="A"), "vgg11_lrn": dict(config="A", lrn=True),
    "vgg13": dict(config="B"), "vgg16c": dict(config="C"), "vgg16": dict(config="D"),
    "vgg19": dict(config="E"), "vgg11_bn": dict(config="A", batch_norm=True),
    "vgg13_bn": dict(config="B", batch_norm=True), "vgg16_bn": dict(config="D", batch_norm=True),
    "vgg19_bn": dict(config="E", batch_norm=True),
}.items():
  register(_name, **_options)(_make)
