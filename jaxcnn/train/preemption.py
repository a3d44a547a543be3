"""SIGTERM / SIGINT: finish the current step, checkpoint, and exit as preempted."""
import signal

import jax
from jax.experimental import multihost_utils


class Preempted(Exception):
  """Raised by the loop after the preemption checkpoint is written."""

  def __init__(self, step: int):
    super().__init__(f"Preempted at step {step}: a checkpoint was written; rerun the same "
                     f"command to resume.")
    self.step = step


class PreemptionWatch:
  """Turns SIGTERM/SIGINT into a flag the loop polls between steps (a context manager).

  With several processes, JAX's distributed runtime receives the signal (our handler would
  replace its own, so none is installed) and `reached_preemption_sync_point` makes every
  process stop at the same step.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signalled = None
    self._previous = {}

  def __enter__(self):
    if jax.process_count() > 1:
      return self
    for sig in self.SIGNALS:
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def _handle(self, signum, frame):
    del frame
    self.signalled = signal.Signals(signum).name

  def should_stop(self, calls_made: int) -> bool:
    """Called after each call of the training step, with their count (1, 2, 3, ...)."""
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(calls_made)
    return self.signalled is not None
