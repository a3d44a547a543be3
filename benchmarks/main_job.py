"""The README's main job against seed 000's PyTorch loop: whole processes, side by side.

    python benchmarks/main_job.py --torch_python=/path/to/torch-venv/bin/python [--rounds=3]
    python benchmarks/main_job.py --torch_python=... --trees=.,/tmp/before   # and a checkout
    python benchmarks/main_job.py --torch_python=... --torch_threads=1

jaxcnn: `launch.py --config=configs/lenet_fashion_mnist.py` (LeNet-5, Fashion-MNIST, Adam
1e-3, batch 256, 5 epochs, each epoch evaluated and checkpointed) in a new workdir each time;
PyTorch: benchmarks/torch_lenet_fashion_mnist.py, the seed's loop on the same files (with
`--torch_threads`, that many intra-op threads). Each is timed from its start to its exit
(imports, data, compilation, training, evaluation, exit). Per checkout in `--trees`, a first
jaxcnn run, not counted, fills a new compilation cache, as a user's first run does; then
each round runs every checkout and PyTorch once, the order reversed from round to round, so
that a machine's drift falls on all. Prints one JSON line per process, then per checkout
the medians, the ratio of the medians and the median of the rounds' ratios (PyTorch's time
over jaxcnn's: above 1, jaxcnn is faster).
"""
import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_LOOP = os.path.join(ROOT, "benchmarks", "torch_lenet_fashion_mnist.py")
TEST_ACC = re.compile(r"^epoch (\d+),.*test acc ([0-9.]+)", re.M)


def timed(command: list[str], env: dict, cwd: str) -> dict:
  start = time.time()
  p = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
  seconds = time.time() - start
  if p.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
  epochs = TEST_ACC.findall(p.stdout)
  compilation = [line for line in p.stdout.splitlines() if line.startswith("Compilation:")]
  return {"seconds": round(seconds, 2), "epochs": len(epochs),
          "test_acc": float(epochs[-1][1]) if epochs else None,
          **({"compilation": compilation[0]} if compilation else {})}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--torch_python", required=True)
  parser.add_argument("--torch_threads", type=int, default=0, help="0: PyTorch's default")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--config", default="configs/lenet_fashion_mnist.py")
  parser.add_argument("--trees", default=ROOT, help="jaxcnn checkouts to run, comma-separated")
  args = parser.parse_args()
  trees = [os.path.abspath(t) for t in args.trees.split(",")]
  runs = itertools.count()
  with tempfile.TemporaryDirectory() as tmp:
    def jaxcnn(tree):
      def run():
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=tree,
                   JAXCNN_COMPILATION_CACHE=os.path.join(tmp, f"jax{trees.index(tree)}"))
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        return timed([sys.executable, "launch.py", f"--config={args.config}",
                      f"--workdir={os.path.join(tmp, f'run{next(runs)}')}"], env, tree)
      return run

    def pytorch():
      return timed([args.torch_python, TORCH_LOOP, f"--threads={args.torch_threads}"],
                   dict(os.environ), tmp)

    for tree in trees:
      print(json.dumps({"which": tree, "first run (not counted)": jaxcnn(tree)()}), flush=True)
    contestants = [(tree, jaxcnn(tree)) for tree in trees] + [("pytorch", pytorch)]
    times = {name: [] for name, _ in contestants}
    for round_ in range(args.rounds):
      for name, run in (contestants if round_ % 2 == 0 else contestants[::-1]):
        row = run()
        times[name].append(row["seconds"])
        print(json.dumps({"which": name, "round": round_ + 1, **row}), flush=True)
  torch_median = statistics.median(times["pytorch"])
  for tree in trees:
    ratios = [t / j for j, t in zip(times[tree], times["pytorch"])]
    median = statistics.median(times[tree])
    print(json.dumps({"jaxcnn": tree, "median_seconds": median,
                      "pytorch_median_seconds": torch_median,
                      "pytorch_over_jaxcnn": round(torch_median / median, 3),
                      "median_of_round_ratios": round(statistics.median(ratios), 3),
                      "round_ratios": [round(r, 3) for r in ratios]}), flush=True)


if __name__ == "__main__":
  main()
