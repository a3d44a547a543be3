"""Run outputs: clu metric writers (TensorBoard + console) and metrics.jsonl.

Only process 0 writes files; other processes only log.
"""
import json
import os
from typing import Any

import jax
from clu import metric_writers


class RunLog:
  def __init__(self, workdir: str):
    self.is_writer = jax.process_index() == 0
    self.writer = metric_writers.create_default_writer(
        workdir, just_logging=not self.is_writer, asynchronous=True)
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")

  def write_split(self, *, step: int, epoch: int, split: str, summary: dict[str, Any]) -> None:
    """One row per split per epoch: TensorBoard scalars and a metrics.jsonl line."""
    self.writer.write_scalars(step, {f"{split}_{k}": v for k, v in summary.items()
                                     if k != "num_examples"})
    if self.is_writer:
      row = {"step": step, "epoch": epoch, "split": split, **summary}
      with open(self.jsonl_path, "a") as f:
        f.write(json.dumps(row) + "\n")

  def flush(self) -> None:
    self.writer.flush()

  def close(self) -> None:
    self.writer.close()


def summarize(metrics) -> dict[str, float]:
  """clu Metrics -> plain floats, with the number of examples counted."""
  values = {k: float(v) for k, v in metrics.compute().items()}
  if values.pop("nonfinite_steps", 0):  # reported only when some step was skipped
    values["skipped_steps"] = int(metrics.nonfinite_steps.count)
  values["num_examples"] = int(metrics.accuracy.count)
  return values
