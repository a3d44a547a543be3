"""Where a short run's seconds go: a 1-step run of launch.py, phase by phase, cold and warm.

    python benchmarks/startup.py [--config=configs/lenet_fashion_mnist.py] [--rounds=3]
    python benchmarks/startup.py --tree=/tmp/before   # another checkout (a `git worktree`)

Each round starts two fresh processes of `launch.py --config=CONFIG
--config.num_train_steps=1`, each in a new workdir: cold, with an empty compilation cache
(JAXCNN_COMPILATION_CACHE pointed at a new directory), then warm, with the cache the cold
one filled. (oneDNN's binding, built once per machine into ~/.cache/jaxcnn, is not part of
the compilation cache and is already built in both.) Per process, seconds since it was
started:

  import      launch.py's imports and the training loop's (jaxcnn.train.loop)
  data        the config checked against the devices and both splits loaded (loop.prepare)
  state       the model initialised (state.initial_state)
  batch       from there to the first training batch on the host (the checkpoint
              directory's check and the input pipeline's start)
  train, eval each step's compilation: tracing, lowering and XLA's compile or the cache's
              load (JAX's compile events), wherever in the run it happens
  other       every other program JAX compiled (the model's init, small helpers)
  run         the rest, to the loop's return: the step, evaluation, the checkpoint, plots
  exit        from the loop's return to the process's end
  total       the process's wall time

One JSON line per process, then a table of medians. A checkout without the compilation
cache (before it existed) runs cold both times.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = ("import", "data", "state", "batch", "train", "eval", "other", "run", "exit", "total")


def _child(out_path: str, launch_args: list[str]) -> None:
  """In the measured process: run launch.py's main with timers around its phases."""
  t0 = float(os.environ["STARTUP_T0"])
  marks, compiles, by_event = {}, [], []

  def mark(name):
    marks.setdefault(name, time.time() - t0)

  sys.argv = [os.path.join(os.getcwd(), "launch.py"), *launch_args]
  sys.path.insert(0, os.getcwd())
  import launch  # noqa: F401  (its module-level set-up, as a run does)
  from absl import app
  from jax import monitoring
  from jaxcnn.data import pipeline
  from jaxcnn.train import loop
  from jaxcnn.train import state as state_lib
  mark("import")

  def on_duration(event, duration, **kw):
    if event.startswith("/jax/core/compile/"):
      compiles.append((kw.get("fun_name", ""), duration))
      by_event.append((event.rsplit("/", 1)[-1], kw.get("fun_name", ""), round(duration, 3)))

  monitoring.register_event_duration_secs_listener(on_duration)

  def after(fn, name):
    def wrapped(*args, **kwargs):
      result = fn(*args, **kwargs)
      mark(name)
      return result
    return wrapped

  def first_batch(fn):
    def wrapped(*args, **kwargs):
      for i, batch in enumerate(fn(*args, **kwargs)):
        if i == 0:
          mark("batch")
        yield batch
    return wrapped

  loop.prepare = after(loop.prepare, "data")
  state_lib.initial_state = after(state_lib.initial_state, "state")
  pipeline.train_batches = first_batch(pipeline.train_batches)
  try:
    app.run(launch.main, flags_parser=launch._parse_flags)
  except SystemExit as e:
    if e.code:
      raise
  mark("run")
  # Traced as `step` (steps.accumulating), `steps` (steps.scanned) and `eval_step`; lowered
  # and compiled as jit(step) and so on.
  name = lambda n: n.removeprefix("jit(").removesuffix(")")  # noqa: E731
  train = sum(d for n, d in compiles if name(n) in ("step", "steps"))
  evaluate = sum(d for n, d in compiles if name(n) == "eval_step")
  with open(out_path, "w") as f:
    json.dump({"marks": marks, "train": train, "eval": evaluate,
               "other": sum(d for _, d in compiles) - train - evaluate,
               "events": sorted(by_event, key=lambda e: -e[2])[:12]}, f)


def measure(tree: str, config: str, cache_dir: str, python: str) -> dict:
  """One fresh process's phases (seconds)."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "marks.json")
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2",
               JAXCNN_COMPILATION_CACHE=cache_dir)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    args = [python, os.path.abspath(__file__), "--child", out, "--", f"--config={config}",
            f"--workdir={os.path.join(tmp, 'run')}", "--config.num_train_steps=1"]
    start = time.time()
    env["STARTUP_T0"] = repr(start)
    p = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True)
    total = time.time() - start
    if p.returncode != 0:
      raise RuntimeError(f"the run failed ({p.returncode}):\n{p.stderr[-3000:]}")
    with open(out) as f:
      child = json.load(f)
  m = child["marks"]
  # The steps' compiles are taken out of the phase they fell in ("run"); the others stay
  # inside theirs (the model's init in "state") and are also shown as "other".
  phases = {"import": m["import"], "data": m["data"] - m["import"],
            "state": m["state"] - m["data"], "batch": m["batch"] - m["state"],
            "train": child["train"], "eval": child["eval"], "other": child["other"]}
  phases["run"] = m["run"] - m["batch"] - child["train"] - child["eval"]
  phases["exit"] = total - m["run"]
  phases["total"] = total
  said = next((line for line in p.stdout.splitlines() if line.startswith("Compilation:")), "")
  return {**{k: round(v, 2) for k, v in phases.items()}, "compilation_line": said,
          "slowest_compiles": child["events"][:4]}


def main() -> None:
  if len(sys.argv) > 2 and sys.argv[1] == "--child":
    _child(sys.argv[2], sys.argv[4:])
    return
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/lenet_fashion_mnist.py")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--tree", default=ROOT, help="the checkout to measure")
  parser.add_argument("--python", default=sys.executable)
  args = parser.parse_args()
  rows = {"cold": [], "warm": []}
  for _ in range(args.rounds):
    with tempfile.TemporaryDirectory() as cache:
      for kind in ("cold", "warm"):
        row = {"kind": kind, **measure(os.path.abspath(args.tree), args.config,
                                       os.path.join(cache, "jax"), args.python)}
        print(json.dumps(row), flush=True)
        rows[kind].append(row)
  print(f"\nmedians of {args.rounds} round(s), seconds ({args.tree}, {args.config}):")
  print("| run | " + " | ".join(PHASES) + " |")
  print("|---|" + "---|" * len(PHASES))
  for kind, found in rows.items():
    print(f"| {kind} | " + " | ".join(f"{statistics.median(r[p] for r in found):.1f}"
                                      for p in PHASES) + " |")


if __name__ == "__main__":
  main()
