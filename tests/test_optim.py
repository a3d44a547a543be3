"""Optimisers, schedules, plateau/early stopping and EMA, as the papers define them."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default, lenet_fashion_mnist
from jaxcnn import models
from jaxcnn.errors import UserError
from jaxcnn.train import loop, monitor, optim, parallel as parallel_lib, steps
from jaxcnn.train.state import create_train_state


def _config(**fields):
  c = default.get_config()
  c.update(fields)
  return c


def test_sgd_with_l2_weight_decay_matches_the_papers_update():
  c = _config(optimizer="sgd", learning_rate=0.1, momentum=0.9, weight_decay=5e-4)
  tx = optim.create_optimizer(c, steps_per_epoch=10, total_steps=100)
  w, g = jnp.array([1.0, -2.0]), jnp.array([0.5, 0.25])
  state = tx.init(w)
  trace = jnp.zeros(2)
  for _ in range(3):  # torch.optim.SGD: buf = m*buf + (g + wd*w); w -= lr*buf
    updates, state = tx.update(g, state, w)
    trace = 0.9 * trace + (g + 5e-4 * w)
    np.testing.assert_allclose(updates, -0.1 * trace, rtol=1e-6)
    w = w + updates


@pytest.mark.parametrize("fields,checks", [
    (dict(schedule="exponential", learning_rate=1.0, lr_decay_factor=0.96, lr_decay_every_epochs=8),
     {0: 1.0, 79: 1.0, 80: 0.96, 160: 0.96 ** 2}),
    (dict(schedule="piecewise", learning_rate=0.1, lr_decay_steps=(32_000, 48_000)),
     {31_999: 0.1, 32_000: 0.01, 48_000: 0.001}),
    (dict(schedule="piecewise", learning_rate=0.1, lr_decay_epochs=(30, 60)),
     {299: 0.1, 300: 0.01, 600: 0.001}),
    (dict(schedule="piecewise", learning_rate=0.1, lr_decay_steps=(32_000,), warmup_steps=400,
          warmup_learning_rate=0.01), {0: 0.01, 400: 0.1, 32_000: 0.01}),
    # ResNet-110: 0.01 held for the first 400 iterations, then 0.1
    (dict(schedule="piecewise", learning_rate=0.1, lr_decay_steps=(32_000,), warmup_steps=400,
          warmup_learning_rate=0.01, warmup_kind="constant"),
     {0: 0.01, 399: 0.01, 400: 0.1, 31_999: 0.1, 32_000: 0.01}),
    (dict(schedule="cosine", learning_rate=0.1), {0: 0.1, 500: 0.05, 1000: 0.0}),
])
def test_schedules(fields, checks):
  schedule = optim.create_schedule(_config(**fields), steps_per_epoch=10, total_steps=1000)
  for step, want in checks.items():
    assert float(schedule(step)) == pytest.approx(want, rel=1e-5, abs=1e-9), step


def test_lr_scale_multiplies_every_update():
  tx = optim.create_optimizer(_config(optimizer="sgd", learning_rate=0.1, momentum=0.0), 1, 1)
  w = jnp.ones(3)
  state = tx.init(w)
  full, _ = tx.update(jnp.ones(3), state, w)
  state = optim.with_lr_scale(state, 0.1)
  assert optim.lr_scale(state) == pytest.approx(0.1)
  scaled, _ = tx.update(jnp.ones(3), state, w)
  np.testing.assert_allclose(scaled, 0.1 * full, rtol=1e-6)


def test_plateau_reduces_at_most_three_times_and_stops_early():
  p = optim.Plateau(patience=2, max_reductions=3, stop_patience=7, min_delta=0.01)
  values = [0.5, 0.6, 0.605, 0.6, 0.605, 0.6, 0.65] + [0.6] * 7
  events = [p.update(v) for v in values]
  reduce_epochs = [i + 1 for i, (r, _) in enumerate(events) if r]
  assert reduce_epochs == [4, 6, 9]  # 0.605 is within min_delta of 0.6; at most 3
  assert p.reductions == 3
  stop_epochs = [i + 1 for i, (_, s) in enumerate(events) if s]
  assert stop_epochs == [14]  # 7 epochs without an improvement of 0.01 over 0.65
  restored = optim.Plateau(patience=2, stop_patience=7, min_delta=0.01, **p.state())
  assert restored.state() == p.state()
  assert json.loads(json.dumps(p.state())) == p.state()


def test_ema_parameters_follow_the_polyak_average_and_are_evaluated():
  model = models.create("lenet5", num_classes=10)
  state = create_train_state(model, optax.sgd(0.5), (28, 28, 1), seed=0, ema=True)
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((16, 28, 28, 1), dtype=np.float32),
           "label": rng.integers(0, 10, 16).astype(np.int32)}
  step = jax.jit(lambda s, b: steps.train_step(s, b, ema_decay=0.9))
  ema = state.params
  for _ in range(3):
    state, _ = step(state, batch)
    ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, ema, state.params)
  for a, b in zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(ema)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  m = steps.eval_step(state, {**batch, "mask": np.ones(16, bool)})
  logits = model.apply({"params": ema}, batch["image"])
  assert float(m.compute()["loss"]) == pytest.approx(
      float(steps.cross_entropy(logits, batch["label"], 10).mean()), rel=1e-5)


def test_early_stopping_on_val_loss_stops_where_keras_does():
  """Keras's EarlyStopping(monitor="val_loss", patience=3, min_delta=0.1) on this sequence:
  epoch 2 (0.95) is lower but not by 0.1, epoch 3 (0.85) improves on 1.0 by more, and epochs
  4-6 do not improve on 0.85 by 0.1, so it stops after epoch 6. ModelCheckpoint(
  save_best_only=True) saves at every strictly lower loss: epochs 1, 2, 3, 5, 6."""
  config = _config(monitor="val_loss", early_stopping_patience=3, early_stopping_min_delta=0.1)
  plateau, watched = optim.Plateau.from_config(config), monitor.Monitor.from_config(config)
  assert (plateau.mode, watched.mode) == ("min", "min")
  losses = [1.0, 0.95, 0.85, 0.86, 0.80, 0.79, 0.78]
  stops, saves = [], []
  for epoch, loss in enumerate(losses, 1):
    if watched.update(loss):
      saves.append(epoch)
    if plateau.update(loss)[1]:
      stops.append(epoch)
      break
  assert stops == [6] and saves == [1, 2, 3, 5, 6]
  assert monitor.Monitor.from_config(ml_collections.ConfigDict({"monitor": "val_accuracy"})).mode == "max"
  with pytest.raises(UserError, match="config.monitor='val_acc'"):
    monitor.Monitor.from_config(ml_collections.ConfigDict({"monitor": "val_acc"}))


def test_the_best_checkpoint_by_val_loss_is_the_lowest(tmp_path):
  from jaxcnn.train import checkpoint
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=1, best_metric="val_loss", best_mode="min")
  state, metrics = {"w": jnp.zeros(3)}, {"m": jnp.zeros(2)}
  for step, loss in ((1, 0.9), (2, 0.5), (3, None), (4, 0.7), (5, None)):
    ckpt.save(step, state, {"model": "none"}, train_metrics=metrics,
              metrics=None if loss is None else {"val_loss": loss})
  ckpt.wait()
  assert ckpt.best_step() == 2 and ckpt.manager.all_steps() == [2, 5]
  ckpt.close()


@pytest.mark.parametrize("watch", ["val_accuracy", "val_loss"])
def test_plateau_and_early_stopping_are_saved_and_honoured_on_rerun(tmp_path, capsys, watch,
                                                                   one_device):
  config = lenet_fashion_mnist.get_config()
  config.monitor = watch
  # Random images: at learning rate 0 no data improves, so the data's size is only time.
  config.update(dict(dataset="synthetic", synthetic_image_shape=(28, 28, 1),
                     synthetic_train_examples=1024, synthetic_test_examples=500,
                     batch_size=256, eval_batch_size=256, num_epochs=6, learning_rate=0.0,
                     plateau_patience=1, early_stopping_patience=2))
  workdir = str(tmp_path)
  loop.train_and_evaluate(config, workdir)  # lr 0: never improves after epoch 1
  out = capsys.readouterr().out
  assert "learning rate x0.1 (reduction 1 of 3)" in out
  assert "Early stopping" in out
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert max(r["epoch"] for r in rows) == 3
  assert {r["split"] for r in rows} == {"train", "validation"}  # the split that selects
  assert f"{watch} has not improved for 1 epoch(s)" in out and " val acc " in out
  par = parallel_lib.JitParallel()
  from jaxcnn.train import checkpoint
  ckpt = checkpoint.Checkpointer.of_workdir(workdir)
  record = ckpt.read_record(ckpt.latest_step())
  assert record["stopped_early"] and record["plateau"]["reductions"] == 2
  assert ckpt.best_step() == 4  # epoch 1: no later epoch beats it
  ckpt.close()
  assert loop.train_and_evaluate(config, workdir) == {}
  assert "stopped early" in capsys.readouterr().out
