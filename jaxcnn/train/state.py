"""The train state: everything a step reads and writes, as one pytree."""
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn
from flax.training import train_state


class TrainState(train_state.TrainState):
  """flax's TrainState (step, params, opt_state, apply_fn, tx) plus batch-norm state and an rng.

  `batch_stats` is an empty dict for networks without batch norm: they take the same path.
  `rng` is a raw uint32[2] key; per-step keys are folded from it and the step.
  `ema_params` is the Polyak / exponential moving average of the parameters, used for
  evaluation when present (None when config.ema_decay is 0).
  """
  batch_stats: Any
  rng: jax.Array
  ema_params: Any = None

  def eval_params(self):
    return self.params if self.ema_params is None else self.ema_params


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       image_shape: tuple[int, ...], seed: int, ema: bool = False) -> TrainState:
  init_key, state_key = jax.random.split(jax.random.PRNGKey(seed))
  # Compiled: run op by op, initialising a network costs 15-25 s on a busy 2-core host.
  init = jax.jit(lambda keys, x: model.init(keys, x, train=False))
  variables = init({"params": init_key, "dropout": init_key},
                   jnp.zeros((1, *image_shape), jnp.float32))
  params = variables["params"]
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                           batch_stats=variables.get("batch_stats", {}), rng=state_key,
                           ema_params=jax.tree.map(jnp.copy, params) if ema else None)
