import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import lenet_fashion_mnist
from jaxcnn import models
from jaxcnn.data import sources
from jaxcnn.train import checkpoint, loop, steps
from jaxcnn.train.parallel import JitParallel
from jaxcnn.train.state import create_train_state
from tests.conftest import needs_fashion_mnist, optimized_compiles


def _lenet_state(seed=0, tx=None):
  model = models.create("lenet5", num_classes=10)
  return create_train_state(model, tx or optax.adam(1e-3), (28, 28, 1), seed)


def _batch(n=64, seed=0):
  """Noise images with a bright band whose row says the label: learnable in a few steps."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n).astype(np.int32)
  images = 0.3 * rng.random((n, 28, 28, 1), dtype=np.float32)
  for i, label in enumerate(labels):
    images[i, 2 * label + 4:2 * label + 7] = 1.0
  return {"image": images, "label": labels}


def test_train_step_lowers_loss_on_a_fixed_batch():
  parallel = JitParallel()
  state = parallel.put_state(_lenet_state(tx=optax.adam(1e-2)))
  step = parallel.compile_train_step(steps.train_step)
  batch = parallel.put_batch(_batch())
  losses = []
  for _ in range(60):
    state, m = step(state, batch)
    losses.append(float(m.compute()["loss"]))
  assert int(state.step) == 60
  assert losses[-1] < 0.25 * losses[0]


def _all_finite(tree):
  return all(bool(np.isfinite(x).all()) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("rollback", [False, True])
def test_nonfinite_steps_change_nothing_and_overflowing_updates_count_as_nonfinite(rollback):
  step = jax.jit(functools.partial(steps.train_step, rollback_nonfinite=rollback))
  state = _lenet_state()
  poisoned = _batch()
  poisoned["image"][0, 0, 0, 0] = np.nan  # a NaN loss and gradients
  new, metrics = step(state, poisoned)
  assert int(metrics.nonfinite_steps.count) == 1 and int(metrics.nonfinite_steps.first_step) == 1
  assert int(new.step) == 1
  for a, b in zip(jax.tree.leaves((new.params, new.opt_state)),
                  jax.tree.leaves((state.params, state.opt_state))):
    np.testing.assert_array_equal(a, b)
  # Finite gradients, an update that overflows: counted as non-finite; undone only when the
  # run goes on past such steps (rollback_nonfinite, config.skip_nonfinite_steps).
  overflowing = _lenet_state(tx=optax.chain(optax.scale(1e30), optax.scale(1e30)))
  new, metrics = step(overflowing, _batch())
  assert int(metrics.nonfinite_steps.count) == 1
  assert _all_finite(new.params) == rollback
  if rollback:
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(overflowing.params)):
      np.testing.assert_array_equal(a, b)
  _, metrics = step(state, _batch())
  assert int(metrics.nonfinite_steps.count) == 0


def test_eval_counts_every_example_once_with_an_uneven_batch():
  # 10,000 examples, global eval batch 296 (8 devices x 37): 34 batches, the last padded.
  rng = np.random.default_rng(0)
  split = sources.Split(rng.integers(0, 256, (10_000, 28, 28, 1), dtype=np.uint8),
                        rng.integers(0, 10, 10_000).astype(np.int32), tuple("abcdefghij"))
  config = lenet_fashion_mnist.get_config()
  config.eval_batch_size = 296
  parallel = JitParallel()
  state = _lenet_state()
  summary = loop.evaluate(parallel.compile_eval_step(steps.eval_step), parallel,
                          parallel.put_state(state), split, config)
  assert summary["num_examples"] == 10_000
  logits = state.apply_fn({"params": state.params}, split.images / np.float32(255), train=False)
  want_acc = float((np.argmax(logits, -1) == split.labels).mean())
  want_loss = float(steps.cross_entropy(logits, split.labels, 10).mean())
  assert summary["accuracy"] == pytest.approx(want_acc, abs=1e-6)
  assert summary["loss"] == pytest.approx(want_loss, rel=1e-5)


def test_checkpoint_round_trip_restores_an_identical_state(tmp_path):
  parallel = JitParallel()
  state = parallel.put_state(_lenet_state(seed=1))
  step = parallel.compile_train_step(steps.train_step)
  for i in range(3):
    state, _ = step(state, parallel.put_batch(_batch(seed=i)))
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2)
  metrics = parallel.put_state(steps.Metrics.empty())
  ckpt.save(3, state, {"model": "lenet5", "epoch": 1}, train_metrics=metrics,
            metrics={"test_accuracy": 0.5})
  ckpt.wait()
  target = parallel.host_state(_lenet_state(seed=2))
  restored, _ = ckpt.restore(3, parallel.abstract_checkpoint(target),
                             parallel.abstract_checkpoint(parallel.host_state(metrics)))
  assert ckpt.read_record(3)["model"] == "lenet5"
  got, want = jax.tree.leaves_with_path(restored), jax.tree.leaves_with_path(state)
  assert [p for p, _ in got] == [p for p, _ in want]
  for (path, a), (_, b) in zip(got, want):
    assert a.dtype == b.dtype, path
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))
  ckpt.close()


def test_first_save_of_many_small_replicated_arrays_compiles_almost_nothing(tmp_path):
  """Orbax's default replica-parallel save slices every replicated array on each device with
  a program of its own; checkpoint.py writes arrays under its threshold whole instead."""
  compiles = []

  def count_compiles(event, secs, **kw):
    if event == "/jax/core/compile/backend_compile_duration":
      compiles.append(secs)

  replicated = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(jax.devices()), ("data",)),
                                          jax.sharding.PartitionSpec())
  # 60 arrays of distinct shapes, 64 x 8 to 64 x 67 floats: each divides over 8 replicas.
  state = {f"a{i}": jax.device_put(np.full((64, 8 + i), i, np.float32), replicated)
           for i in range(60)}
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  metrics = jax.device_put(np.zeros((2,), np.float32), replicated)
  jax.monitoring.register_event_duration_secs_listener(count_compiles)
  try:
    ckpt.save(1, state, {"model": "none"}, train_metrics={"m": metrics})
    ckpt.wait()
  finally:
    jax.monitoring.unregister_event_duration_listener(count_compiles)
  assert len(jax.devices()) == 8 and len(compiles) < 10  # Orbax's default: 480 (8 x 60 slices)
  restored, _ = ckpt.restore(1, jax.tree.map(lambda a: jax.ShapeDtypeStruct(
      a.shape, a.dtype, sharding=replicated), state), {"m": jax.ShapeDtypeStruct(
          (2,), np.float32, sharding=replicated)})
  for name, a in state.items():
    np.testing.assert_array_equal(np.asarray(restored[name]), np.asarray(a), err_msg=name)
  ckpt.close()


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


@needs_fashion_mnist
@optimized_compiles()  # 340 steps: run time, not compile time
def test_short_real_run_learns_and_resumes_exactly(tmp_path, one_device):
  config = lenet_fashion_mnist.get_config()
  config.num_train_steps = 150  # part of the first epoch (234 steps)
  config.progress_every_secs = 1e9
  workdir = str(tmp_path / "resumed")
  first = loop.train_and_evaluate(config, workdir)
  assert first["num_examples"] == 10_000
  assert first["accuracy"] > 0.35  # chance is 0.10

  # The same command with a longer budget resumes from step 150 ...
  config.num_train_steps = 170
  resumed = loop.train_and_evaluate(config, workdir)
  rows = _read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert [(r["step"], r["split"]) for r in rows] == [
      (150, "train"), (150, "test"), (170, "train"), (170, "test")]
  assert rows[2]["num_examples"] == 20 * 256  # only the 20 new steps were trained
  assert json.load(open(os.path.join(workdir, "config.json")))["num_train_steps"] == 170

  # ... and ends exactly where an uninterrupted 170-step run does.
  straight = loop.train_and_evaluate(config, str(tmp_path / "straight"))
  assert resumed == pytest.approx(straight, rel=0, abs=0)


@needs_fashion_mnist
@optimized_compiles()
def test_several_steps_per_call_train_exactly_as_one_call_per_step(tmp_path, one_device):
  config = lenet_fashion_mnist.get_config()
  config.num_train_steps = 30
  config.log_every_steps = 7  # inside groups of 8: logged at the end of the call
  config.checkpoint_every_steps = 12  # inside a group: that group is one call per step
  config.progress_every_secs = 1e9
  results, rows = {}, {}
  for group_size in (1, 8):
    config.steps_per_dispatch = group_size
    workdir = str(tmp_path / str(group_size))
    results[group_size] = loop.train_and_evaluate(config, workdir)
    rows[group_size] = [{k: v for k, v in r.items() if k not in ("seconds", "images_per_sec")}
                        for r in _read_jsonl(os.path.join(workdir, "metrics.jsonl"))]
    assert checkpoint.Checkpointer(os.path.join(workdir, "checkpoints")).manager.all_steps() \
        == [12, 24, 30]
  assert rows[8][0]["num_examples"] == 30 * 256
  assert rows[8] == rows[1]
  assert results[8] == pytest.approx(results[1], rel=0, abs=0)


def test_steps_per_dispatch_must_be_a_positive_whole_number():
  config = lenet_fashion_mnist.get_config()
  config.steps_per_dispatch = 0
  with pytest.raises(loop.UserError, match="steps_per_dispatch=0"):
    loop.prepare(config)
