"""jit (Mesh) and pmap run the same step to the same numbers; checkpoints cross between them."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import linen as nn

from jaxcnn import models
from jaxcnn.cpu import onednn
from jaxcnn.errors import UserError
from jaxcnn.train import checkpoint, parallel as parallel_lib, steps
from jaxcnn.train.state import create_train_state, for_devices
from tests.conftest import optimized_compiles

BATCH = 32  # global: 4 per device on 8 devices
STEPS = 6  # each path's run; also two calls of 3 steps each
# Small enough that float32 reduction-order noise is not amplified past tolerance in STEPS
# steps on random data (at 0.1 they drift apart by 0.4% by step 6, at 0.01 by 1e-4).
LEARNING_RATE = 1e-3


def _model(bn_axis_name=None, parallel=None):
  """He et al.'s CIFAR ResNet with one block a stage (ResNet-8: ResNet-20's layers, strided
  stages and shortcuts, a third of its compilation), for `parallel`'s devices (the CPU's
  kernels, as training builds it) if given."""
  model = models.create("resnet20", num_classes=10, stage_sizes=(1, 1, 1))
  model = model.clone(bn_axis_name=bn_axis_name) if bn_axis_name else model
  return for_devices(model, parallel) if parallel is not None else model


def _batches(n=STEPS):
  rng = np.random.default_rng(0)
  return [{"image": rng.normal(size=(BATCH, 32, 32, 3)).astype(np.float32),
           "label": rng.integers(0, 10, BATCH).astype(np.int32)} for _ in range(n)]


def _train(parallel, batches, state=None):
  """Trains from `state` (or a fresh one) on `batches`; returns host state and losses."""
  model = _model(parallel.bn_axis_name, parallel)
  if state is None:
    state = create_train_state(model, optax.sgd(LEARNING_RATE, momentum=0.9), (32, 32, 3), seed=0)
  else:
    state = state.replace(apply_fn=model.apply)
  state = parallel.put_state(state)
  step = parallel.compile_train_step(steps.train_step)
  losses = []
  for batch in batches:
    state, m = step(state, parallel.put_batch(batch))
    losses.append(float(parallel.metrics(m).compute()["loss"]))
  return state, losses


def _params(parallel, state):
  host = parallel.host_state(state)
  return jax.tree.leaves({"params": host.params, "batch_stats": host.batch_stats})


def _assert_close(a, b, tol=1e-4):
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def _initial_params():
  state = create_train_state(_model(), optax.sgd(LEARNING_RATE), (32, 32, 3), seed=0)
  return jax.tree.leaves({"params": state.params, "batch_stats": state.batch_stats})


@pytest.fixture(scope="module")
def runs():
  batches = _batches()
  devices = jax.devices()
  assert len(devices) == 8
  paths = {
      "jit1": parallel_lib.JitParallel(devices[:1]),
      "jit8_sync": parallel_lib.JitParallel(devices),
      "pmap8_sync": parallel_lib.PmapParallel(devices, sync_batch_norm=True),
      "jit8_replica": parallel_lib.JitParallel(devices, per_replica_batch_norm=True),
      "pmap8_replica": parallel_lib.PmapParallel(devices, sync_batch_norm=False),
  }
  # Optimised: unoptimised, the 8-device steps run longer than they compile; and the
  # checkpoint test below then reads the same programs from the compilation cache.
  with optimized_compiles():
    return {name: (p, *_train(p, batches)) for name, p in paths.items()}


def test_synchronised_batch_norm_paths_agree_with_one_device(runs):
  p1, s1, l1 = runs["jit1"]
  for name in ("jit8_sync", "pmap8_sync"):
    p, s, l = runs[name]
    np.testing.assert_allclose(l, l1, rtol=2e-5, err_msg=name)
    _assert_close(_params(p, s), _params(p1, s1))
  # The comparison means something only if training moved the parameters well past it.
  moved = max(float(np.max(np.abs(a - b))) for a, b in zip(_params(p1, s1), _initial_params()))
  assert moved > 50 * 1e-4


def test_per_replica_batch_norm_paths_agree_with_each_other_not_with_one_device(runs):
  pj, sj, lj = runs["jit8_replica"]
  pp, sp, lp = runs["pmap8_replica"]
  np.testing.assert_allclose(lj, lp, rtol=2e-5)
  _assert_close(_params(pj, sj), _params(pp, sp))
  p1, s1, l1 = runs["jit1"]
  assert abs(lj[-1] - l1[-1]) > 1e-3  # 4-example statistics are not 32-example ones


def _train_grouped(parallel, batches, group_size):
  """As _train, with `group_size` steps per call (steps.scanned); returns the state and the
  running metrics."""
  model = _model(parallel.bn_axis_name, parallel)
  state = parallel.put_state(create_train_state(model, optax.sgd(LEARNING_RATE, momentum=0.9),
                                                (32, 32, 3), seed=0))
  metrics = parallel.put_state(steps.Metrics.empty())
  step = parallel.compile_train_step(steps.scanned(steps.accumulating(steps.train_step)),
                                     running_metrics=True, grouped=True)
  for i in range(0, len(batches), group_size):
    group = {k: np.stack([b[k] for b in batches[i:i + group_size]]) for k in batches[0]}
    state, metrics = step(state, metrics, parallel.put_batch(group, grouped=True))
  return state, parallel.metrics(metrics)


@pytest.mark.parametrize("name", ["jit1", "jit8_replica", "pmap8_sync"])
def test_several_steps_per_call_compute_what_one_call_per_step_does(runs, name):
  p, state, losses = runs[name]
  with optimized_compiles():
    grouped, metrics = _train_grouped(p, _batches(), group_size=STEPS // 2)
  _assert_close(_params(p, grouped), _params(p, state), tol=1e-5)
  # The running metrics count every step's examples; their loss is the steps' mean loss.
  assert int(metrics.accuracy.count) == STEPS * BATCH
  np.testing.assert_allclose(float(metrics.loss.compute()), np.mean(losses), rtol=1e-5)


@pytest.mark.parametrize("first,second", [("pmap", "jit"), ("jit", "pmap")])
@optimized_compiles()
def test_checkpoint_crosses_between_paths(tmp_path, first, second):
  config = ml_collections.ConfigDict({"parallelism": first, "sync_batch_norm": True})
  batches = _batches(6)
  pa = parallel_lib.create(config)
  straight, straight_losses = _train(pa, batches)
  state, _ = _train(pa, batches[:3])

  ckpt = checkpoint.Checkpointer(str(tmp_path))
  metrics = steps.Metrics.empty()
  ckpt.save(3, pa.checkpointable(state), {"model": "resnet8"},
            train_metrics=parallel_lib.replicate_on_mesh(pa.host_state(metrics), pa.replicated))
  ckpt.wait()
  config.parallelism = second
  pb = parallel_lib.create(config)
  template = create_train_state(_model(), optax.sgd(LEARNING_RATE, momentum=0.9), (32, 32, 3), seed=1)
  restored, _ = ckpt.restore(3, pb.abstract_checkpoint(pb.host_state(template)),
                             pb.abstract_checkpoint(pb.host_state(metrics)))
  resumed, resumed_losses = _train(pb, batches[3:], state=restored)
  np.testing.assert_allclose(resumed_losses, straight_losses[3:], rtol=2e-5)
  _assert_close(_params(pb, resumed), _params(pa, straight))
  ckpt.close()


def test_batch_that_does_not_divide_over_devices_is_refused():
  p = parallel_lib.JitParallel()
  with pytest.raises(UserError, match="batch_size=100 does not divide evenly over 8 devices"):
    p.check_batch_size(100)
  with pytest.raises(UserError, match="Unknown parallelism 'pjit'"):
    parallel_lib.create(ml_collections.ConfigDict({"parallelism": "pjit"}))


def test_jit_over_several_devices_leaves_the_kernel_gradient_to_xla():
  """GSPMD partitions the CPU kernel gradient's chunk loop with collectives inside it (which
  once hung on 8 CPU devices), and would replicate oneDNN's custom calls; traced for a Mesh of
  several devices, the step has neither, while on one device it keeps the CPU formulation
  (oneDNN's passes, or the chunked loop where oneDNN's binding does not build)."""
  model = models.create("lenet5", num_classes=10)
  batch = {"image": np.zeros((8, 28, 28, 1), np.float32), "label": np.zeros(8, np.int32)}

  def loops_and_custom_calls(parallel):
    state = create_train_state(for_devices(model, parallel), optax.sgd(LEARNING_RATE),
                               (28, 28, 1), seed=0)
    jaxpr = str(parallel.compile_train_step(steps.train_step).trace(
        parallel.put_state(state), parallel.put_batch(batch)).jaxpr)
    return jaxpr.count("scan["), sum(jaxpr.count(target) for target in onednn.CONV_TARGETS)

  # LeNet's two convolutions: three oneDNN passes each (the first one's input gradient is
  # not needed, but the jaxpr still has it), or two chunked loops.
  one_device = (0, 6) if onednn.available() else (2, 0)
  assert loops_and_custom_calls(parallel_lib.JitParallel(jax.devices()[:1])) == one_device
  assert loops_and_custom_calls(parallel_lib.JitParallel(jax.devices())) == (0, 0)


def test_step_flops_count_the_convolutions_on_every_path():
  # XLA's cost analysis cannot see inside oneDNN's custom calls; step_flops traces the step
  # with the plain model, so every path counts the same work per example.
  devices = jax.devices()
  batch = _batches(1)[0]
  per_example = {}
  for name, p in {"jit1": parallel_lib.JitParallel(devices[:1]),
                  "jit8": parallel_lib.JitParallel(devices),
                  "jit8_replica": parallel_lib.JitParallel(devices, per_replica_batch_norm=True),
                  "pmap8": parallel_lib.PmapParallel(devices)}.items():
    state = p.put_state(create_train_state(_model(p.bn_axis_name, p), optax.sgd(LEARNING_RATE),
                                           (32, 32, 3), seed=0))
    flops = parallel_lib.step_flops(p, functools.partial(steps.train_step), state,
                                    p.put_batch(batch), _model(p.bn_axis_name))
    programs = p.num_devices if p.name == "pmap" or p.axis_name else 1
    per_example[name] = flops * programs / BATCH
  # More than two passes (2 FLOPs per multiply-add) over ResNet-8's ~14M multiply-adds per
  # example: the convolutions are counted (the count from oneDNN's step leaves most out).
  assert per_example["jit1"] > 2 * 2 * 14e6
  for name, count in per_example.items():
    assert count == pytest.approx(per_example["jit1"], rel=0.01), name
