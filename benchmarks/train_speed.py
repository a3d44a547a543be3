"""Training and evaluation speed of the networks, side by side with PyTorch on the same machine.

    python benchmarks/train_speed.py [--networks=lenet5,resnet20] [--steps=20] [--rounds=3]
        [--torch_python=/path/to/torch-venv/bin/python] [--half_precision] [--out=FILE.jsonl]
        [--steps_per_dispatch=8]   # several steps per call, as config.steps_per_dispatch
    python benchmarks/train_speed.py --end_to_end [--rounds=5]   # a real run against the step

Per network: compile time, training images/s (median of --steps steps after warm-up, with
min and max), evaluation images/s, XLA's FLOPs per step and the GFLOP/s reached, and with
--torch_python the same network's images/s in PyTorch eager and channels_last, measured in
the same run. One JSON object per line, then a Markdown table.

With --rounds=N the two alternate: N rounds of --steps steps of ours, each followed by the
PyTorch reference, and the ratio is the median of the N rounds' ratios. On a shared VM whose
speed drifts by 30-50% over minutes, a ratio of figures taken minutes apart measures the
drift as much as the code; one taken round by round does not.

--end_to_end compares the training images/s of a real run (LeNet on real Fashion-MNIST:
the training loop with its input pipeline, metrics and checkpoints) with the step alone on
a batch in memory, alternating the two the same way.
"""
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxcnn import cpu  # noqa: E402

# Before JAX starts its threads, as launch.py does (JAXCNN_HOST_MEMORY=release to compare).
KEEPS_FREED_MEMORY = "malloc keeps freed memory" in cpu.configure_process()

from absl import app, flags  # noqa: E402

_NETWORKS = flags.DEFINE_list("networks", None, "Subset of the networks below (default: all).")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps after warm-up (per round).")
_ROUNDS = flags.DEFINE_integer("rounds", 1, "Rounds of ours, then PyTorch, alternating.")
_TORCH = flags.DEFINE_string("torch_python", os.environ.get("JAXCNN_TORCH_PYTHON"),
                             "Python of an environment with PyTorch, for the comparison.")
_HALF = flags.DEFINE_bool("half_precision", False, "bfloat16 computation, float32 parameters.")
_OUT = flags.DEFINE_string("out", None, "Also append the JSON lines to this file.")
_STEPS_PER_DISPATCH = flags.DEFINE_integer(
    "steps_per_dispatch", 1, "Training steps per call of the compiled step (lax.scan).")
_END_TO_END = flags.DEFINE_bool("end_to_end", False,
                                "Compare a real run's training speed with the step alone.")

# name -> (jaxcnn model, options, input HWC, classes, batch)
NETWORKS = {
    "lenet5": ("lenet5", {}, (28, 28, 1), 10, 256),
    "resnet20": ("resnet20", {}, (32, 32, 3), 10, 128),
    "resnet18_cifar": ("resnet18_cifar", {}, (32, 32, 3), 10, 128),
    "vgg16_bn_cifar": ("vgg16_bn", {"head": "cifar"}, (32, 32, 3), 10, 128),
    "resnet50": ("resnet50", {}, (224, 224, 3), 1000, 16),
    "alexnet_d2l": ("alexnet_d2l", {}, (224, 224, 1), 10, 32),
}


def _timed(fn, steps: int) -> list[float]:
  import jax
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return times


def _grouped_step(parallel, state, metrics, host_batch, steps_per_dispatch: int):
  """(the compiled steps.scanned step, a group of `host_batch` repeated, on the devices): what
  the loop calls with config.steps_per_dispatch, fed from memory."""
  import numpy as np
  from jaxcnn.train import steps as steps_lib

  group = parallel.put_batch({k: np.stack([v] * steps_per_dispatch)
                              for k, v in host_batch.items()}, grouped=True)
  step = parallel.compile_train_step(
      steps_lib.scanned(steps_lib.accumulating(steps_lib.train_step)), running_metrics=True,
      grouped=True)
  return step.lower(state, metrics, group).compile(), group


