"""LeNet-5.

`lenet5`: d2l's version from the first seed document (000): conv 6@5x5, sigmoid, 2x2
max-pool, conv 16@5x5, sigmoid, 2x2 max-pool, dense 120-84-classes with sigmoids,
PyTorch's default initialisation. 44,426 parameters for 28x28x1 input and 10 classes.
"""
import math
from typing import Any

import jax.numpy as jnp
from flax import linen as nn

from jaxcnn.models import register
from jaxcnn.models.layers import torch_default_bias_init, torch_default_kernel_init


def _dense(features: int, fan_in: int, dtype, name: str) -> nn.Dense:
  return nn.Dense(features, dtype=dtype, kernel_init=torch_default_kernel_init,
                  bias_init=torch_default_bias_init(fan_in), name=name)


def _conv(features: int, in_channels: int, kernel: int, dtype, name: str) -> nn.Conv:
  return nn.Conv(features, (kernel, kernel), padding="VALID", dtype=dtype,
                 kernel_init=torch_default_kernel_init,
                 bias_init=torch_default_bias_init(in_channels * kernel * kernel), name=name)


@register("lenet5")
class LeNet5(nn.Module):
  """d2l's LeNet-5 (sigmoid activations, max-pooling)."""
  num_classes: int = 10
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no dropout or batch norm in this network
    x = x.astype(self.dtype)
    x = _conv(6, x.shape[-1], 5, self.dtype, "conv1")(x)
    x = nn.max_pool(nn.sigmoid(x), (2, 2), strides=(2, 2))
    x = _conv(16, 6, 5, self.dtype, "conv2")(x)
    x = nn.max_pool(nn.sigmoid(x), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.sigmoid(_dense(120, x.shape[-1], self.dtype, "fc1")(x))
    x = nn.sigmoid(_dense(84, 120, self.dtype, "fc2")(x))
    return _dense(self.num_classes, 84, self.dtype, "fc3")(x)
