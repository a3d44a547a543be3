"""Seconds XLA spends compiling each program of a recipe's two-step test run.

    python benchmarks/recipe_compile.py resnet152_imagenet [--optimized]

Runs what tests/test_configs.py runs for the recipe (its config reduced to synthetic data,
batch 2 and two steps, on one device) with the suite's XLA settings (tests/conftest.py:
most optimisations off; `--optimized` turns them on) and an empty compilation cache. Prints
XLA's compile time for each program that takes more than 0.5 s (the network's
initialisation is `jit_create`, the train step `jit_step`), their sum, and the run's wall
time; the rest is tracing, running, the checkpoint and imports. docs/tests.md has figures.
"""
import argparse
import importlib
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("recipe", help="a config name, e.g. resnet152_imagenet")
  parser.add_argument("--optimized", action="store_true", help="XLA's default optimisation")
  args = parser.parse_args()
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp()
  sys.path.insert(0, ROOT)
  from tests import conftest  # noqa: PLC0415  (the suite's flags and devices)
  import jax  # noqa: PLC0415
  from jax._src import compiler  # noqa: PLC0415  (no public hook times XLA's compile)

  from jaxcnn.train import loop  # noqa: PLC0415
  from tests import test_configs  # noqa: PLC0415

  jax.config.update("jax_disable_most_optimizations", not args.optimized)
  seconds = []
  backend_compile = compiler.backend_compile_and_load

  def timed(backend, module, *a, **kw):
    start = time.perf_counter()
    result = backend_compile(backend, module, *a, **kw)
    name = str(module.operation.attributes["sym_name"]).strip('"')
    seconds.append((time.perf_counter() - start, name))
    return result

  compiler.backend_compile_and_load = timed
  config = test_configs._reduced(importlib.import_module(f"configs.{args.recipe}").get_config())
  start = time.perf_counter()
  with conftest.on_devices(test_configs.RECIPE_DEVICES):
    loop.train_and_evaluate(config, tempfile.mkdtemp())
  wall = time.perf_counter() - start
  for s, name in seconds:
    if s > 0.5:
      print(f"compile {name}: {s:.1f} s")
  print(f"compiles: {sum(s for s, _ in seconds):.1f} s over {len(seconds)} programs; "
        f"the run: {wall:.1f} s")


if __name__ == "__main__":
  main()
