"""Pure train and eval steps. They know nothing of devices: parallel.py compiles them."""
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from clu import metrics

from jaxcnn.train.state import TrainState


_NO_STEP = jnp.iinfo(jnp.int32).max


@flax.struct.dataclass
class NonFiniteSteps(metrics.Metric):
  """How many steps had a non-finite loss or gradient, and the first of them.

  Written for this project: clu has no such metric. Every replica sees the same (averaged)
  gradients, so combining replicas keeps one copy, while merging steps adds them up.
  """
  count: jnp.ndarray
  first_step: jnp.ndarray

  @classmethod
  def from_model_output(cls, *, nonfinite_step: jnp.ndarray, **_) -> "NonFiniteSteps":
    bad = nonfinite_step != _NO_STEP
    return cls(count=bad.astype(jnp.int32), first_step=jnp.asarray(nonfinite_step, jnp.int32))

  @classmethod
  def empty(cls) -> "NonFiniteSteps":
    return cls(count=jnp.array(0, jnp.int32), first_step=jnp.array(_NO_STEP, jnp.int32))

  def merge(self, other: "NonFiniteSteps") -> "NonFiniteSteps":
    return type(self)(count=self.count + other.count,
                      first_step=jnp.minimum(self.first_step, other.first_step))

  def _reduce_merge(self, other: "NonFiniteSteps") -> "NonFiniteSteps":
    return self

  def compute(self) -> jnp.ndarray:
    return self.count


@flax.struct.dataclass
class EvalMetrics(metrics.Collection):
  loss: metrics.Average.from_output("loss")
  accuracy: metrics.Accuracy


@flax.struct.dataclass
class Metrics(metrics.Collection):  # clu reads only the class's own annotations
  loss: metrics.Average.from_output("loss")
  accuracy: metrics.Accuracy
  nonfinite_steps: NonFiniteSteps


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int,
                  label_smoothing: float = 0.0) -> jax.Array:
  """Per-example softmax cross-entropy, with optional label smoothing."""
  targets = jax.nn.one_hot(labels, num_classes)
  if label_smoothing:
    targets = optax.smooth_labels(targets, label_smoothing)
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)


def split_outputs(outputs) -> tuple[jax.Array, tuple[jax.Array, ...]]:
  """A model returns logits, or in training (logits, (aux_logits, ...)) when it has auxiliary
  classifiers (GoogLeNet, Inception-v3)."""
  if isinstance(outputs, tuple):
    logits, aux = outputs
    return logits, tuple(aux)
  return outputs, ()


