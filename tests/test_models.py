import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxcnn import models
from jaxcnn.errors import UserError


def param_count(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def test_lenet5_matches_d2l():
  model = models.create("lenet5", num_classes=10)
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
  assert param_count(variables["params"]) == 44_426
  shapes = {"/".join(k): v.shape for k, v in
            traverse_util.flatten_dict(variables["params"]).items()}
  assert shapes["conv1/kernel"] == (5, 5, 1, 6)
  assert shapes["conv2/kernel"] == (5, 5, 6, 16)
  assert shapes["fc1/kernel"] == (256, 120)
  assert model.apply(variables, jnp.zeros((3, 28, 28, 1)), train=True).shape == (3, 10)


def test_lenet5_uses_pytorch_default_init():
  # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases alike.
  params = models.create("lenet5", num_classes=10).init(
      jax.random.PRNGKey(1), jnp.zeros((1, 28, 28, 1)), train=False)["params"]
  for name, fan_in in [("conv1", 25), ("conv2", 150), ("fc1", 256), ("fc3", 84)]:
    bound = 1 / np.sqrt(fan_in)
    for leaf in (params[name]["kernel"], params[name]["bias"]):
      assert float(jnp.abs(leaf).max()) <= bound
      assert float(jnp.abs(leaf).max()) > 0.8 * bound  # uniform over the whole range


def test_registry_lists_and_rejects_unknown_names():
  assert "lenet5" in models.list_models()
  with pytest.raises(UserError, match="Unknown model 'lenet6'.*lenet5"):
    models.create("lenet6", num_classes=10)
