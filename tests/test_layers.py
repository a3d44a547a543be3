"""The faster formulations of layers compute what the plain XLA ops compute."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxcnn.models import layers


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (2, 7, 9, 4), (1, 2, 2, 5)])
def test_max_pool_2x2_matches_flax_forward_and_gradient(shape):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)  # no ties
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
  np.testing.assert_array_equal(layers.max_pool_2x2(x), reference(x))
  loss = lambda pool: jax.grad(lambda x: jnp.sum(pool(x) ** 3))(x)  # noqa: E731
  np.testing.assert_allclose(loss(layers.max_pool_2x2), loss(reference), rtol=1e-6)


@pytest.mark.parametrize("size,kernel,padding", [
    (2, 3, ((1, 1), (1, 1))), (1, 3, ((1, 1), (1, 1))), (2, 1, ((0, 0), (0, 0))),
    (2, 3, "SAME"), (4, 3, "VALID"), (8, 3, ((1, 1), (1, 1)))])
def test_small_map_convolution_matches_xla(size, kernel, padding):
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  x = jax.random.normal(keys[0], (3, size, size, 16))
  conv = nn.Conv(24, (kernel, kernel), padding=padding)
  fast = conv.clone(conv_general_dilated=layers.conv_general_dilated)
  variables = conv.init(keys[1], x)
  np.testing.assert_allclose(fast.apply(variables, x), conv.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  grad = lambda m: jax.grad(lambda v: jnp.sum(m.apply(v, x) ** 2))(variables)  # noqa: E731
  for a, b in zip(jax.tree.leaves(grad(fast)), jax.tree.leaves(grad(conv))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
