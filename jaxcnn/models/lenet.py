"""LeNet-5.

`lenet5`: d2l's version from the first seed document (000): conv 6@5x5, sigmoid, 2x2
max-pool, conv 16@5x5, sigmoid, 2x2 max-pool, dense 120-84-classes with sigmoids,
PyTorch's default initialisation. 44,426 parameters for 28x28x1 input and 10 classes.

`lenet5_classic`: LeCun et al. (1998), "Gradient-based learning applied to document
recognition", section II.B. The network is defined on a 32x32 field: a 28x28 input (MNIST,
Fashion-MNIST) is zero-padded by 2 on every side inside the network, as the paper centres
its 28x28 digits in 32x32 images; a 32x32 input is used as it is. Layers: C1 conv 6@5x5,
S2 trainable 2x2 sub-sampling (sum of the four inputs times a per-map coefficient plus a
per-map bias), C3 conv 16@5x5 over the paper's Table I connection scheme (option
`sparse_c3=False`: every map sees all six), S4 as S2, C5 conv 120@5x5, F6 dense 84, every
one followed by the paper's squashing 1.7159 tanh(2a/3); weights U(-2.4/F, 2.4/F) with F the
fan-in (appendix C), biases zero. The paper's output layer of Euclidean RBF units with
fixed hand-drawn codes is replaced by a dense layer giving logits for the softmax
cross-entropy this project trains with. 60,850 parameters for 10 classes (61,750 with a
fully connected C3).
"""
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import layers, register
from jaxcnn.models.layers import torch_default_bias_init, torch_default_kernel_init

ModuleDef = Any


def _dense(features: int, fan_in: int, dtype, name: str) -> nn.Dense:
  return nn.Dense(features, dtype=dtype, kernel_init=torch_default_kernel_init,
                  bias_init=torch_default_bias_init(fan_in), name=name)


def _conv(conv: ModuleDef, features: int, in_channels: int, kernel: int, dtype,
          name: str) -> nn.Conv:
  return conv(features, (kernel, kernel), padding="VALID", dtype=dtype,
              kernel_init=torch_default_kernel_init,
              bias_init=torch_default_bias_init(in_channels * kernel * kernel), name=name)


@register("lenet5")
class LeNet5(nn.Module):
  """d2l's LeNet-5 (sigmoid activations, max-pooling)."""
  num_classes: int = 10
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv
  max_pool_2x2: Callable = layers.max_pool_2x2

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout or batch norm in this network
    x = x.astype(self.dtype)
    x = _conv(self.conv, 6, x.shape[-1], 5, self.dtype, "conv1")(x)
    x = self.max_pool_2x2(nn.sigmoid(x))
    x = _conv(self.conv, 16, 6, 5, self.dtype, "conv2")(x)
    x = self.max_pool_2x2(nn.sigmoid(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.sigmoid(_dense(120, x.shape[-1], self.dtype, "fc1")(x))
    x = nn.sigmoid(_dense(84, 120, self.dtype, "fc2")(x))
    return _dense(self.num_classes, 84, self.dtype, "fc3")(x)


# Table I of the paper: the S2 maps each C3 map reads.
_C3_TABLE = ((0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
             (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
             (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5))


def _lecun_uniform_init(key, shape, dtype=jnp.float32):
  """Appendix C: U(-2.4/F, 2.4/F), F the number of inputs of the unit (not its square root)."""
  bound = 2.4 / math.prod(shape[:-1])
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def _squash(x):
  return 1.7159 * jnp.tanh(x * (2.0 / 3.0))  # appendix A: f(a) = A tanh(S a)


class SubSampling(nn.Module):
  """S2 / S4: the sum of each 2x2 block, times a trainable per-map coefficient, plus a bias.

  The coefficient starts at 1/4 so that the layer begins as a plain average pool.
  """
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    coef = self.param("coef", nn.initializers.constant(0.25), (channels,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
    x = nn.pool(x, 0.0, jax.lax.add, (2, 2), (2, 2), "VALID")
    return x * coef.astype(self.dtype) + bias.astype(self.dtype)


@register("lenet5_classic")
class LeNet5Classic(nn.Module):
  """LeCun et al. (1998)'s LeNet-5: scaled tanh, trainable sub-sampling, sparse C3."""
  num_classes: int = 10
  sparse_c3: bool = True
  dtype: Any = jnp.float32
  conv: ModuleDef = nn.Conv

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout or batch norm in this network
    x = x.astype(self.dtype)
    if x.shape[1:3] == (28, 28):
      x = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    if x.shape[1:3] != (32, 32):
      raise ValueError(f"lenet5_classic takes 32x32 or 28x28 images, not {x.shape[1:3]}.")

    def conv(features, name):
      return self.conv(features, (5, 5), padding="VALID", dtype=self.dtype,
                       kernel_init=_lecun_uniform_init, name=name)

    x = _squash(conv(6, "c1")(x))
    x = _squash(SubSampling(self.dtype, name="s2")(x))
    if self.sparse_c3:
      x = jnp.concatenate([conv(1, f"c3_{j}")(x[..., list(inputs)])
                           for j, inputs in enumerate(_C3_TABLE)], axis=-1)
    else:
      x = conv(16, "c3")(x)
    x = _squash(x)
    x = _squash(SubSampling(self.dtype, name="s4")(x))
    x = _squash(conv(120, "c5")(x))
    x = x.reshape((x.shape[0], -1))
    x = _squash(nn.Dense(84, dtype=self.dtype, kernel_init=_lecun_uniform_init, name="f6")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=_lecun_uniform_init,
                    name="output")(x)
