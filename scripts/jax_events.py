"""Seconds JAX spends tracing, lowering and compiling, per test: a pytest plugin, and its summary.

    PYTHONPATH=scripts bash scripts/test.sh -p jax_events   # writes .pytest_cache/jax-events-*.json
    python scripts/jax_events.py                             # sums them per file, slowest tests

Each test's wall time with the sums of JAX's own duration events
(`jax.monitoring.register_event_duration_secs_listener`) while it ran, in its process: the
launch.py subprocesses that some tests start are not counted. docs/tests.md has figures.
"""
import collections
import glob
import json
import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, ".pytest_cache")
EVENTS = ("jaxpr_trace_duration", "jaxpr_to_mlir_module_duration", "backend_compile_duration")

_current = collections.Counter()
_started: dict[str, float] = {}
_rows = []
_active = [False]  # in the process that runs the tests (an xdist worker, or pytest alone)


def pytest_configure(config):
  if getattr(config, "workerinput", None) is None and config.getoption("numprocesses", None):
    return  # xdist's controller: its workers record
  _active[0] = True
  import jax  # noqa: PLC0415  (after tests/conftest.py has set the devices)
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, seconds, **_: _current.update({event.rsplit("/", 1)[-1]: seconds}))


def pytest_runtest_logstart(nodeid, location):
  del location
  _current.clear()
  _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid, location):
  del location
  if _active[0]:
    _rows.append({"test": nodeid, "wall": time.time() - _started.pop(nodeid),
                  **{e: _current[e] for e in EVENTS}})


def pytest_sessionfinish(session):
  del session
  if not _active[0]:
    return
  worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
  os.makedirs(OUT, exist_ok=True)
  with open(os.path.join(OUT, f"jax-events-{worker}.json"), "w") as f:
    json.dump(_rows, f)


def main():
  rows = []
  for path in glob.glob(os.path.join(OUT, "jax-events-*.json")):
    with open(path) as f:
      rows += json.load(f)
  if not rows:
    raise SystemExit(f"No {OUT}/jax-events-*.json: run the suite with the plugin first "
                     "(see this file's docstring).")
  columns = ("wall", *EVENTS)
  total = collections.Counter()
  per_file = collections.defaultdict(collections.Counter)
  for row in rows:
    for c in columns:
      total[c] += row[c]
      per_file[row["test"].split("::")[0]][c] += row[c]
  print("| file | wall | trace | lower | compile |\n|---|---|---|---|---|")
  for name, sums in sorted(per_file.items(), key=lambda kv: -kv[1]["wall"]):
    print(f"| {name} | " + " | ".join(f"{sums[c]:.0f}" for c in columns) + " |")
  print("| all | " + " | ".join(f"{total[c]:.0f}" for c in columns) + " |")
  print("\n| slowest 30 | wall | trace | lower | compile |\n|---|---|---|---|---|")
  for row in sorted(rows, key=lambda r: -r["wall"])[:30]:
    print(f"| {row['test']} | " + " | ".join(f"{row[c]:.1f}" for c in columns) + " |")


if __name__ == "__main__":
  main()
