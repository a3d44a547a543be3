"""train_and_evaluate: the whole training loop in one place."""
import dataclasses
import functools
import itertools
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import parameter_overview

from jaxcnn import compile_cache, report
from jaxcnn.data import pipeline, preprocess, sources, views
from jaxcnn.errors import UserError
from jaxcnn.train import checkpoint, optim, parallel as parallel_lib, pretrained, resume, steps
from jaxcnn.train import monitor as monitor_lib, state as state_lib
from jaxcnn.train.logs import RunLog, summarize
from jaxcnn.train.monitor import Monitor
from jaxcnn.train.preemption import Preempted, PreemptionWatch
from jaxcnn.train.progress import EpochProgress, ReportProgress


_SHORT = {"test": "test", "validation": "val"}  # the epoch line's names of the evaluated split


class NonFiniteLoss(Exception):
  """The loss or a gradient became NaN or infinite (and config.skip_nonfinite_steps is off)."""


def _print(msg: str) -> None:
  if jax.process_index() == 0:
    print(msg, flush=True)


def evaluate(eval_step, parallel, state, split, config) -> dict[str, float]:
  """Metrics over the whole split, by config.eval_protocol: every example counted exactly once."""
  fn = views.for_config(config)
  total = None
  for batch in pipeline.eval_batches(split, global_batch_size=config.eval_batch_size,
                                     preprocess=fn, process_index=jax.process_index(),
                                     process_count=jax.process_count(),
                                     host_trains=parallel.host_trains):
    m = parallel.metrics(eval_step(state, parallel.put_batch(batch)))
    total = m if total is None else total.merge(m)
  return summarize(total)


def _protocol_note(config) -> str:
  """The epoch line's note after the eval accuracy: " (ten_crop)", none for a centre view."""
  protocol = views.describe(config)
  return "" if protocol == "center" else f" ({protocol})"


@dataclasses.dataclass
class Run:
  """What the loop derives from the config before the first step."""
  config: ml_collections.ConfigDict
  parallel: parallel_lib.JitParallel | parallel_lib.PmapParallel
  train_split: sources.Split
  test_split: sources.Split
  steps_per_epoch: int
  total_steps: int
  train_preprocess: callable
  image_shape: tuple[int, ...]
  model: object
  tx: object
  steps_per_dispatch: int

  @property
  def identity(self) -> dict:
    """What a checkpoint must match to be resumed by this config."""
    c = self.config
    return {"model": c.model, "dataset": c.dataset, "num_classes": c.num_classes,
            "image_shape": list(self.image_shape)}

  def record(self, epoch: int, step: int) -> dict:
    """The JSON record saved beside each checkpoint."""
    return {**self.identity, "epoch": epoch, "step": step,
            "class_names": list(self.train_split.class_names),
            "config": resume.as_plain(self.config)}


