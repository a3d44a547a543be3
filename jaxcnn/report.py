"""Figures written into the workdir: learning curves and the confusion matrix (matplotlib).

matplotlib is imported by the first figure, not with this module: a process that only reads
metrics or counts a confusion matrix never imports it, and a training run starts its import
on a thread (`import_in_background`), where it overlaps the run's first steps.
"""
import functools
import json
import os
import threading

import numpy as np


@functools.cache
def _pyplot():
  import matplotlib
  matplotlib.use("Agg")  # files only; no display on training machines
  import matplotlib.pyplot as plt
  return plt


def import_in_background() -> None:
  """Imports matplotlib on a daemon thread, for a process that will plot later."""
  def run():
    try:
      _pyplot()
    except Exception:  # noqa: BLE001  (the first figure imports it again, and says why not)
      pass
  threading.Thread(target=run, name="import matplotlib", daemon=True).start()


def read_metrics(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def by_epoch(rows: list[dict], split: str) -> dict[int, dict]:
  """{epoch: row} of one split's rows; a resumed run may log an epoch twice, the later row wins."""
  return {r["epoch"]: r for r in rows if r["split"] == split}


def plot_curves(workdir: str, filename: str = "curves.png") -> str | None:
  """Loss and accuracy per epoch, train against the evaluated split, as the seeds plot them."""
  rows = read_metrics(workdir)
  if not rows:
    return None
  plt = _pyplot()
  from matplotlib.ticker import MaxNLocator
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
  for ax, metric in zip(axes, ("loss", "accuracy")):
    for split, style in (("train", "o-"), ("validation", "s--"), ("test", "s--")):
      points = {e: r[metric] for e, r in by_epoch(rows, split).items() if metric in r}
      if points:
        epochs = sorted(points)
        ax.plot(epochs, [points[e] for e in epochs], style, label=split)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend()
  fig.suptitle(os.path.basename(os.path.abspath(workdir)))
  fig.tight_layout()
  path = os.path.join(workdir, filename)
  fig.savefig(path)
  plt.close(fig)
  return path


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """Rows: true class; columns: predicted class."""
  matrix = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(matrix, (labels, predictions), 1)
  return matrix


def plot_confusion(matrix: np.ndarray, class_names, path: str) -> str:
  n = len(class_names)
  size = min(max(6.0, 0.45 * n), 30.0)
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(size, size), dpi=100)
  ax.imshow(matrix, cmap="Blues")
  ax.set_xticks(range(n), class_names, rotation=90)
  ax.set_yticks(range(n), class_names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  if n <= 30:  # counts are readable only for small matrices
    threshold = matrix.max() / 2
    for i in range(n):
      for j in range(n):
        ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                color="white" if matrix[i, j] > threshold else "black")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return path
