"""Orbax checkpoints of the train state, the epoch's running metrics and a JSON record.

Kept: the latest `keep` checkpoints and the best one by test accuracy. Orbax writes each
checkpoint into a temporary directory and renames it when complete, so a save interrupted at
any moment never damages an earlier checkpoint. A checkpoint that cannot be read is moved
aside to `WORKDIR/checkpoints.damaged/` (never deleted) and the previous one is used.
Nothing is pickled: arrays go to tensorstore, the record to JSON.
"""
import os
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as policies
from orbax.checkpoint._src.metadata import array_metadata_store

from jaxcnn.errors import UserError

BEST_METRIC = "test_accuracy"
# Record fields that must match the config for a checkpoint to be resumed.
IDENTITY_FIELDS = ("model", "dataset", "num_classes", "image_shape")


# Orbax writes a replicated array "replica-parallel" by default: each of its D devices writes
# 1/D of it, cut out on the device by a small compiled program of its own. For a network's
# hundreds of small arrays on several devices that is hundreds of compilations at the first
# save of each run (GoogLeNet on 8 CPU devices: 536 programs, its first save 38.6 s here
# against 1.2 s without them). Arrays whose share per device would be under 1 MiB are
# written whole from one device instead; larger ones keep Orbax's parallel write. The
# handler is Orbax's default one (with its array-metadata store, which Orbax 0.12 exports only
# from a private module) but for that threshold.
MIN_BYTES_PER_REPLICA_SLICE = 2**20
ocp.type_handlers.register_type_handler(
    jax.Array, ocp.type_handlers.ArrayHandler(
        array_metadata_store=array_metadata_store.Store(),
        min_slice_bytes_for_replica_parallel=MIN_BYTES_PER_REPLICA_SLICE),
    override=True)


def _best_metric(metrics: dict[str, float]) -> float:
  return metrics[BEST_METRIC]


class Checkpointer:
  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        best_fn=_best_metric, best_mode="max",
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=_best_metric, reverse=False, n=1,
                           keep_checkpoints_without_metrics=False),
        ]),
        create=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=("state", "train_metrics", "record"))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def save(self, step: int, state, record: dict[str, Any], *, train_metrics,
           metrics: dict[str, float] | None = None) -> None:
    """Saves (asynchronously) `state` and `train_metrics` (globally replicated arrays)."""
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), train_metrics=ocp.args.StandardSave(train_metrics),
        record=ocp.args.JsonSave(record)), metrics=metrics)

  def read_record(self, step: int) -> dict[str, Any]:
    return self.manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))["record"]

  def restore(self, step: int, abstract_state, abstract_metrics):
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        train_metrics=ocp.args.StandardRestore(abstract_metrics)))
    return restored["state"], restored["train_metrics"]

  def restore_latest(self, abstract_state, abstract_metrics, identity: dict[str, Any]):
    """(state, train_metrics, record) of the newest readable checkpoint, or None if there is none.

    Raises UserError when the checkpoints were written for another model or data shape.
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        record = self.read_record(step)
      except Exception as e:  # unreadable: damaged or partial
        self._set_aside(step, e)
        continue
      theirs = {k: record.get(k) for k in IDENTITY_FIELDS}
      if theirs != identity:
        raise UserError(
            f"{self.directory} holds checkpoints of another run ({theirs}, this config: "
            f"{identity}); use another --workdir, or pass --fresh to move them aside and "
            f"start over.")
      try:
        state, train_metrics = self.restore(step, abstract_state, abstract_metrics)
      except Exception as e:
        self._set_aside(step, e)
        continue
      return state, train_metrics, record
    return None

  def _set_aside(self, step: int, error: Exception) -> None:
    aside = self.directory + ".damaged"
    logging.warning("The checkpoint %s/%d cannot be read (%s: %s); moving it to %s and "
                    "using the previous one.", self.directory, step, type(error).__name__,
                    str(error).splitlines()[0] if str(error) else "", aside)
    if jax.process_index() == 0:
      os.makedirs(aside, exist_ok=True)
      shutil.move(os.path.join(self.directory, str(step)),
                  os.path.join(aside, f"{step}-{int(time.time())}"))
    multihost_utils.sync_global_devices("checkpoint_set_aside")
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def move_aside(directory: str) -> str | None:
  """--fresh: renames an existing checkpoint directory (nothing is deleted); returns the new name."""
  if not os.path.isdir(directory) or not os.listdir(directory):
    return None
  target = f"{directory}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
  if jax.process_index() == 0:
    os.rename(directory, target)
  multihost_utils.sync_global_devices("checkpoint_move_aside")
  return target
