"""Killed twice at random steps and resumed, a run with batch norm, dropout, random
augmentation, a plateau schedule and EMA ends bitwise equal to the uninterrupted run.

The ResNet-20 recipe on a slice of the CIFAR-10 JPEGs (image folder, decoded into memory),
with EMA and a reduce-on-plateau schedule added, as ResNet-20 (batch norm) and as seed
003's Keras AlexNet (dropout) on the same 32x32 crops.
"""
import json
import os
import random
import signal
import time

import numpy as np
import pytest

from tests import launcher
from tests.test_data_pipelines import CIFAR_TARBALL, unpack_cifar10_jpeg

pytestmark = pytest.mark.skipif(not os.path.exists(CIFAR_TARBALL),
                                reason=f"{CIFAR_TARBALL} missing")

# A checkpoint every 10 steps and at each epoch's end: mid-epoch ones too (AlexNet's epochs
# are 14 steps). AlexNet's 21M parameters, with their momentum and averages, are 260 MB a
# checkpoint: more often would be most of the run's time.


@pytest.fixture(scope="module")
def cifar_slice(tmp_path_factory):
  return unpack_cifar10_jpeg(str(tmp_path_factory.mktemp("cifar")), {"train": 32, "test": 10})


# Two epochs of the 320 training images each. ResNet-20 at batch 16: 20 steps an epoch.
# Keras' AlexNet as seed 003 trains it, the last partial batch of each epoch included
# (drop_remainder=False): at batch 24, 14 steps an epoch, the 14th padded from 8 examples.
_BATCHES = {"resnet20": ("--config.batch_size=16",),
            "alexnet_keras": ("--config.batch_size=24", "--config.drop_remainder=False")}
STEPS = {"resnet20": 40, "alexnet_keras": 28}


def _overrides(data_dir, model):
  return ("--config.dataset=imagefolder", f"--config.data_dir={data_dir}",
          f"--config.model={model}", f"--config.num_train_steps={STEPS[model]}",
          *_BATCHES[model], "--config.eval_batch_size=50",
          "--config.checkpoint_every_steps=10", "--config.log_every_steps=5",
          "--config.ema_decay=0.9", "--config.plateau_patience=1",
          "--config.plateau_factor=0.5")


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize("model", ["resnet20", "alexnet_keras"])
def test_killed_twice_at_random_steps_then_resumed_equals_the_uninterrupted_run(
    tmp_path, cifar_slice, model):
  args = dict(config="configs/resnet20_cifar.py")
  overrides = _overrides(cifar_slice, model)
  whole = str(tmp_path / "whole")
  code, _, err = launcher.run(whole, *overrides, **args)
  assert code == 0, err[-2000:]

  steps = STEPS[model]
  seed = int(time.time())
  rng = random.Random(seed)
  first = rng.randint(8, steps // 2)
  print(f"seed {seed}: first kill at step {first} or just after")
  workdir = str(tmp_path / "killed")
  code, _, err, killed_at = launcher.run_until(workdir, *overrides, at_step=first, **args)
  assert code == -signal.SIGKILL and killed_at is not None, err[-2000:]
  # Checkpoints are written in the background: a kill soon after a save may come before it
  # is finalised, and the rerun then starts from an earlier one (or from scratch); never
  # from a torn one.
  saved = launcher.checkpoint_steps(workdir)
  resumed_from = saved[-1] if saved else 0
  assert resumed_from <= killed_at
  second = rng.randint(resumed_from + 6, steps - 5)
  code, out, err, killed_again = launcher.run_until(workdir, *overrides, at_step=second, **args)
  assert code == -signal.SIGKILL and killed_again is not None, err[-2000:]
  if saved:
    assert f"Resuming from the checkpoint at step {saved[-1]}" in out
  else:
    assert "Resuming from the checkpoint" not in out
  print(f"killed at steps {killed_at} and {killed_again} (resumed from {resumed_from})")

  surviving = launcher.checkpoint_steps(workdir)  # none if both kills beat every save
  code, out, err = launcher.run(workdir, *overrides, **args)
  assert code == 0, err[-2000:]
  if surviving:
    assert f"Resuming from the checkpoint at step {surviving[-1]}" in out
  want, got = launcher.saved_state(whole), launcher.saved_state(workdir)
  assert got.keys() == want.keys() and any("ema_params" in k for k in got)
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  # The epoch summaries too: the running metrics of an interrupted epoch are checkpointed.
  last = lambda rows: {r["split"]: r for r in rows if r["step"] == steps}  # noqa: E731
  for split in ("train", "validation"):  # the plateau schedule selects on it
    a, b = last(_rows(whole))[split], last(_rows(workdir))[split]
    assert (a["loss"], a["accuracy"]) == (b["loss"], b["accuracy"]), split
