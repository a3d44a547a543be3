"""Seconds XLA takes to compile N `jax.random.normal` calls in one program, as a network's
initialisation holds one per weight array.

    python benchmarks/init_compile.py [--calls=50,100,200] [--optimized]
    XLA_FLAGS=--xla_cpu_use_fusion_emitters=false python benchmarks/init_compile.py

With the suite's XLA settings (tests/conftest.py: most optimisations off; `--optimized`
turns them on) and an empty compilation cache. Each call draws a differently shaped 3x3
kernel from its own key, so that no two are the same computation. Prints, per N, the
seconds of tracing and lowering, of XLA's compile, and a checksum of the values (equal
checksums: the same numbers). docs/tests.md has figures.
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--calls", default="50,100,200", help="comma-separated call counts")
  parser.add_argument("--optimized", action="store_true", help="XLA's default optimisation")
  args = parser.parse_args()
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp()
  sys.path.insert(0, ROOT)
  import tests.conftest  # noqa: F401,PLC0415  (the suite's flags and devices)
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415

  jax.config.update("jax_disable_most_optimizations", not args.optimized)
  for n in (int(c) for c in args.calls.split(",")):
    def draw(key, n=n):
      return [jax.random.normal(jax.random.fold_in(key, i), (3, 3, 64, 64 + i)) for i in range(n)]

    start = time.perf_counter()
    lowered = jax.jit(draw).lower(jax.random.PRNGKey(0))
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    checksum = float(sum(jnp.sum(x) for x in compiled(jax.random.PRNGKey(0))))
    print(f"{n} calls: trace and lower {traced - start:.1f} s, compile {done - traced:.1f} s, "
          f"checksum {checksum:.4f}")


if __name__ == "__main__":
  main()
