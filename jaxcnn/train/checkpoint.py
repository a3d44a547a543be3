"""Orbax checkpoints of the train state, the epoch's running metrics and a JSON record.

Kept: the latest `keep` checkpoints and the best one by the monitored metric
(config.monitor: only an epoch that beat every earlier one saves it, as Keras's
ModelCheckpoint(save_best_only=True) keeps its file). Orbax writes each
checkpoint into a temporary directory and renames it when complete, so a save interrupted at
any moment never damages an earlier checkpoint. A checkpoint that cannot be read is moved
aside to `WORKDIR/checkpoints.damaged/` (never deleted) and the previous one is used; one
written by another config is refused, never set aside (jaxcnn/train/resume.py).
Nothing is pickled: arrays go to tensorstore, the record to JSON.
"""
import json
import os
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as policies
from orbax.checkpoint._src.metadata import array_metadata_store

from jaxcnn.errors import UserError

# The metric that checkpoints of runs before config.monitor were ranked by (val_accuracy).
EARLIER_BEST_METRIC = "test_accuracy"


# Orbax writes a replicated array "replica-parallel" by default: each of its D devices writes
# 1/D of it, cut out on the device by a small compiled program of its own. For a network's
# hundreds of small arrays on several devices that is hundreds of compilations at the first
# save of each run (GoogLeNet on 8 CPU devices: 536 programs, its first save 38.6 s here
# against 1.2 s without them). Arrays whose share per device would be under 1 MiB are
# written whole from one device instead; larger ones keep Orbax's parallel write. The
# handler is Orbax's default one (with its array-metadata store, which Orbax 0.12 exports only
# from a private module) but for that threshold.
MIN_BYTES_PER_REPLICA_SLICE = 2**20


def _type_handlers() -> ocp.type_handlers.TypeHandlerRegistry:
  """Orbax's default handlers with that jax.Array handler, in a registry of our own: the
  global one stays as Orbax made it (replacing its jax.Array entry logs a warning in every
  process that imports this module)."""
  ours = {jax.Array: ocp.type_handlers.ArrayHandler(
      array_metadata_store=array_metadata_store.Store(),
      min_slice_bytes_for_replica_parallel=MIN_BYTES_PER_REPLICA_SLICE)}
  return ocp.type_handlers.create_type_handler_registry(*(
      (ty, ours.get(ty) or ocp.type_handlers.get_type_handler(ty))
      for ty in ocp.type_handlers.supported_types()))


_TREE_ITEMS = ("state", "train_metrics")


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  """{"params/conv1/kernel": shape, ...} of a state, its abstract form or its saved metadata."""
  def name(path):
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                    for k in path)
  return {name(path): tuple(getattr(leaf, "shape", ()))
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


class Checkpointer:
  def __init__(self, directory: str, keep: int = 3, best_metric: str = "val_accuracy",
               best_mode: str = "max"):
    """`best_metric` (going up or down as `best_mode` says) ranks the checkpoints saved with
    metrics; the best of them is kept beside the latest `keep`."""
    self.directory = os.path.abspath(directory)

    def rank(metrics: dict[str, float]) -> float:
      if best_metric not in metrics and best_metric == "val_accuracy":
        return metrics[EARLIER_BEST_METRIC]
      return metrics[best_metric]

    options = ocp.CheckpointManagerOptions(
        best_fn=rank, best_mode=best_mode,
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=rank, reverse=best_mode == "min", n=1,
                           keep_checkpoints_without_metrics=False),
        ]),
        create=True)
    registry = _type_handlers()
    handlers = {name: ocp.PyTreeCheckpointHandler(type_handler_registry=registry)
                for name in _TREE_ITEMS}
    self.manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=(*_TREE_ITEMS, "record"),
        item_handlers={**handlers, "record": ocp.JsonCheckpointHandler()})

  @classmethod
  def for_config(cls, directory: str, config, keep: int = 3) -> "Checkpointer":
    """Ranked by what `config` monitors (config.monitor, config.monitor_mode)."""
    from jaxcnn.train.monitor import Monitor  # noqa: PLC0415  (monitor imports no Orbax)
    watched = Monitor.from_config(config)
    return cls(directory, keep=keep, best_metric=watched.name, best_mode=watched.mode)

  @classmethod
  def of_workdir(cls, workdir: str, directory: str | None = None) -> "Checkpointer":
    """The checkpoints of a trained run (`directory`, else WORKDIR/checkpoints), ranked by
    what its config.json monitors (val_accuracy where it has none)."""
    import ml_collections  # noqa: PLC0415
    config = {}
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
      with open(path) as f:
        config = json.load(f)
    return cls.for_config(directory or os.path.join(workdir, "checkpoints"),
                          ml_collections.ConfigDict({k: config[k] for k in
                                                     ("monitor", "monitor_mode") if k in config}))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def save(self, step: int, state, record: dict[str, Any], *, train_metrics,
           metrics: dict[str, float] | None = None) -> None:
    """Saves (asynchronously) `state` and `train_metrics` (globally replicated arrays)."""
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(state), train_metrics=ocp.args.PyTreeSave(train_metrics),
        record=ocp.args.JsonSave(record)), metrics=metrics)

  def read_record(self, step: int) -> dict[str, Any]:
    return self.manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))["record"]

  def restore(self, step: int, abstract_state, abstract_metrics):
    def args(abstract):
      return ocp.args.PyTreeRestore(
          item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract))
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=args(abstract_state), train_metrics=args(abstract_metrics)))
    return restored["state"], restored["train_metrics"]

  def state_differences(self, step: int, abstract_state) -> list[str]:
    """How the state saved at `step` differs from `abstract_state` in its arrays' names and
    shapes (empty when it would restore); raises if the checkpoint's metadata is unreadable."""
    path = os.path.join(self.directory, str(step), "state")
    saved = _shapes(ocp.PyTreeCheckpointHandler().metadata(epath.Path(path)).tree)
    wanted = _shapes(abstract_state)
    return ([f"{k} is not in the checkpoint" for k in wanted if k not in saved]
            + [f"the checkpoint's {k} is not in this config's state" for k in saved
               if k not in wanted]
            + [f"{k} has shape {saved[k]} there, {wanted[k]} here" for k in wanted
               if k in saved and saved[k] != wanted[k]])

  def restore_latest(self, abstract_state, abstract_metrics, check_record):
    """(state, train_metrics, record) of the newest readable checkpoint, or None if there is none.

    `check_record(record)` raises UserError when the run that wrote the checkpoint may not
    be resumed by this one; a state that would not restore into `abstract_state` raises
    UserError as well. Only a checkpoint that cannot be read is set aside as damaged.
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        record = self.read_record(step)
      except Exception as e:  # unreadable: damaged or partial
        self._set_aside(step, e)
        continue
      check_record(record)
      try:
        differences = self.state_differences(step, abstract_state)
      except Exception as e:
        self._set_aside(step, e)
        continue
      if differences:
        shown = "; ".join(differences[:3]) + ("; ..." if len(differences) > 3 else "")
        raise UserError(
            f"The checkpoint {self.directory}/{step} holds another train state than this "
            f"config builds ({len(differences)} difference(s): {shown}); rerun with the "
            f"config that wrote it, or pass --fresh to move the checkpoints aside and start "
            f"over.")
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