def _all_finite(tree) -> jax.Array:
  """Whether every value in `tree` is finite. (Not the norm's finiteness: a finite tree's
  squares can overflow, and XLA would keep the squares of the gradients for Adam's second
  moment, a copy of them in the step's memory.)"""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _masking_batch_norm(mask: jax.Array):
  """A flax method interceptor that gives every BatchNorm call in training the batch's mask,
  so that batch norm takes its statistics from the real examples alone; no network needs a
  mask argument of its own."""
  def interceptor(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
      kwargs = {**kwargs, "mask": mask}
    return next_fun(*args, **kwargs)
  return nn.intercept_methods(interceptor)


def _mean(per_example: jax.Array, mask: jax.Array | None, count) -> jax.Array:
  """The batch's mean; with a mask, the real examples' sum over their `count`."""
  if mask is None:
    return per_example.mean()
  return jnp.sum(jnp.where(mask, per_example, 0.0)) / count


def train_step(state: TrainState, batch: dict[str, jax.Array], *,
               label_smoothing: float = 0.0,
               aux_loss_weight: float = 0.3, ema_decay: float = 0.0,
               rollback_nonfinite: bool = False,
               axis_name: str | None = None) -> tuple[TrainState, Metrics]:
  """One optimisation step on `batch`; returns the new state and the batch's metrics.

  The loss is the main head's cross-entropy plus `aux_loss_weight` times each auxiliary
  head's (GoogLeNet's 0.3); the reported loss and accuracy are the main head's.
  With `axis_name` (pmap, shard_map) `batch` is this replica's share: gradients, running
  batch-norm statistics and metrics are averaged or gathered over the replicas.
  With `rollback_nonfinite` a step whose update overflowed is undone as well (see below).
  A batch with `mask` (an epoch's padded last batch and its fellows, drop_remainder=False)
  trains on its real examples alone: the loss is their mean over all replicas, and batch norm
  takes its statistics from them (a replica holding only padding keeps its statistics out of
  the running averages).
  """
  mask = batch.get("mask")
  count = None
  if mask is not None:
    count = jnp.sum(mask.astype(jnp.float32))
    if axis_name is not None:  # the loss is a mean over every replica's real examples
      count = jax.lax.psum(count, axis_name)
    count = jnp.maximum(count, 1.0)
  dropout_key = jax.random.fold_in(state.rng, state.step)
  if axis_name is not None:  # a different dropout mask on every replica
    dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))

  def loss_fn(params):
    apply = functools.partial(
        state.apply_fn, {"params": params, "batch_stats": state.batch_stats}, batch["image"],
        train=True, mutable=["batch_stats"], rngs={"dropout": dropout_key})
    if mask is None:
      outputs, new_model_state = apply()
    else:
      with _masking_batch_norm(mask):
        outputs, new_model_state = apply()
    logits, aux_logits = split_outputs(outputs)
    num_classes = logits.shape[-1]
    per_example = cross_entropy(logits, batch["label"], num_classes, label_smoothing)
    loss = _mean(per_example, mask, count)
    for aux in aux_logits:
      loss += aux_loss_weight * _mean(cross_entropy(aux, batch["label"], num_classes,
                                                    label_smoothing), mask, count)
    return loss, (per_example, logits, new_model_state)

  (loss, (per_example, logits, new_model_state)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  batch_stats = new_model_state.get("batch_stats", state.batch_stats)
  if axis_name is not None and mask is None:
    grads = jax.lax.pmean(grads, axis_name)
    batch_stats = jax.lax.pmean(batch_stats, axis_name)  # see parallel.py: linear in the EMA
  elif axis_name is not None:
    # Each replica's loss is already its share of the global mean: the gradients add up. The
    # running statistics are averaged over the replicas that hold real examples.
    grads = jax.lax.psum(grads, axis_name)
    real = jnp.any(mask).astype(jnp.float32)
    batch_stats = jax.tree.map(
        lambda new: jax.lax.psum(new * real, axis_name) / jax.lax.psum(real, axis_name),
        batch_stats)
  unchanged = state.replace(step=state.step + 1)

  def all_replicas(ok):
    return ok if axis_name is None else jax.lax.pmin(ok.astype(jnp.int32), axis_name).astype(bool)

  def unless(ok, new_state):
    return jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, unchanged)

  # A step with a non-finite loss or gradient leaves the state as it was; the loop decides
  # whether to stop (the default) or carry on (config.skip_nonfinite_steps). Decided before
  # the update, the choice is elementwise inside it, so XLA still updates the donated state
  # in place.
  finite = all_replicas(jnp.isfinite(loss) & _all_finite(grads))
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  if state.ema_params is not None:
    new_state = new_state.replace(ema_params=optax.incremental_update(
        new_state.params, state.ema_params, step_size=1.0 - ema_decay))
  new_state = unless(finite, new_state)
  # Finite gradients can still overflow an update (a huge learning rate): the step counts as
  # non-finite too. Undoing it (rollback_nonfinite, for a run that goes on past such steps)
  # keeps the previous state beside the new one, twice the state's memory in the step; a run
  # that stops at a non-finite step saves nothing after it, so it needs no undo.
  updated_finite = all_replicas(_all_finite(new_state.params))
  if rollback_nonfinite:
    new_state = unless(updated_finite, new_state)
  finite &= updated_finite
  nonfinite_step = jnp.where(finite, _NO_STEP, state.step + 1)
  # A skipped step's examples (and padding) stay out of the loss and accuracy averages.
  counted = jnp.broadcast_to(finite, per_example.shape)
  if mask is not None:
    counted &= mask
  return new_state, _metrics(Metrics, axis_name, loss=jnp.where(counted, per_example, 0.0),
                             logits=logits, labels=batch["label"], mask=counted,
                             nonfinite_step=nonfinite_step)


