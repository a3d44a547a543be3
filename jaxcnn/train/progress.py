"""Per-epoch progress: a tqdm bar on a terminal, a few plain lines otherwise.

The loss shown is the last value the loop already brought to the host (at its logging
interval), so the display never adds a device synchronisation.
"""
import sys
import time

import jax
from tqdm import tqdm


def _eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class EpochProgress:
  """Call `start(epoch, done, total)`, `update(step_in_epoch, loss=None)`, `close()`."""

  def __init__(self, batch_size: int, every_secs: float, stream=None):
    self.stream = stream or sys.stdout
    self.enabled = jax.process_index() == 0
    self.terminal = self.stream.isatty()
    self.batch_size = batch_size
    self.every_secs = every_secs  # plain lines: at most one per this many seconds
    self.bar = None

  def start(self, epoch: int, done: int, total: int) -> None:
    self.epoch, self.done, self.total = epoch, done, total
    self.first_done, self.t0, self.last_line = done, time.time(), time.time()
    self.loss = None
    if self.enabled and self.terminal:
      self.bar = tqdm(total=total, initial=done, desc=f"epoch {epoch}", unit="step",
                      file=self.stream, dynamic_ncols=True, leave=False)

  def update(self, done: int, loss: float | None = None) -> None:
    if not self.enabled:
      return
    if loss is not None:
      self.loss = loss
    elapsed = time.time() - self.t0
    rate = (done - self.first_done) / elapsed if elapsed > 0 else 0.0
    fields = {"img/s": f"{rate * self.batch_size:.0f}"}
    if self.loss is not None:
      fields["loss"] = f"{self.loss:.4f}"
    if self.bar is not None:
      self.bar.update(done - self.bar.n)
      self.bar.set_postfix(fields, refresh=False)
    elif time.time() - self.last_line >= self.every_secs and done < self.total:
      self.last_line = time.time()
      eta = (self.total - done) / rate if rate else 0.0
      print(f"epoch {self.epoch}: step {done}/{self.total}, "
            + ", ".join(f"{k} {v}" for k, v in fields.items()) + f", ETA {_eta(eta)}",
            file=self.stream, flush=True)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
      self.bar = None
