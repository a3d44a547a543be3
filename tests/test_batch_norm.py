"""jaxcnn.cpu.batch_norm.BatchNorm (and jaxcnn.models.batch_norm's, which it extends):
nn.BatchNorm's variables, values and gradients, with oneDNN's passes taken where they apply."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxcnn.cpu import batch_norm as cpu_batch_norm
from jaxcnn.cpu import onednn
from jaxcnn.models import batch_norm

ONEDNN_MISSING = None if onednn.available() else "oneDNN's binding does not build here"
needs_onednn = pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))
OPTIONS = dict(momentum=0.9, epsilon=1e-5)


def _batch(shape=(6, 5, 7, 16), seed=0):
  # An offset and a spread per channel, as activations have.
  x = jax.random.normal(jax.random.PRNGKey(seed), shape)
  return 3.0 + x * jnp.linspace(0.5, 4.0, shape[-1])


def _trained_variables(module, x):
  variables = module.init(jax.random.PRNGKey(1), x, use_running_average=False)
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(2), p.shape),
                        variables["params"])
  return {"params": params, "batch_stats": variables["batch_stats"]}


def _loss_and_grads(module, variables, x):
  def loss(params, x):
    y, updates = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                              use_running_average=False, mutable=["batch_stats"])
    return jnp.sum(jnp.sin(y) * jnp.arange(y.shape[-1])), (y, updates["batch_stats"])
  return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(variables["params"], x)


def _custom_calls(module, variables, x):
  jaxpr = str(jax.make_jaxpr(lambda p, x: _loss_and_grads(
      module, {"params": p, "batch_stats": variables["batch_stats"]}, x))(variables["params"], x))
  return sum(jaxpr.count(target) for target in onednn.BATCH_NORM_TARGETS)


@pytest.mark.parametrize("mode", [pytest.param("onednn", marks=needs_onednn), "plain"])
def test_matches_flax_values_statistics_and_gradients(mode):
  x = _batch()
  module = cpu_batch_norm.BatchNorm if mode == "onednn" else batch_norm.BatchNorm
  ours, flax_own = module(**OPTIONS), nn.BatchNorm(**OPTIONS)
  variables = _trained_variables(flax_own, x)
  assert (jax.tree.structure(_trained_variables(ours, x)) == jax.tree.structure(variables))
  (loss, (y, stats)), grads = _loss_and_grads(ours, variables, x)
  (loss_ref, (y_ref, stats_ref)), grads_ref = _loss_and_grads(flax_own, variables, x)
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(loss, loss_ref, rtol=1e-5)
  for a, b in zip(jax.tree.leaves((stats, grads)), jax.tree.leaves((stats_ref, grads_ref))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  evaluated = ours.apply(variables, x, use_running_average=True)
  np.testing.assert_array_equal(evaluated, flax_own.apply(variables, x, use_running_average=True))
  assert _custom_calls(ours, variables, x) == (2 if mode == "onednn" else 0)


@needs_onednn
def test_gradient_through_the_batch_statistics_matches_flax():
  """The statistics' cotangents are added to oneDNN's input gradient when a loss uses them."""
  x = _batch(seed=3)
  # Momentum 0: the running averages are the batch's statistics themselves.
  ours, flax_own = cpu_batch_norm.BatchNorm(momentum=0.0), nn.BatchNorm(momentum=0.0)
  variables = _trained_variables(flax_own, x)

  def grad_of_statistics(module):
    def loss(x):
      y, updates = module.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
      stats = updates["batch_stats"]
      return (jnp.sum(jnp.sin(y)) + jnp.sum(stats["mean"] ** 2)
              + jnp.sum(jnp.sqrt(stats["var"])))
    return jax.grad(loss)(x)

  expected = grad_of_statistics(flax_own)
  without_statistics = jax.grad(lambda x: jnp.sum(jnp.sin(flax_own.apply(
      variables, x, use_running_average=False, mutable=["batch_stats"])[0])))(x)
  assert float(jnp.max(jnp.abs(expected - without_statistics))) > 1e-2  # the terms matter
  np.testing.assert_allclose(grad_of_statistics(ours), expected, rtol=1e-4,
                             atol=1e-4 * float(jnp.max(jnp.abs(expected))))


@needs_onednn
def test_other_cases_are_flax_own():
  x = _batch()
  ours = cpu_batch_norm.BatchNorm
  variables = _trained_variables(nn.BatchNorm(**OPTIONS), x)
  assert _custom_calls(ours(**OPTIONS), variables, x) == 2
  assert _custom_calls(ours(**OPTIONS, dtype=jnp.bfloat16), variables, x) == 0
  assert _custom_calls(ours(**OPTIONS), variables, x[:, 0]) == 0  # not NHWC
