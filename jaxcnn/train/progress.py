"""Progress: per epoch, a tqdm bar on a terminal and a few plain lines otherwise; over the
run, a log line with the step rate and the ETA.

The loss shown is the last value the loop already brought to the host (at its logging
interval), so the display never adds a device synchronisation.
"""
import sys
import time

import jax
from absl import logging
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


def _format_secs(secs: float) -> str:
  """123456.7 -> "1d10h17m", as clu writes durations."""
  days, secs = divmod(int(secs), 24 * 3600)
  hours, secs = divmod(secs, 3600)
  return (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + f"{secs // 60}m"


class ReportProgress:
  """clu.periodic_actions.ReportProgress without clu's import of TensorFlow: called after every
  step, it logs "12.3 steps/s, 45.1% (211/468), ETA: 1m" at most every `every_secs` and at
  the last step, and writes `steps_per_sec` and `uptime` to `writer`. The first call only
  starts the clock."""

  def __init__(self, *, num_train_steps: int, writer, every_secs: float):
    self.num_train_steps, self.writer, self.every_secs = num_train_steps, writer, every_secs
    self.t0 = time.monotonic()
    self.previous = None  # (step, time) of the last report

  def __call__(self, step: int) -> None:
    t = time.monotonic()
    if self.previous is None:
      self.previous = step, t
      return
    last_step, last_t = self.previous
    due = t - last_t > self.every_secs or step == self.num_train_steps
    if step == last_step or not due:
      return
    rate = (step - last_step) / max(t - last_t, 1e-9)
    eta = (self.num_train_steps - step) / rate
    logging.info("Progress: %.1f steps/s, %.1f%% (%d/%d), ETA: %s", rate,
                 100 * step / self.num_train_steps, step, self.num_train_steps, _format_secs(eta))
    self.writer.write_scalars(step, {"steps_per_sec": rate})
    self.writer.write_scalars(step, {"uptime": t - self.t0})
    self.previous = step, t
