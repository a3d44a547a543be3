"""Orbax checkpoints of the train state plus a small JSON record of the run.

Kept: the latest `keep` checkpoints and the best one by test accuracy. Orbax writes each
checkpoint to a temporary directory and renames it when complete, so an interrupted save
never damages an earlier checkpoint. Nothing is pickled: arrays go to tensorstore, the
record to JSON.
"""
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from jaxcnn.errors import UserError

BEST_METRIC = "test_accuracy"


def _best_metric(metrics: dict[str, float]) -> float:
  return metrics[BEST_METRIC]


class Checkpointer:
  def __init__(self, directory: str, keep: int = 3):
    options = ocp.CheckpointManagerOptions(
        best_fn=_best_metric, best_mode="max",
        preservation_policy=policies.AnyPreservationPolicy([
            policies.LatestN(n=keep),
            policies.BestN(get_metric_fn=_best_metric, reverse=False, n=1,
                           keep_checkpoints_without_metrics=False),
        ]),
        create=True)
    self.manager = ocp.CheckpointManager(os.path.abspath(directory), options=options,
                                         item_names=("state", "record"))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def save(self, step: int, state, record: dict[str, Any], metrics: dict[str, float]) -> None:
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)),
        metrics=metrics)

  def restore(self, step: int, target_state) -> tuple[Any, dict[str, Any]]:
    """Restores checkpoint `step` into the structure, shapes and shardings of `target_state`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
    record = self.manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))["record"]
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))
    except (ValueError, KeyError, TypeError) as e:
      raise UserError(
          f"The checkpoint at step {step} in {self.manager.directory} does not fit this "
          f"config (it was written for model {record.get('model')!r}); use a new workdir "
          f"or delete the old checkpoints.") from e
    return restored["state"], record

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
