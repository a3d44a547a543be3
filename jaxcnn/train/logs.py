"""Run outputs: scalars to TensorBoard and the console, and metrics.jsonl.

Only process 0 writes files; other processes only log. This is what clu's default metric
writer does, written here because clu's writers import TensorFlow, which a run on data in
memory never needs (jaxcnn/train/events.py writes the event files without it).
"""
import json
import os
from typing import Any

import jax
from absl import logging

from jaxcnn.train.events import ScalarWriter


class Writer:
  """clu's default writer's `write_scalars` / `flush` / `close`: a log line per call (as its
  LoggingWriter) and, where `logdir` is given, TensorBoard scalars."""

  def __init__(self, logdir: str | None):
    self.events = ScalarWriter(logdir) if logdir is not None else None

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    values = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
              for k, v in sorted(scalars.items())]
    logging.info("[%d] %s", step, ", ".join(values))
    if self.events is not None:
      self.events.write_scalars(step, scalars)

  def flush(self) -> None:
    if self.events is not None:
      self.events.flush()

  def close(self) -> None:
    if self.events is not None:
      self.events.close()


class RunLog:
  def __init__(self, workdir: str):
    self.is_writer = jax.process_index() == 0
    self.writer = Writer(workdir if self.is_writer else None)
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
