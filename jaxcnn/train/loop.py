"""train_and_evaluate: the whole training loop in one place."""
import functools
import json
import os
import time

import jax
import ml_collections
from absl import logging
from clu import periodic_actions

from jaxcnn import models
from jaxcnn.data import pipeline, preprocess, sources
from jaxcnn.errors import UserError
from jaxcnn.train import checkpoint, optim, steps
from jaxcnn.train.logs import RunLog, summarize
from jaxcnn.train.parallel import JitParallel
from jaxcnn.train.state import create_train_state


def _print(msg: str) -> None:
  if jax.process_index() == 0:
    print(msg, flush=True)


def evaluate(eval_step, parallel, state, split, config) -> dict[str, float]:
  """Metrics over the whole split: every example counted exactly once."""
  fn = pipeline.make_preprocess(preprocess.get(config.eval_preprocess), config)
  total = None
  for batch in pipeline.eval_batches(split, global_batch_size=config.eval_batch_size,
                                     preprocess=fn, process_index=jax.process_index(),
                                     process_count=jax.process_count()):
    m = eval_step(state, parallel.put_batch(batch))
    total = m if total is None else total.merge(m)
  return summarize(total)


def _run_record(config, epoch: int, step: int, class_names) -> dict:
  """The JSON record saved beside each checkpoint: what it is and where the run stood."""
  return {"model": config.model, "dataset": config.dataset, "num_classes": config.num_classes,
          "epoch": epoch, "step": step, "class_names": list(class_names)}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the last test metrics."""
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))

  parallel = JitParallel()
  parallel.check_batch_size(config.batch_size)
  parallel.check_batch_size(config.eval_batch_size, "eval_batch_size")

  train_split = sources.load(config.dataset, "train", config.data_dir, config.download)
  test_split = sources.load(config.dataset, "test", config.data_dir, config.download)
  if len(train_split.class_names) != config.num_classes:
    raise UserError(f"config.num_classes={config.num_classes} but {config.dataset} has "
                    f"{len(train_split.class_names)} classes.")

  steps_per_epoch = train_split.num_examples // config.batch_size
  if steps_per_epoch == 0:
    raise UserError(f"config.batch_size={config.batch_size} is larger than the "
                    f"{train_split.num_examples} training examples.")
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else config.num_epochs * steps_per_epoch)

  model = models.create(config.model, num_classes=config.num_classes, **config.model_options)
  tx = optim.create_optimizer(config, steps_per_epoch, total_steps)
  train_fn = pipeline.make_preprocess(preprocess.get(config.train_preprocess), config)
  image_shape = train_fn(train_split.images[0], None).shape
  state = create_train_state(model, tx, tuple(image_shape), config.seed)

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 keep=config.keep_checkpoints)
  start = ckpt.latest_step()
  if start is not None:
    state, record = ckpt.restore(start, state)
    _print(f"Resuming from the checkpoint at step {start} (epoch {record['epoch']}).")
  state = parallel.put_state(state)
  start_step = int(state.step)

  p_train_step = parallel.compile_train_step(
      functools.partial(steps.train_step, label_smoothing=config.label_smoothing,
                        aux_loss_weight=config.aux_loss_weight))
  p_eval_step = parallel.compile_eval_step(steps.eval_step)

  log = RunLog(workdir)
  progress = periodic_actions.ReportProgress(num_train_steps=total_steps, writer=log.writer,
                                             every_secs=config.progress_every_secs)
  batches = pipeline.train_batches(
      train_split, global_batch_size=config.batch_size, seed=config.seed, start_step=start_step,
      preprocess=train_fn, process_index=jax.process_index(), process_count=jax.process_count())

  test_summary = {}
  train_metrics, epoch_start = None, time.time()
  for step in range(start_step + 1, total_steps + 1):
    state, m = p_train_step(state, parallel.put_batch(next(batches)))
    train_metrics = m if train_metrics is None else train_metrics.merge(m)
    progress(step)
    if step % steps_per_epoch and step != total_steps:
      continue
    # End of an epoch (or of the run): summarise, evaluate on the whole test split.
    epoch = -(-step // steps_per_epoch)
    train_summary = summarize(train_metrics)
    train_time = time.time() - epoch_start
    test_summary = evaluate(p_eval_step, parallel, state, test_split, config)
    epoch_time = time.time() - epoch_start
    log.write_split(step=step, epoch=epoch, split="train", summary=train_summary)
    log.write_split(step=step, epoch=epoch, split="test", summary=test_summary)
    log.flush()
    _print(f"epoch {epoch}, step {step}, loss {train_summary['loss']:.4f}, "
           f"train acc {train_summary['accuracy']:.3f}, test acc {test_summary['accuracy']:.3f}, "
           f"time {epoch_time:.1f} sec (train {train_time:.1f}, eval {epoch_time - train_time:.1f})")
    if epoch % config.checkpoint_every_epochs == 0 or step == total_steps:
      ckpt.save(step, state, _run_record(config, epoch, step, train_split.class_names),
                metrics={checkpoint.BEST_METRIC: test_summary["accuracy"]})
    train_metrics, epoch_start = None, time.time()

  ckpt.wait()
  ckpt.close()
  log.close()
  if start_step >= total_steps:
    _print(f"Nothing to do: the checkpoint in {workdir} is already at step {start_step} of {total_steps}.")
  return test_summary
