"""Preemption, exact resume, damaged checkpoints, divergence and bad input (end to end)."""
import json
import os
import signal

import numpy as np
import pytest

from tests import launcher
from tests.conftest import needs_fashion_mnist

pytestmark = needs_fashion_mnist

STEPS = 90  # LeNet on Fashion-MNIST: 234 steps per epoch
COMMON = (f"--config.num_train_steps={STEPS}", "--config.checkpoint_every_steps=10",
          "--config.eval_batch_size=2000")


def _assert_same_state(a: dict, b: dict):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  code, out, err = launcher.run(workdir, *COMMON)
  assert code == 0, err[-2000:]
  return workdir


def test_sigterm_then_sigint_checkpoint_the_current_step_and_exit_as_preempted(
    tmp_path, uninterrupted):
  """Stopped by SIGTERM (a scheduler's preemption), resumed, stopped by SIGINT (Ctrl-C),
  resumed again: each stop saves the step it was on, and the run ends as if never stopped."""
  workdir = str(tmp_path)
  start = 0
  for sig, at_step in ((signal.SIGTERM, 23), (signal.SIGINT, 53)):
    code, out, err, at = launcher.run_until(workdir, *COMMON, at_step=at_step, sig=sig)
    assert code == 75, (sig, err[-2000:])
    assert "Preempted at step" in err and "rerun the same command" in err
    if start:
      assert f"Resuming from the checkpoint at step {start}" in out
    stopped = launcher.checkpoint_steps(workdir)[-1]
    assert stopped >= at and stopped % 10 != 0, sig  # the step it was on, not a periodic one
    start = stopped
  code, out, err = launcher.run(workdir, *COMMON)
  assert code == 0 and f"Resuming from the checkpoint at step {start}" in out
  _assert_same_state(launcher.saved_state(workdir), launcher.saved_state(uninterrupted))


def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, uninterrupted):
  workdir = str(tmp_path)
  code, _, err = launcher.run(workdir, "--config.num_train_steps=30",
                              "--config.checkpoint_every_steps=10")
  assert code == 0, err[-2000:]
  assert launcher.checkpoint_steps(workdir) == [10, 20, 30]
  state_dir = os.path.join(workdir, "checkpoints", "30", "state")
  for root, _, files in os.walk(state_dir):  # truncate every data file of step 30
    for f in files:
      if "manifest" in f or root.endswith("d"):
        open(os.path.join(root, f), "wb").close()
  code, out, err = launcher.run(workdir, *COMMON)
  assert code == 0, err[-2000:]
  assert "checkpoints/30 cannot be read" in err
  assert "Resuming from the checkpoint at step 20" in out
  assert os.listdir(os.path.join(workdir, "checkpoints.damaged"))
  _assert_same_state(launcher.saved_state(workdir), launcher.saved_state(uninterrupted))


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path):
  workdir = str(tmp_path)
  # The learning rate jumps from 1 to 1e38 after step 10 (a checkpoint): step 11's Adam
  # update leaves finite parameters of about 1e38; step 12's loss is infinite.
  code, out, err = launcher.run(workdir, "--config.num_train_steps=30",
                                "--config.checkpoint_every_steps=10", "--config.learning_rate=1",
                                "--config.schedule=piecewise", "--config.lr_decay_steps=(10,)",
                                "--config.lr_decay_factor=1e38", "--config.log_every_steps=5")
  assert code == 1
  assert "non-finite at step 12;" in err and "last good checkpoint is kept" in err
  assert launcher.checkpoint_steps(workdir) == [10]

  skipping = str(tmp_path / "skip")
  code, out, err = launcher.run(skipping, "--config.num_train_steps=12",
                                "--config.learning_rate=1e38", "--config.skip_nonfinite_steps=True")
  assert code == 0, err[-2000:]
  rows = [json.loads(line) for line in open(os.path.join(skipping, "metrics.jsonl"))]
  assert rows[0]["split"] == "train" and rows[0]["skipped_steps"] >= 1
  assert all(np.isfinite(v).all() for v in launcher.saved_state(skipping).values())


