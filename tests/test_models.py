import json
import os
import subprocess
import sys

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


def test_the_catalog_names_what_each_family_registers():
  """Each family's module, imported in a fresh process (in name order: inception.py builds on
  googlenet.py), registers exactly its catalog names: create imports the module CATALOG names."""
  code = ("import importlib, json\nfrom jaxcnn import models\nfound = {}\n"
          "for family in sorted({f for f, _ in models.CATALOG.values()}):\n"
          "  before = set(models._REGISTRY)\n"
          "  importlib.import_module('jaxcnn.models.' + family)\n"
          "  found[family] = sorted(set(models._REGISTRY) - before)\n"
          "print(json.dumps(found))")
  p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                     cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  found = json.loads(p.stdout.strip().splitlines()[-1])
  want = {}
  for name, (family, _) in models.CATALOG.items():
    want.setdefault(family, []).append(name)
  assert found == {f: sorted(n) for f, n in want.items()}


def test_registry_lists_and_rejects_unknown_names():
  assert "lenet5" in models.list_models()
  with pytest.raises(UserError, match="Unknown model 'lenet6'.*lenet5"):
    models.create("lenet6", num_classes=10)


# Compiled at XLA's default level for the comparison: minutes in all on 2 cores.
_INIT_LEVEL_CHECKED = ["lenet5"] + [pytest.param(n, marks=pytest.mark.slow) for n in (
    "lenet5_classic", "resnet20", "resnet_blog_small", "vgg11_bn", "resnet18_keras",
    "googlenet", "inception_v2", "alexnet_d2l", "alexnet_keras")]


@pytest.mark.parametrize("name", _INIT_LEVEL_CHECKED)
def test_initialisation_compiled_at_level_1_gives_the_default_levels_parameters(name):
  """state.create_train_state compiles the initialisation at XLA's backend level 1 (faster to
  compile on the CPU): the parameters are those the default level gives, to the bit."""
  from jaxcnn.train import state as state_lib
  from tests.conftest import optimized_compiles
  model = models.create(name, num_classes=10)
  init = jax.jit(lambda keys, x: model.init(keys, x, train=False))
  key = jax.random.PRNGKey(0)
  args = ({"params": key, "dropout": key}, jnp.zeros((1, *models.input_shape(name))))
  with optimized_compiles():
    options = state_lib._init_compiler_options()
    assert options == {"xla_backend_optimization_level": 1}
    lowered = init.lower(*args)
    fast, default = (lowered.compile(o)(*args) for o in (options, None))
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(fast), jax.tree.leaves(default)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))