def measure(key: str, steps: int, half: bool, rounds: int = 1, between_rounds=None,
            steps_per_dispatch: int = 1) -> dict:
  """The network's figures; `between_rounds()` (the PyTorch reference) runs after each round
  of `steps` training calls, and its results come back as the row's "rounds". With
  `steps_per_dispatch` each call runs that many steps (steps.scanned, as
  config.steps_per_dispatch does in training) and the images/s count them all."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from jaxcnn import models
  from jaxcnn.train import steps as steps_lib
  from jaxcnn.train import parallel as parallel_lib
  from jaxcnn.train.parallel import JitParallel
  from jaxcnn.train.state import create_train_state, for_devices

  name, options, shape, classes, batch = NETWORKS[key]
  if name not in models.list_models():
    return {"network": key, "error": f"model {name!r} is not registered"}
  if half:
    options = {**options, "dtype": jnp.bfloat16}
  plain = models.create(name, num_classes=classes, **options)
  parallel = JitParallel(jax.devices()[:1])
  model = for_devices(plain, parallel)
  state = parallel.put_state(create_train_state(model, optax.sgd(0.01, momentum=0.9), shape, 0))
  rng = np.random.default_rng(0)
  data = {"image": rng.normal(size=(batch, *shape)).astype(np.float32),
          "label": rng.integers(0, classes, batch).astype(np.int32)}
  train_batch = parallel.put_batch(data)
  eval_batch = parallel.put_batch({**data, "mask": np.ones(batch, bool)})

  t0 = time.perf_counter()
  if steps_per_dispatch == 1:
    train = parallel.compile_train_step(steps_lib.train_step).lower(state, train_batch).compile()
  else:
    metrics = parallel.put_state(steps_lib.Metrics.empty())
    train, group = _grouped_step(parallel, state, metrics, data, steps_per_dispatch)
  compile_secs = time.perf_counter() - t0
  evaluate = parallel.compile_eval_step(steps_lib.eval_step).lower(state, eval_batch).compile()
  flops = parallel_lib.step_flops(parallel, functools.partial(steps_lib.train_step), state,
                                 train_batch, plain)

  holder = {"state": state}

  def one_train_step():
    if steps_per_dispatch == 1:
      holder["state"], m = train(holder["state"], train_batch)
      return m
    holder["state"], holder["metrics"] = train(holder["state"], holder.get("metrics", metrics),
                                               group)
    return holder["metrics"]

  per_call = batch * steps_per_dispatch  # images trained per timed call
  _timed(one_train_step, 3)  # warm-up
  train_times, per_round = [], []
  for _ in range(rounds):
    times = _timed(one_train_step, steps)
    train_times += times
    per_round.append({"train_img_s": round(per_call / statistics.median(times), 1)})
    if between_rounds is not None:
      per_round[-1].update(between_rounds())
  eval_times = _timed(lambda: evaluate(holder["state"], eval_batch), max(steps // 2, 5))
  median = statistics.median(train_times)
  return {
      "network": key, "model": name, "batch": batch, "dtype": "bfloat16" if half else "float32",
      **({"steps_per_dispatch": steps_per_dispatch} if steps_per_dispatch > 1 else {}),
      "compile_s": round(compile_secs, 2),
      "train_img_s": round(per_call / median, 1),
      "train_img_s_min": round(per_call / max(train_times), 1),
      "train_img_s_max": round(per_call / min(train_times), 1),
      "eval_img_s": round(batch / statistics.median(eval_times), 1),
      "gflops_per_step": round(flops / 1e9, 3),
      "gflop_s": round(flops * steps_per_dispatch / median / 1e9, 1),
      **({"rounds": per_round} if between_rounds is not None else {}),
  }


def compare_with_torch(row: dict) -> dict:
  """PyTorch's figures and the ratios, from the rounds when there were several."""
  rounds = row.pop("rounds", None)
  if not rounds:
    return row
  for mode in ("eager", "channels_last"):
    measured = [r for r in rounds if mode in r]
    if not measured:
      continue
    ratios = [r["train_img_s"] / r[mode]["median"] for r in measured]
    row[mode] = {"median": statistics.median(r[mode]["median"] for r in measured),
                 "min": min(r[mode]["min"] for r in measured),
                 "max": max(r[mode]["max"] for r in measured)}
    row[f"ratio_vs_{mode}"] = round(statistics.median(ratios), 2)
    if len(measured) > 1:
      row[f"ratios_vs_{mode}"] = [round(r, 2) for r in ratios]
  errors = [r["torch_error"] for r in rounds if "torch_error" in r]
  if errors:
    row["torch_error"] = errors[-1]
  for key in ("torch", "threads"):
    if key in rounds[-1]:
      row[key] = rounds[-1][key]
  return row