@pytest.mark.parametrize("overrides,message", [
    (["--config.model=lenet7"], "Unknown model 'lenet7'; valid names are:"),
    (["--config.dataset=fashion"], "Unknown dataset 'fashion'; valid names are:"),
    (["--config.optimizer=adamax"], "Unknown optimizer 'adamax'; valid names are:"),
    (["--config.schedule=linear"], "Unknown schedule 'linear'; valid names are:"),
    (["--config.train_preprocess=jitter"], "Unknown preprocessing 'jitter'; valid names are:"),
    (["--config.learning_rte=0.1"], "unknown config field 'learning_rte'"),
    (["--config.batch_size=big"], "flag --config.batch_size=big: invalid literal"),
    (["--config.num_classes=5"], "config.num_classes=5 but fashion_mnist has 10 classes"),
    (["--config.parallelism=pjit"], "Unknown parallelism 'pjit'"),
])
def test_bad_input_is_one_sentence_and_exit_code_2(tmp_path, overrides, message):
  code, out, err = launcher.run(str(tmp_path), *overrides)
  assert code == 2
  assert message in err
  assert "Traceback" not in err
  assert err.strip().splitlines()[-1].startswith("error: ")


def test_batch_that_does_not_divide_over_devices_exits_2(tmp_path):
  code, _, err = launcher.run(str(tmp_path), "--config.batch_size=100", devices=8)
  assert code == 2 and "batch_size=100 does not divide evenly over 8 devices" in err


def test_workdir_of_another_model_is_refused_then_moved_aside_with_fresh(tmp_path):
  workdir = str(tmp_path)
  assert launcher.run(workdir, "--config.num_train_steps=5")[0] == 0
  other = ("--config.train_preprocess=resize", "--config.eval_preprocess=resize",
           "--config.image_size=32", "--config.num_train_steps=5")
  code, _, err = launcher.run(workdir, *other)
  assert code == 2 and "holds checkpoints of another run" in err and "--fresh" in err
  assert launcher.checkpoint_steps(workdir) == [5]  # untouched
  code, out, err = launcher.run(workdir, *other, "--fresh")
  assert code == 0, err[-2000:]
  moved = [d for d in os.listdir(workdir) if d.startswith("checkpoints.replaced-")]
  assert len(moved) == 1 and os.listdir(os.path.join(workdir, moved[0])) == ["5"]


def test_a_changed_config_is_refused_naming_each_field_and_no_checkpoint_moves(tmp_path):
  workdir = str(tmp_path)
  code, _, err = launcher.run(workdir, "--config.num_train_steps=5")
  assert code == 0, err[-2000:]
  assert "overriding" not in err  # Orbax's type-handler warning: the registry is our own
  saved_config = open(os.path.join(workdir, "config.json")).read()

  def assert_untouched():
    assert launcher.checkpoint_steps(workdir) == [5]
    assert not os.path.exists(os.path.join(workdir, "checkpoints.damaged"))
    assert open(os.path.join(workdir, "config.json")).read() == saved_config

  code, _, err = launcher.run(workdir, "--config.num_train_steps=10", "--config.optimizer=sgd",
                              "--config.grad_clip_norm=1.0", "--config.half_precision=True")
  assert code == 2 and "Traceback" not in err
  message = err.strip().splitlines()[-1]
  assert message.startswith("error: This config differs from the one that wrote the checkpoints")
  for change in ("optimizer 'adam' -> 'sgd'", "grad_clip_norm 0.0 -> 1.0",
                 "half_precision False -> True", "--fresh"):
    assert change in message
  assert "num_train_steps" not in message  # that one may change
  assert_untouched()

  code, _, err = launcher.run(workdir, "--config.data_dir=/no/such/dir")
  assert code == 2 and "--config.data_dir='/no/such/dir' does not exist" in err
  assert "Traceback" not in err
  assert_untouched()

  code, out, err = launcher.run(workdir, "--config.num_train_steps=8",
                                "--config.checkpoint_every_steps=4")
  assert code == 0, err[-2000:]
  assert "Resuming from the checkpoint at step 5" in out
  assert ("Resuming with changed settings: checkpoint_every_steps 0 -> 4, "
          "num_train_steps 5 -> 8.") in out
  assert launcher.checkpoint_steps(workdir) == [5, 8]


def test_without_workdir_the_run_goes_to_runs_slash_the_config_name(tmp_path):
  import subprocess
  args = launcher.launch_args("unused", "--config.num_train_steps=2",
                              config=os.path.join(launcher.ROOT, "configs/lenet_fashion_mnist.py"))
  args = [a for a in args if not a.startswith("--workdir")]
  p = subprocess.run(args, cwd=tmp_path, env=launcher.environment(), capture_output=True,
                     text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-2000:]
  workdir = os.path.join("runs", "lenet_fashion_mnist")
  assert p.stdout.splitlines()[0] == f"Workdir: {workdir} (no --workdir given)."
  assert launcher.checkpoint_steps(str(tmp_path / workdir)) == [2]
