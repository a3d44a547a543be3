"""Pure train and eval steps. They know nothing of devices: parallel.py compiles them."""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from clu import metrics

from jaxcnn.train.state import TrainState


@flax.struct.dataclass
class Metrics(metrics.Collection):
  loss: metrics.Average.from_output("loss")
  accuracy: metrics.Accuracy


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


def train_step(state: TrainState, batch: dict[str, jax.Array], *,
               label_smoothing: float = 0.0,
               aux_loss_weight: float = 0.3) -> tuple[TrainState, Metrics]:
  """One optimisation step on `batch`; returns the new state and the batch's metrics.

  The loss is the main head's cross-entropy plus `aux_loss_weight` times each auxiliary
  head's (GoogLeNet's 0.3); the reported loss and accuracy are the main head's.
  """
  dropout_key = jax.random.fold_in(state.rng, state.step)

  def loss_fn(params):
    outputs, new_model_state = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, batch["image"], train=True,
        mutable=["batch_stats"], rngs={"dropout": dropout_key})
    logits, aux_logits = split_outputs(outputs)
    num_classes = logits.shape[-1]
    per_example = cross_entropy(logits, batch["label"], num_classes, label_smoothing)
    loss = per_example.mean()
    for aux in aux_logits:
      loss += aux_loss_weight * cross_entropy(aux, batch["label"], num_classes,
                                              label_smoothing).mean()
    return loss, (per_example, logits, new_model_state)

  grads, (per_example, logits, new_model_state) = jax.grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(
      grads=grads, batch_stats=new_model_state.get("batch_stats", state.batch_stats))
  step_metrics = Metrics.single_from_model_output(
      loss=per_example, logits=logits, labels=batch["label"])
  return new_state, step_metrics


def eval_step(state: TrainState, batch: dict[str, Any]) -> Metrics:
  """Metrics of the eval-mode network on `batch`; padded examples (mask False) do not count."""
  logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                          batch["image"], train=False)
  per_example = cross_entropy(logits, batch["label"], logits.shape[-1])
  return Metrics.single_from_model_output(
      loss=per_example, logits=logits, labels=batch["label"], mask=batch["mask"])
