"""Optimisers and learning-rate schedules from the config, all optax."""
import ml_collections
import optax

from jaxcnn.errors import UserError


def create_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int,
                    total_steps: int) -> optax.Schedule:
  lr = config.learning_rate
  name = config.get("schedule", "constant")
  warmup = int(config.get("warmup_epochs", 0) * steps_per_epoch)
  if name == "constant":
    main = optax.constant_schedule(lr)
  elif name == "cosine":
    main = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
  elif name == "piecewise":
    # Divide by config.lr_decay_factor at each epoch in config.lr_decay_epochs.
    boundaries = {int(e * steps_per_epoch) - warmup: config.lr_decay_factor
                  for e in config.lr_decay_epochs}
    main = optax.piecewise_constant_schedule(lr, boundaries)
  else:
    raise UserError(f"Unknown schedule {name!r}; valid names are: constant, cosine, piecewise.")
  if warmup:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
  return main


def create_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int,
                     total_steps: int) -> optax.GradientTransformation:
  schedule = create_schedule(config, steps_per_epoch, total_steps)
  name = config.optimizer
  weight_decay = config.get("weight_decay", 0.0)
  if name == "adam":
    tx = optax.adam(schedule)
  elif name == "adamw":  # decoupled decay
    return optax.adamw(schedule, weight_decay=weight_decay)
  elif name == "sgd":
    tx = optax.sgd(schedule, momentum=config.get("momentum", 0.0) or None,
                   nesterov=config.get("nesterov", False))
  else:
    raise UserError(f"Unknown optimizer {name!r}; valid names are: adam, adamw, sgd.")
  if weight_decay:
    # L2 added to the gradient before the update, as the papers (and torch.optim) do it.
    tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
  return tx
