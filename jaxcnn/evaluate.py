"""Evaluation of a saved checkpoint: top-1/top-5, per-class accuracy, confusion matrix.

    python launch.py --config=configs/X.py --workdir=DIR --mode=eval [--step=best|latest|N]
"""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxcnn import report
from jaxcnn.data import pipeline, views
from jaxcnn.errors import UserError
from jaxcnn.train import checkpoint, steps
from jaxcnn.train import state as state_lib
from jaxcnn.train.parallel import JitParallel


def find_step(ckpt: checkpoint.Checkpointer, which: str) -> int:
  """`which`: "best" (by the run's config.monitor; the latest if none is ranked), "latest", or a step."""
  if which == "best":
    step = ckpt.best_step() or ckpt.latest_step()
  elif which == "latest":
    step = ckpt.latest_step()
  else:
    try:
      step = int(which)
    except ValueError:
      raise UserError(f"--step={which!r}: use best, latest or a step number.") from None
    if step not in ckpt.manager.all_steps():
      raise UserError(f"No checkpoint at step {step} in {ckpt.directory}; there are: "
                      f"{sorted(ckpt.manager.all_steps())}.")
  if step is None:
    raise UserError(f"No checkpoint in {ckpt.directory}: train first (same --workdir).")
  return step


def trained_config(record: dict, workdir: str,
                   config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config that wrote a checkpoint: its record's; for checkpoints whose record holds
  none, the workdir's config.json, else `config`."""
  saved = record.get("config")
  path = os.path.join(workdir, "config.json")
  if saved is None and os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
  return config if saved is None else ml_collections.ConfigDict(saved)


def restore_for_inference(config: ml_collections.ConfigDict, workdir: str, which: str,
                          parallel: JitParallel):
  """(state on the devices, record) of the chosen checkpoint of `workdir`.

  The state is built from the config that trained it (trained_config): its model options,
  precision and EMA, whatever the evaluating config says about them. An EMA run is
  evaluated with its averaged parameters (TrainState.eval_params).
  """
  ckpt = checkpoint.Checkpointer.of_workdir(workdir)
  step = find_step(ckpt, which)
  record = ckpt.read_record(step)
  trained = trained_config(record, workdir, config)
  model, tx = state_lib.model_and_optimizer(trained, parallel)  # any schedule length
  template = state_lib.initial_state(trained, model, tx, record["image_shape"])
  state, _ = ckpt.restore(step, parallel.abstract_checkpoint(parallel.host_state(template)),
                          parallel.abstract_checkpoint(
                              parallel.host_state(steps.Metrics.empty())))
  ckpt.close()
  return parallel.put_state(state), record


def top_k_step(state, batch, k: int, dense: bool = False):
  """Eval-mode logits (the views averaged, steps.eval_logits) -> the k best classes, with the
  labels and mask passed through."""
  logits = steps.eval_logits(state.apply_fn,
                             {"params": state.eval_params(), "batch_stats": state.batch_stats},
                             batch["image"], dense)
  _, top = jax.lax.top_k(logits.astype(jnp.float32), k)
  return top, batch["label"], batch["mask"]


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        which: str = "best") -> dict:
  from jaxcnn.train import loop  # the checks and data loading of training
  run = loop.prepare(config)
  parallel = JitParallel()  # evaluation needs no per-replica statistics
  state, record = restore_for_inference(config, workdir, which, parallel)
  theirs = {k: record.get(k) for k in run.identity}
  if theirs != run.identity:
    raise UserError(f"The checkpoint in {workdir} was trained on {theirs}, this config "
                    f"evaluates {run.identity}: pass the config that trained it.")
  views.check_network(config, state_lib.create_model(trained_config(record, workdir, config)))
  k, dense = min(5, config.num_classes), config.eval_protocol in views.DENSE
  step_fn = jax.jit(lambda s, b: top_k_step(s, b, k, dense),
                    in_shardings=(parallel.replicated, parallel.batch_sharding),
                    out_shardings=parallel.replicated)
  fn = views.for_config(config)
  tops, labels = [], []
  for batch in pipeline.eval_batches(run.test_split, global_batch_size=config.eval_batch_size,
                                     preprocess=fn, process_index=jax.process_index(),
                                     process_count=jax.process_count(),
                                     host_trains=parallel.host_trains):
    top, label, mask = (np.asarray(x.addressable_data(0))
                        for x in step_fn(state, parallel.put_batch(batch)))
    tops.append(top[mask])
    labels.append(label[mask])
  top, labels = np.concatenate(tops), np.concatenate(labels)
  class_names = record.get("class_names") or [str(i) for i in range(config.num_classes)]
  matrix = report.confusion_matrix(labels, top[:, 0], config.num_classes)
  per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
  results = {
      "step": record["step"], "epoch": record["epoch"], "protocol": views.describe(config),
      "num_examples": int(len(labels)),
      "top1_accuracy": float((top[:, 0] == labels).mean()),
      "top5_accuracy": float((top == labels[:, None]).any(axis=1).mean()),
      "per_class_accuracy": {n: float(a) for n, a in zip(class_names, per_class)},
  }
  if jax.process_index() == 0:
    protocol = "" if config.eval_protocol == "center" else f"_{config.eval_protocol}"
    stem = os.path.join(workdir, f"eval_step{record['step']}{protocol}")
    results["confusion_matrix_png"] = report.plot_confusion(matrix, class_names,
                                                            stem + "_confusion.png")
    with open(stem + ".json", "w") as f:
      json.dump({**results, "confusion_matrix": matrix.tolist()}, f, indent=1)
  return results


def format_results(results: dict) -> str:
  lines = [f"checkpoint step {results['step']} (epoch {results['epoch']}), "
           f"{results['num_examples']} test examples, protocol {results['protocol']}",
           f"top-1 accuracy {results['top1_accuracy']:.4f}",
           f"top-5 accuracy {results['top5_accuracy']:.4f}", "per-class accuracy:"]
  width = max(len(n) for n in results["per_class_accuracy"])
  lines += [f"  {n:<{width}}  {a:.4f}" for n, a in results["per_class_accuracy"].items()]
  if "confusion_matrix_png" in results:
    lines.append(f"confusion matrix: {results['confusion_matrix_png']}")
  return "\n".join(lines)
