"""The train state: everything a step reads and writes, as one pytree."""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import linen as nn
from flax.training import train_state

from jaxcnn import cpu, models
from jaxcnn.train import optim


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
  def create(x):
    init_key, state_key = jax.random.split(jax.random.PRNGKey(seed))
    variables = model.init({"params": init_key, "dropout": init_key}, x, train=False)
    params = variables["params"]
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                             batch_stats=variables.get("batch_stats", {}), rng=state_key,
                             ema_params=jax.tree.map(jnp.copy, params) if ema else None)

  # One compiled program: op by op, initialising a network (and the optimizer's state, a few
  # arrays per parameter) would be as many small programs to compile, or load from the cache.
  x = jnp.zeros((1, *image_shape), jnp.float32)
  state = jax.jit(create).lower(x).compile(_init_compiler_options())(x)
  return state.replace(step=0)  # a Python int, as TrainState.create leaves it


def _init_compiler_options() -> dict | None:
  """XLA options for compiling a network's initialisation, a program run once per process.

  On the CPU, LLVM's optimisation of its random-number code (threefry) at XLA's default
  backend level (2) takes most of a cold start; level 1 compiles it several times faster and
  gives the same parameters to the bit (tests/test_models.py; docs/speed.md lists the
  networks checked). A process that turned most optimisations off keeps them off.
  """
  if jax.default_backend() != "cpu" or jax.config.values.get("jax_disable_most_optimizations"):
    return None
  return {"xla_backend_optimization_level": 1}


def create_model(config: ml_collections.ConfigDict, bn_axis_name: str | None = None) -> nn.Module:
  """The config's network, plain flax: its model options, half precision, synchronised
  batch norm."""
  options = dict(config.model_options)
  if config.get("half_precision", False):
    # bfloat16 activations and matmul/conv inputs; parameters, optimizer state and the loss
    # stay float32 (the TPU convention; Flax modules cast params to `dtype` per layer).
    options.setdefault("dtype", jnp.bfloat16)
  model = models.create(config.model, num_classes=config.num_classes, **options)
  if bn_axis_name is not None and hasattr(model, "bn_axis_name"):
    model = model.clone(bn_axis_name=bn_axis_name)  # batch statistics over the replicas
  return model


def for_devices(model: nn.Module, parallel) -> nn.Module:
  """`model` with the layers of the platform that `parallel`'s steps run on: the CPU's
  kernels there (jaxcnn.cpu), `model` itself on GPUs and TPUs."""
  return cpu.for_platform(model, parallel.platform, partitioned=parallel.partitioned)


def model_and_optimizer(config: ml_collections.ConfigDict, parallel, *, steps_per_epoch: int = 1,
                        total_steps: int = 1) -> tuple[nn.Module, optax.GradientTransformation]:
  """The config's network for `parallel`'s devices (`for_devices`) and its optimizer. With
  initial_state, the one place that training, evaluation, prediction and the benchmarks
  build them, so that a checkpoint written by one restores into the others. The step counts
  shape the schedule only (evaluation passes 1)."""
  model = for_devices(create_model(config, parallel.bn_axis_name), parallel)
  return model, optim.create_optimizer(config, steps_per_epoch, total_steps)


def initial_state(config: ml_collections.ConfigDict, model: nn.Module,
                  tx: optax.GradientTransformation, image_shape: tuple[int, ...]) -> TrainState:
  """The state a run of `config` starts from (with EMA parameters when config.ema_decay > 0)."""
  return create_train_state(model, tx, tuple(image_shape), config.seed,
                            ema=config.get("ema_decay", 0.0) > 0)
