"""Optimisers and learning-rate schedules from the config, all optax.

The chain always ends with an injected `lr_scale` (optax.scale with its factor in the
optimizer state): reduce-on-plateau (AlexNet, VGG: divide by 10 when validation accuracy
stops improving) multiplies it between epochs, and being part of opt_state it is saved
and restored with the checkpoint.
"""
import dataclasses

import jax.numpy as jnp
import ml_collections
import optax

from jaxcnn.convert import head_labels
from jaxcnn.errors import UserError
from jaxcnn.train import monitor

SCHEDULES = ("constant", "cosine", "piecewise", "exponential")
OPTIMIZERS = ("adam", "adamw", "sgd")


def create_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int,
                    total_steps: int) -> optax.Schedule:
  lr = config.learning_rate
  name = config.get("schedule", "constant")
  warmup = int(config.get("warmup_epochs", 0) * steps_per_epoch) + config.get("warmup_steps", 0)
  if name == "constant":
    main = optax.constant_schedule(lr)
  elif name == "cosine":
    main = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
  elif name == "piecewise":
    # Multiply by lr_decay_factor at each epoch of lr_decay_epochs and each step of
    # lr_decay_steps (ResNet-CIFAR: 32k and 48k iterations), counted from the start of training.
    at = [int(e * steps_per_epoch) for e in config.get("lr_decay_epochs", ())]
    at += list(config.get("lr_decay_steps", ()))
    main = optax.piecewise_constant_schedule(
        lr, {max(s - warmup, 1): config.lr_decay_factor for s in sorted(at)})
  elif name == "exponential":
    # Staircase exponential decay, e.g. GoogLeNet's x0.96 every 8 epochs.
    main = optax.exponential_decay(
        lr, transition_steps=max(int(config.lr_decay_every_epochs * steps_per_epoch), 1),
        decay_rate=config.lr_decay_factor, staircase=True)
  else:
    raise UserError(f"Unknown schedule {name!r}; valid names are: {', '.join(SCHEDULES)}.")
  if warmup:
    start = config.get("warmup_learning_rate", 0.0)
    kind = config.get("warmup_kind", "linear")
    if kind == "linear":
      ramp = optax.linear_schedule(start, lr, warmup)
    elif kind == "constant":  # ResNet-110: hold 0.01 for 400 iterations, then 0.1
      ramp = optax.constant_schedule(start)
    else:
      raise UserError(f"Unknown warmup_kind {kind!r}; valid names are: linear, constant.")
    return optax.join_schedules([ramp, main], [warmup])
  return main


def _update_rule(config: ml_collections.ConfigDict,
                 schedule: optax.Schedule) -> list[optax.GradientTransformation]:
  """The optimizer itself, as parts of a chain: weight decay and SGD-momentum, Adam or AdamW
  on `schedule`."""
  name = config.optimizer
  weight_decay = config.get("weight_decay", 0.0)
  if name == "adamw":  # decoupled decay
    return [optax.adamw(schedule, weight_decay=weight_decay)]
  if name not in ("adam", "sgd"):
    raise UserError(f"Unknown optimizer {name!r}; valid names are: {', '.join(OPTIMIZERS)}.")
  parts = []
  if weight_decay:
    # L2 added to the gradient before the update, as the papers (and torch.optim) do it.
    parts.append(optax.add_decayed_weights(weight_decay))
  if name == "adam":
    parts.append(optax.adam(schedule))
  else:
    parts.append(optax.sgd(schedule, momentum=config.get("momentum", 0.0) or None,
                           nesterov=config.get("nesterov", False)))
  return parts


def _head_then_all(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                   frozen_steps: int) -> optax.GradientTransformation:
  """Fine-tuning's first phase (config.head_only_epochs): for `frozen_steps` steps only the
  classifier (jaxcnn.convert.HEADS) is updated, then every parameter.

  The rest of the network is held by optax's conditionally_mask: zero updates and its
  optimizer state (momentum, Adam's moments) untouched while frozen, so weight decay does not
  shrink it either. Its own step count starts when it is released, so its schedule is read
  `frozen_steps` ahead: both parts follow the one schedule of the run's step.
  """
  body = optax.transforms.conditionally_mask(
      optax.chain(*_update_rule(config, lambda count: schedule(count + frozen_steps))),
      lambda count: count >= frozen_steps)
  return optax.multi_transform({"head": optax.chain(*_update_rule(config, schedule)),
                                "body": body}, head_labels(config.model))


def create_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int,
                     total_steps: int) -> optax.GradientTransformation:
  schedule = create_schedule(config, steps_per_epoch, total_steps)
  parts = []
  if config.get("grad_clip_norm", 0.0):
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  frozen_steps = int(config.get("head_only_epochs", 0) * steps_per_epoch)
  if frozen_steps:
    parts.append(_head_then_all(config, schedule, frozen_steps))
  else:  # the parts in the run's one chain: opt_state's layout in every checkpoint
    parts.extend(_update_rule(config, schedule))
  parts.append(optax.inject_hyperparams(optax.scale)(step_size=1.0))
  return optax.chain(*parts)


def lr_scale(opt_state) -> float:
  return float(opt_state[-1].hyperparams["step_size"])


def with_lr_scale(opt_state, scale: float):
  """opt_state with the plateau multiplier set to `scale`."""
  last = opt_state[-1]
  hyper = dict(last.hyperparams, step_size=jnp.asarray(scale, jnp.float32))
  return (*opt_state[:-1], last._replace(hyperparams=hyper))


@dataclasses.dataclass
class Plateau:
  """Reduce-on-plateau and early stopping on the monitored validation metric (config.monitor;
  jaxcnn/train/monitor.py has the rules), going up or down as `mode` says.

  Written here because optax's reduce_on_plateau watches the training loss inside the step,
  while the papers and Keras's callbacks watch a validation metric between epochs. Its fields
  go into the checkpoint record, so a resumed run continues the same count.
  """
  mode: str = "max"
  factor: float = 0.1
  patience: int = 0  # epochs without improvement before reducing; 0 disables
  max_reductions: int = 3
  min_delta: float = 0.0
  stop_patience: int = 0  # early stopping: epochs without improvement; 0 disables
  best: float | None = None
  bad_epochs: int = 0
  stale_epochs: int = 0
  reductions: int = 0

  def update(self, value: float) -> tuple[bool, bool]:
    """Records an epoch's metric; returns (reduce the learning rate now, stop now)."""
    if monitor.improves(value, self.best, self.mode, self.min_delta):
      self.best, self.bad_epochs, self.stale_epochs = value, 0, 0
      return False, False
    self.bad_epochs += 1
    self.stale_epochs += 1
    reduce = (self.patience > 0 and self.bad_epochs >= self.patience
              and self.reductions < self.max_reductions)
    if reduce:
      self.reductions += 1
      self.bad_epochs = 0
    stop = self.stop_patience > 0 and self.stale_epochs >= self.stop_patience
    return reduce, stop

  def state(self) -> dict:
    return {k: getattr(self, k) for k in ("best", "bad_epochs", "stale_epochs", "reductions")}

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, saved: dict | None = None) -> "Plateau":
    watched = monitor.Monitor.from_config(config)
    p = cls(mode=watched.mode, factor=config.plateau_factor, patience=config.plateau_patience,
            max_reductions=config.plateau_max_reductions, min_delta=config.early_stopping_min_delta,
            stop_patience=config.early_stopping_patience)
    for k, v in (saved or {}).items():
      setattr(p, k, v)
    return p