def torch_reference(key: str, steps: int) -> dict:
  _, _, _, _, batch = NETWORKS[key]
  script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_reference.py")
  p = subprocess.run([_TORCH.value, script, key, str(batch), str(steps)], capture_output=True,
                     text=True)
  if p.returncode:
    return {"torch_error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "failed"}
  return json.loads(p.stdout.strip().splitlines()[-1])


def end_to_end(rounds: int = 1) -> dict:
  """A real run (loop.train_and_evaluate: LeNet on real Fashion-MNIST, its input pipeline,
  metrics, progress and checkpoints) against its compiled step on batches in memory.

  Each round trains two epochs in a fresh workdir and takes the second epoch's training
  images/s from its metrics.jsonl (the first includes one-off warm-up: the pipeline's start,
  oneDNN's primitives); then an epoch's worth of the step alone, one call per step (as the
  table measures it, here with the running metrics summed in the step as the loop does),
  and, where the config runs several steps per call (config.steps_per_dispatch), of those
  same calls on a group of batches in memory.
  """
  import contextlib
  import io
  import tempfile
  import jax
  from configs import lenet_fashion_mnist
  from jaxcnn import report
  from jaxcnn.data import pipeline
  from jaxcnn.train import loop, state as state_lib, steps as steps_lib
  config = lenet_fashion_mnist.get_config()
  config.num_epochs = 2
  config.progress_every_secs = 1e9
  run = loop.prepare(config)
  parallel = run.parallel
  group = run.steps_per_dispatch
  state = parallel.put_state(state_lib.initial_state(config, run.model, run.tx, run.image_shape))
  metrics = parallel.put_state(steps_lib.Metrics.empty())
  host_batch = next(pipeline.train_batches(
      run.train_split, global_batch_size=config.batch_size, seed=0, start_step=0,
      preprocess=run.train_preprocess, host_trains=parallel.host_trains))
  batch = parallel.put_batch(host_batch)
  one_step = steps_lib.accumulating(steps_lib.train_step)
  calls = {1: (parallel.compile_train_step(one_step, running_metrics=True)
               .lower(state, metrics, batch).compile(), batch)}
  if group > 1:
    calls[group] = _grouped_step(parallel, state, metrics, host_batch, group)
  holder = {"state": state, "metrics": metrics}

  def in_memory_rate(steps_per_call: int) -> float:
    fn, data = calls[steps_per_call]

    def run_calls(n):
      t = time.perf_counter()
      for _ in range(n):
        holder["state"], holder["metrics"] = fn(holder["state"], holder["metrics"], data)
      jax.block_until_ready(holder["metrics"])
      return n * steps_per_call * config.batch_size / (time.perf_counter() - t)

    run_calls(2)  # warm-up
    return run_calls(run.steps_per_epoch // steps_per_call)

  def real_run_rate() -> float:
    with tempfile.TemporaryDirectory() as workdir, contextlib.redirect_stdout(io.StringIO()):
      loop.train_and_evaluate(config, workdir)
      rows = [r for r in report.read_metrics(workdir) if r["split"] == "train"]
    return rows[-1]["images_per_sec"]

  rates = {"real": [], 1: [], group: []}
  for _ in range(rounds):  # alternating, so the machine's drift hits all alike
    rates["real"].append(real_run_rate())
    for steps_per_call in sorted(calls):
      rates[steps_per_call].append(in_memory_rate(steps_per_call))
  ratios = [r / a for r, a in zip(rates["real"], rates[1])]
  row = {"network": "lenet5 end-to-end (Fashion-MNIST)", "batch": config.batch_size,
         "steps_per_dispatch": group,
         "real_run_img_s": round(statistics.median(rates["real"]), 1),
         "step_alone_img_s": round(statistics.median(rates[1]), 1),
         "ratio": round(statistics.median(ratios), 3),
         **({"ratios": [round(r, 3) for r in ratios]} if rounds > 1 else {})}
  if group > 1:
    same_calls = [r / a for r, a in zip(rates["real"], rates[group])]
    row["same_calls_in_memory_img_s"] = round(statistics.median(rates[group]), 1)
    row["ratio_vs_same_calls"] = round(statistics.median(same_calls), 3)
    if rounds > 1:
      row["ratios_vs_same_calls"] = [round(r, 3) for r in same_calls]
  return row


def main(argv):
  del argv
  import jax
  machine = {"machine": platform.node(), "cpu": platform.processor() or platform.machine(),
             "cores": os.cpu_count(), "jax": jax.__version__,
             "device": jax.devices()[0].device_kind,
             "host_memory": "keep" if KEEPS_FREED_MEMORY else "release"}
  rows = []
  if _END_TO_END.value:
    rows.append({**machine, **end_to_end(max(_ROUNDS.value, 1))})
  else:
    for key in _NETWORKS.value or list(NETWORKS):
      between = (lambda key=key: torch_reference(key, _STEPS.value)) if _TORCH.value else None
      row = {**machine, **measure(key, _STEPS.value, _HALF.value, max(_ROUNDS.value, 1), between,
                                  _STEPS_PER_DISPATCH.value)}
      rows.append(compare_with_torch(row))
      print(json.dumps(row), flush=True)
  if _OUT.value:
    with open(_OUT.value, "a") as f:
      for row in rows:
        f.write(json.dumps(row) + "\n")
  print(table(rows))


def table(rows) -> str:
  if rows and "real_run_img_s" in rows[0]:
    r = rows[0]
    text = (f"\n{r['network']}: a real run {r['real_run_img_s']} img/s, the step alone "
            f"{r['step_alone_img_s']} img/s, ratio {r['ratio']}"
            + (f" (rounds: {', '.join(map(str, r['ratios']))})" if "ratios" in r else ""))
    if "ratio_vs_same_calls" in r:
      text += (f"\nthe same {r['steps_per_dispatch']}-step calls on batches in memory "
               f"{r['same_calls_in_memory_img_s']} img/s, ratio {r['ratio_vs_same_calls']}"
               + (f" (rounds: {', '.join(map(str, r['ratios_vs_same_calls']))})"
                  if "ratios_vs_same_calls" in r else ""))
    return text
  lines = ["| network, batch | dtype | compile s | train img/s (min-max) | eval img/s | GFLOP/s |"
           " PyTorch eager | PyTorch channels_last | ratio vs eager | ratio vs channels_last |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    if "train_img_s" not in r:  # the network itself could not be measured
      lines.append(f"| {r['network']} | {r.get('error', 'failed')} |")
      continue
    eager = r.get("eager", {}).get("median", "")
    cl = r.get("channels_last", {}).get("median", "")
    eager, cl = (round(v, 1) if v != "" else "" for v in (eager, cl))
    if "torch_error" in r:  # the PyTorch reference failed; the network's own figures stand
      cl = r["torch_error"]
    lines.append(
        f"| {r['network']}, {r['batch']} | {r['dtype']} | {r['compile_s']} | {r['train_img_s']} "
        f"({r['train_img_s_min']}-{r['train_img_s_max']}) | {r['eval_img_s']} | {r['gflop_s']} | "
        f"{eager} | {cl} | {r.get('ratio_vs_eager', '')} | {r.get('ratio_vs_channels_last', '')} |")
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