def prepare(config: ml_collections.ConfigDict) -> Run:
  """Checks the config against the devices and the data; everything a person can fix fails here."""
  steps_per_dispatch = config.get("steps_per_dispatch", 1)
  if not isinstance(steps_per_dispatch, int) or steps_per_dispatch < 1:
    raise UserError(f"config.steps_per_dispatch={steps_per_dispatch!r} must be a whole number "
                    f"of steps, 1 or more.")
  if config.get("profile_steps", 0):
    steps_per_dispatch = 1  # a profile traces single steps
  parallel = parallel_lib.create(config)
  parallel.check_batch_size(config.batch_size)
  parallel.check_batch_size(config.eval_batch_size, "eval_batch_size")
  if config.data_dir and not os.path.isdir(config.data_dir):
    raise UserError(f"--config.data_dir={config.data_dir!r} does not exist; give the directory "
                    f"that holds the dataset, or leave it empty for the default sources.")
  train_split = sources.load(config.dataset, "train", config.data_dir, config.download, config)
  test_split = sources.load(config.dataset, "test", config.data_dir, config.download, config)
  if len(train_split.class_names) != config.num_classes:
    raise UserError(f"config.num_classes={config.num_classes} but {config.dataset} has "
                    f"{len(train_split.class_names)} classes: set "
                    f"--config.num_classes={len(train_split.class_names)}.")
  steps_per_epoch = pipeline.steps_per_epoch(train_split.num_examples, config.batch_size,
                                             config.get("drop_remainder", True))
  if steps_per_epoch == 0:
    raise UserError(f"config.batch_size={config.batch_size} is larger than the "
                    f"{train_split.num_examples} training examples.")
  total_steps = (config.num_train_steps if config.num_train_steps > 0
                 else config.num_epochs * steps_per_epoch)
  train_fn = pipeline.make_preprocess(preprocess.get(config.train_preprocess), config)
  preprocess.get(config.eval_preprocess)  # fail early on an unknown name
  views.check(config)  # and on a protocol it cannot evaluate
  Monitor.from_config(config)  # and on an unknown monitor
  image_shape = pipeline.example_shape(train_split, train_fn)
  model, tx = state_lib.model_and_optimizer(config, parallel, steps_per_epoch=steps_per_epoch,
                                            total_steps=total_steps)
  views.check_network(config, model)
  return Run(config, parallel, train_split, test_split, steps_per_epoch, total_steps, train_fn,
             image_shape, model, tx, steps_per_dispatch)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       fresh: bool = False) -> dict[str, float]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the last test metrics.

  Raises UserError for mistakes in the config or data, Preempted after a SIGTERM/SIGINT
  checkpoint, NonFiniteLoss when training diverges.
  """
  compile_cache.listen()
  compiles_before = compile_cache.tally()
  run = prepare(config)
  parallel = run.parallel
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:  # for the curves after the first epoch, while XLA compiles
    report.import_in_background()
  state = state_lib.initial_state(config, run.model, run.tx, run.image_shape)
  train_metrics = steps.Metrics.empty()

  ckpt_dir = os.path.join(workdir, "checkpoints")
  if fresh and (moved := checkpoint.move_aside(ckpt_dir)):
    _print(f"--fresh: moved the earlier checkpoints to {moved}.")
  ckpt = checkpoint.Checkpointer.for_config(ckpt_dir, config, keep=config.keep_checkpoints)
  config_file = os.path.join(workdir, "config.json")
  changed = []

  def may_resume(record):
    changed.extend(resume.check(record, config, run.identity, ckpt.directory, config_file))

  restored = ckpt.restore_latest(parallel.abstract_checkpoint(parallel.host_state(state)),
                                 parallel.abstract_checkpoint(parallel.host_state(train_metrics)),
                                 may_resume)
  if jax.process_index() == 0:  # once the checkpoints are known to belong to this config
    with open(config_file, "w") as f:
      f.write(config.to_json_best_effort(indent=2))
  plateau = optim.Plateau.from_config(config)
  watched = Monitor.from_config(config)
  eval_split = monitor_lib.split_name(config)
  if restored is not None:
    state, train_metrics, record = restored
    train_metrics = parallel.host_state(train_metrics)
    plateau = optim.Plateau.from_config(config, record.get("plateau"))
    watched = Monitor.from_config(config, record.get("monitor_best"))
    _print(f"Resuming from the checkpoint at step {record['step']} (epoch {record['epoch']}).")
    if changed:
      _print(resume.describe(changed))
    if record.get("stopped_early"):
      _print("This run stopped early (no improvement); nothing more to train.")
      return {}
  elif config.init_from:
    state, copied = pretrained.initialize_from(state, config)
    _print(f"Initialised {', '.join(copied)} from {config.init_from}.")
  state = parallel.put_state(state)
  # Summed on the devices by the step itself (steps.accumulating); read at logging intervals.
  train_metrics = parallel.put_state(train_metrics)
  start_step = int(parallel.host_state(state.step))

  group_size = run.steps_per_dispatch
  host_batches = pipeline.train_batches(
      run.train_split, global_batch_size=config.batch_size, seed=config.seed,
      start_step=start_step, preprocess=run.train_preprocess,
      process_index=jax.process_index(), process_count=jax.process_count(),
      group_size=group_size, drop_remainder=config.get("drop_remainder", True),
      host_trains=parallel.host_trains)
  first = next(host_batches)
  example = {k: v[0] for k, v in first.items()} if group_size > 1 else first
  calls = _dispatch_plan(itertools.chain([first], host_batches), start_step, group_size,
                         functools.partial(_ends_a_call, run))
  # Host-to-device copies of the next calls' batches overlap the current step.
  calls = pipeline.prefetch_to_device(
      calls, lambda call: (call[0], parallel.put_batch(call[1], grouped=call[0] > 1)))
  step_kw = dict(label_smoothing=config.label_smoothing, aux_loss_weight=config.aux_loss_weight,
                 ema_decay=config.ema_decay, rollback_nonfinite=config.skip_nonfinite_steps)
  example_batch = parallel.put_batch(example)

  def compile_for_loop(step_fn, batch, grouped=False):
    p_step = parallel.compile_train_step(step_fn, running_metrics=True, grouped=grouped)
    compiled = p_step.lower(state, train_metrics, batch).compile()
    # Under jit the executable compiled here is the one the loop calls, so it is compiled
    # once. (A multi-process pmap executable expects global arrays: pmap keeps its own
    # dispatch and compiles again on its first call.)
    return compiled if parallel.name == "jit" else p_step

  one_step = steps.accumulating(functools.partial(steps.train_step, **step_kw))
  p_train_step = compile_for_loop(one_step, example_batch)
  p_train_steps = None  # several steps per call, where a whole group is left to train
  if group_size > 1 and run.total_steps - start_step >= group_size:
    zeros = {k: np.zeros((group_size, *v.shape), v.dtype) for k, v in example.items()}
    p_train_steps = compile_for_loop(steps.scanned(one_step),
                                     parallel.put_batch(zeros, grouped=True), grouped=True)
  p_eval_step = _compile_eval_step(run, state)
  flops = parallel_lib.step_flops(parallel, functools.partial(steps.train_step, **step_kw),
                                  state, example_batch,
                                  state_lib.create_model(config, parallel.bn_axis_name))
  _describe(run, parallel.host_state(state).params, flops,
            compile_cache.describe(compiles_before, compile_cache.tally()))

  def save(step: int, epoch: int, metrics=None, **extra):
    # Never a state after a non-finite step (the step undoes only what skip_nonfinite_steps
    # needs undone): raises NonFiniteLoss first.
    running = _check_finite(parallel.metrics(train_metrics), config)
    record = {**run.record(epoch, step), "plateau": plateau.state(),
              "monitor_best": watched.best, **extra}
    ckpt.save(step, parallel.checkpointable(state), record,
              train_metrics=parallel_lib.replicate_on_mesh(parallel.host_state(running),
                                                           parallel.replicated),
              metrics=metrics)

  log = RunLog(workdir)
  report_progress = ReportProgress(num_train_steps=run.total_steps, writer=log.writer,
                                   every_secs=config.progress_every_secs)
  bar = EpochProgress(config.batch_size, config.progress_every_secs)
  hooks = [report_progress]
  profiling = bool(config.get("profile_steps", 0)) and jax.process_index() == 0
  if profiling:
    from clu import periodic_actions  # with TensorFlow, which profiling then imports
    # A jax.profiler trace of a few steps, written for TensorBoard's profile plugin. The
    # window is counted in steps only: clu's default 3 s minimum would never close on steps
    # faster than that.
    hooks.append(periodic_actions.Profile(
        logdir=workdir, num_profile_steps=config.profile_steps, profile_duration_ms=None,
        first_profile=start_step + config.profile_first_step, every_secs=None))

  test_summary = {}
  step, calls_made = start_step, 0
  try:
    with PreemptionWatch() as preemption:
      while step < run.total_steps:
        num_steps, batch = next(calls)
        if step == start_step or step % run.steps_per_epoch == 0:
          # An epoch's training time runs from here to its last step's end: the evaluation,
          # checkpoint and plots between epochs are not training.
          epoch_start, steps_before = time.time(), step
          epoch_first = step // run.steps_per_epoch * run.steps_per_epoch
          bar.start(epoch_first // run.steps_per_epoch + 1, step - epoch_first,
                    min(run.steps_per_epoch, run.total_steps - epoch_first))
        train_fn = p_train_steps if num_steps > 1 else p_train_step
        state, train_metrics = train_fn(state, train_metrics, batch)
        first_step, step = step + 1, step + num_steps
        calls_made += 1
        for hook in hooks:
          for hooked_step in range(first_step, step + 1):
            hook(hooked_step)
        epoch, step_in_epoch = divmod(step, run.steps_per_epoch)
        end_of_epoch = step_in_epoch == 0 or step == run.total_steps
        loss = None
        every = config.log_every_steps  # at the end of each call that reached a multiple of it
        if end_of_epoch or step // every > (first_step - 1) // every:
          # The only host-device sync between epochs.
          loss = float(_check_finite(parallel.metrics(train_metrics), config).loss.compute())
        bar.update(step - (step - 1) // run.steps_per_epoch * run.steps_per_epoch, loss)
        if end_of_epoch:
          bar.close()
          epoch = -(-step // run.steps_per_epoch)
          train_summary = summarize(parallel.metrics(train_metrics))
          train_time = time.time() - epoch_start
          train_summary["seconds"] = train_time
          train_summary["images_per_sec"] = (step - steps_before) * config.batch_size / train_time
          test_summary = evaluate(p_eval_step, parallel, state, run.test_split, config)
          epoch_time = time.time() - epoch_start
          log.write_split(step=step, epoch=epoch, split="train", summary=train_summary)
          log.write_split(step=step, epoch=epoch, split=eval_split, summary=test_summary)
          log.flush()
          if jax.process_index() == 0:
            report.plot_curves(workdir)
          _print(f"epoch {epoch}, step {step}, loss {train_summary['loss']:.4f}, "
                 f"train acc {train_summary['accuracy']:.3f}, "
                 f"{_SHORT[eval_split]} acc{_protocol_note(config)} "
                 f"{test_summary['accuracy']:.3f}, time {epoch_time:.1f} sec "
                 f"(train {train_time:.1f}, eval {epoch_time - train_time:.1f})")
          train_metrics = parallel.put_state(steps.Metrics.empty())
          value = watched.value(test_summary)
          best_so_far = watched.update(value)
          reduce, stop = plateau.update(value)
          if reduce:
            host = parallel.host_state(state)
            scale = optim.lr_scale(host.opt_state) * plateau.factor
            state = parallel.put_state(
                host.replace(opt_state=optim.with_lr_scale(host.opt_state, scale)))
            _print(f"{watched.name} has not improved for {plateau.patience} epoch(s): learning "
                   f"rate x{scale:g} (reduction {plateau.reductions} of {plateau.max_reductions}).")
          if stop or epoch % config.checkpoint_every_epochs == 0 or step == run.total_steps:
            # Ranked only where it beat every earlier epoch (Keras's save_best_only).
            save(step, epoch, metrics={watched.name: value} if best_so_far else None,
                 stopped_early=stop)
          if stop:
            _print(f"Early stopping: no improvement of {watched.name} for "
                   f"{plateau.stop_patience} epochs (best {plateau.best:.4f}, kept as the best "
                   f"checkpoint {ckpt.best_step()}).")
            break
        elif config.checkpoint_every_steps and step % config.checkpoint_every_steps == 0:
          save(step, epoch)
        # Counted in calls: the processes' sync point is one more than the furthest, which
        # a step count that moves by steps_per_dispatch could skip. (Every process makes the
        # same calls.)
        if preemption.should_stop(calls_made):
          if not end_of_epoch:
            save(step, epoch)
          ckpt.wait()
          raise Preempted(step)
  except NonFiniteLoss:
    ckpt.wait()  # the last good checkpoint, perhaps still being written, is kept
    raise

  bar.close()
  if profiling:
    try:  # a profile window that reached past the last step is written now
      jax.profiler.stop_trace()
    except RuntimeError:  # it had already closed
      pass
  ckpt.wait()
  ckpt.close()
  log.close()
  if start_step >= run.total_steps:
    _print(f"Nothing to do: the checkpoint in {workdir} is already at step {start_step} "
           f"of {run.total_steps}.")
  return test_summary


def _ends_a_call(run: Run, step: int) -> bool:
  """Whether the loop acts on the host after `step`, so a call of the compiled step must end
  there: the end of an epoch or of the run, a checkpoint. (Logging waits for the call's end.)"""
  every = run.config.checkpoint_every_steps
  return (step % run.steps_per_epoch == 0 or step == run.total_steps
          or bool(every and step % every == 0))


def _dispatch_plan(host_batches, start_step: int, group_size: int, ends_a_call):
  """(steps, host batch) per call of the compiled step, from `train_batches(group_size=...)`.

  A whole group is one call of the grouped step unless a step before its last must end a
  call (see _ends_a_call); such a group, or a short one, is one call per batch.
  """
  step = start_step
  for group in host_batches:
    if group_size == 1:
      yield 1, group
      step += 1
      continue
    n = len(group["label"])
    if n == group_size and not any(ends_a_call(s) for s in range(step + 1, step + n)):
      yield n, group
    else:
      for i in range(n):
        yield 1, {k: v[i] for k, v in group.items()}
    step += n


def _compile_eval_step(run: Run, state):
  """The eval step, compiled now under jit (for the examples the evaluation will pass it), so
  that the run reports its compilation before the first step; pmap compiles at the first call."""
  parallel, config = run.parallel, run.config
  p_eval_step = parallel.compile_eval_step(
      functools.partial(steps.eval_step, dense=config.eval_protocol in views.DENSE))
  if parallel.name != "jit":
    return p_eval_step
  local = config.eval_batch_size // jax.process_count()
  batch = {"image": pipeline.zeros_batch(run.test_split, views.for_config(config), local),
           "label": np.zeros(local, np.int32), "mask": np.zeros(local, bool)}
  return p_eval_step.lower(state, parallel.put_batch(batch)).compile()


def _describe(run: Run, params, step_flops: float, compilation: str) -> None:
  """What a researcher wants to see before the first step."""
  if jax.process_index() != 0:
    return
  p = run.parallel
  devices = p.devices
  bn = ("synchronised" if run.config.sync_batch_norm else "per replica")
  print(f"Devices: {len(devices)} x {devices[0].platform} ({devices[0].device_kind}) over "
        f"{jax.process_count()} process(es); parallelism {p.name}, batch norm {bn}, "
        f"{run.config.batch_size // len(devices)} examples per device.", flush=True)
  print(f"Model {run.config.model}, input {run.image_shape}:", flush=True)
  print(parameter_overview.get_parameter_overview(params, include_stats=False), flush=True)
  # Counted before partitioning: a per-device program under pmap and shard_map, the whole
  # step under GSPMD.
  programs = len(devices) if p.name == "pmap" or p.axis_name else 1
  if step_flops > 0:
    mflops = step_flops * programs / run.config.batch_size / 1e6
    print(f"Train step: {mflops:,.1f} MFLOPs per example (forward + backward, XLA cost "
          f"analysis).", flush=True)
  print(compilation, flush=True)
  print(f"{run.steps_per_epoch} steps per epoch, {run.total_steps} steps in all.", flush=True)
  print("Config:\n" + str(run.config), flush=True)


def _check_finite(train_metrics, config):
  """`train_metrics` (one copy, see parallel.metrics), after raising NonFiniteLoss if a step
  was not finite and config.skip_nonfinite_steps is off."""
  bad = train_metrics.nonfinite_steps
  count = int(bad.count)
  if count and not config.skip_nonfinite_steps:
    raise NonFiniteLoss(
        f"The loss or gradients became non-finite at step {int(bad.first_step)}; training "
        f"stopped and the last good checkpoint is kept (rerun with "
        f"--config.skip_nonfinite_steps=True to skip such steps, or start over with a lower "
        f"learning rate and --fresh).")
  if count:
    logging.warning("%d step(s) with a non-finite loss were skipped so far this epoch "
                    "(the first at step %d).", count, int(bad.first_step))
  return train_metrics
