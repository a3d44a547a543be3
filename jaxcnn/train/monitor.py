"""What reduce-on-plateau, early stopping and the best checkpoint watch (config.monitor), with
Keras's semantics.

`val_loss` or `val_accuracy`: the loss or accuracy of the split evaluated after every epoch.
The direction (`config.monitor_mode`) is Keras's "auto" unless given: a loss should go
down, an accuracy up. Keras's rules, as its callbacks apply them:
- EarlyStopping / ReduceLROnPlateau: an epoch improves when it beats the best so far by more
  than `min_delta` (`value - min_delta > best` going up, `value + min_delta < best` going
  down); after `patience` epochs without one, training stops / the learning rate is cut.
- ModelCheckpoint(save_best_only=True): the best checkpoint is the latest epoch that beat
  every earlier one (strictly, without min_delta).

The evaluated split is called "validation" in the logs and metrics of a run that reduces on
plateau or stops early (it then chooses how training goes), and "test" otherwise.
"""
import dataclasses

import ml_collections

from jaxcnn.errors import UserError

METRICS = {"val_loss": "loss", "val_accuracy": "accuracy"}  # the evaluated split's summary
MODES = ("auto", "min", "max")


def mode_of(name: str, mode: str = "auto") -> str:
  if mode not in MODES:
    raise UserError(f"config.monitor_mode={mode!r}: use one of {', '.join(MODES)}.")
  if mode != "auto":
    return mode
  return "max" if "acc" in name else "min"  # Keras's auto


def improves(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
  """Whether `value` improves on `best` (None: nothing yet) by more than `min_delta`."""
  if best is None:
    return True
  min_delta = abs(min_delta)
  return value - min_delta > best if mode == "max" else value + min_delta < best


@dataclasses.dataclass
class Monitor:
  """The monitored value of each epoch, and the best so far (for the best checkpoint)."""
  name: str = "val_accuracy"
  mode: str = "max"
  best: float | None = None

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, best: float | None = None) -> "Monitor":
    name = config.get("monitor", "val_accuracy")
    if name not in METRICS:
      raise UserError(f"config.monitor={name!r}: use one of {', '.join(METRICS)}.")
    return cls(name, mode_of(name, config.get("monitor_mode", "auto")), best)

  def value(self, summary: dict[str, float]) -> float:
    return summary[METRICS[self.name]]

  def update(self, value: float) -> bool:
    """Records an epoch's value; whether it is the best so far (strictly better)."""
    if improves(value, self.best, self.mode):
      self.best = value
      return True
    return False


def split_name(config: ml_collections.ConfigDict) -> str:
  """What the logs and metrics call the split evaluated after every epoch."""
  selects = config.get("plateau_patience", 0) or config.get("early_stopping_patience", 0)
  return "validation" if selects else "test"