def accumulating(step_fn):
  """`step_fn(state, batch) -> (state, metrics)` as `(state, running_metrics, batch) ->
  (state, running_metrics merged with the batch's)`.

  The running metrics then stay on the device and are merged inside the compiled step:
  merging them on the host, op by op, cost about 1 ms of CPU per step (six eager array
  operations), which took 7% from LeNet's 15 ms steps on a 2-core CPU.
  """
  def step(state, running_metrics, batch, **kwargs):
    new_state, metrics = step_fn(state, batch, **kwargs)
    return new_state, running_metrics.merge(metrics)

  return step


def scanned(step_fn):
  """`steps.accumulating`'s step as `(state, running_metrics, batches)`, running one step per
  batch along the leading axis of `batches` (lax.scan) in one call.

  The host's work per call (about 0.5 ms of CPU to dispatch LeNet's step, plus fetching and
  copying the batch) is then paid once per group: on a CPU, where the host shares the cores
  with the step, that is a tenth of LeNet's step time per step. The steps compute exactly what
  one call per step does.
  """
  def steps(state, running_metrics, batches, **kwargs):
    def one(carry, batch):
      return step_fn(*carry, batch, **kwargs), None

    return jax.lax.scan(one, (state, running_metrics), batches)[0]

  return steps


def _metrics(cls, axis_name: str | None, **outputs):
  if axis_name is None:
    return cls.single_from_model_output(**outputs)
  return cls.gather_from_model_output(axis_name=axis_name, **outputs)


def eval_logits(apply_fn, variables, images, dense: bool = False) -> jax.Array:
  """The eval-mode network's logits for a batch of one view per example [B, H, W, C]; for
  stacks of views [B, V, H, W, C] (or a tuple of stacks, one per scale: the protocols of
  jaxcnn/data/views.py), the log of the softmax averaged over every view, whose argmax and
  cross-entropy are those of the averaged class posteriors. `dense`: the network's dense
  form (VGG's dense evaluation). The views go through the network one at a time (lax.map),
  so the step holds the activations of B images, not of B * V."""
  if not isinstance(images, (tuple, list)) and images.ndim == 4:
    return apply_fn(variables, images, train=False, **({"dense": True} if dense else {}))

  def log_softmax_of(view):
    logits = apply_fn(variables, view, train=False, **({"dense": True} if dense else {}))
    return jax.nn.log_softmax(logits.astype(jnp.float32))

  stacks = tuple(images) if isinstance(images, (tuple, list)) else (images,)
  # [V, B, K] per stack; every view of every scale weighs the same. log(mean(softmax)) as a
  # logsumexp of the log-softmaxes: a class whose probability underflows to 0 in every view
  # (an untrained network's extreme logits) keeps a finite log-probability, not -inf.
  log_probs = jnp.concatenate([jax.lax.map(log_softmax_of, jnp.swapaxes(s, 0, 1))
                               for s in stacks])
  return jax.nn.logsumexp(log_probs, axis=0) - jnp.log(log_probs.shape[0])


def eval_step(state: TrainState, batch: dict[str, Any],
              axis_name: str | None = None, dense: bool = False) -> Metrics:
  """Metrics of the eval-mode network on `batch` (its views averaged, eval_logits); padded
  examples (mask False) do not count."""
  logits = eval_logits(state.apply_fn,
                       {"params": state.eval_params(), "batch_stats": state.batch_stats},
                       batch["image"], dense)
  per_example = cross_entropy(logits, batch["label"], logits.shape[-1])
  return _metrics(EvalMetrics, axis_name, loss=per_example, logits=logits,
                  labels=batch["label"], mask=batch["mask"])
