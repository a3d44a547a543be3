"""The faster formulations of layers compute what the plain XLA ops compute."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxcnn.cpu import pooling
from jaxcnn.models import layers


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (2, 7, 9, 4), (1, 2, 2, 5)])
def test_max_pool_2x2_matches_flax_forward_and_gradient(shape):
  x = jax.random.normal(jax.random.PRNGKey(0), shape)  # no ties
  reference = lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))  # noqa: E731
  np.testing.assert_array_equal(pooling.max_pool_2x2(x), reference(x))
  np.testing.assert_array_equal(layers.max_pool_2x2(x), reference(x))
  loss = lambda pool: jax.grad(lambda x: jnp.sum(pool(x) ** 3))(x)  # noqa: E731
  np.testing.assert_allclose(loss(pooling.max_pool_2x2), loss(reference), rtol=1e-6)
