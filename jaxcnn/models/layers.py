"""The few pieces shared by several model families: initialisers."""
import math

import jax
import jax.numpy as jnp
from flax import linen as nn

# PyTorch's default for nn.Linear / nn.Conv2d: kaiming_uniform(a=sqrt(5)), i.e.
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight. The seeds' networks are trained
# with it, and for sigmoid networks (d2l's LeNet) the initial scale shapes the curve.
torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in: int):
  """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); flax has no fan-in bias init."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init
