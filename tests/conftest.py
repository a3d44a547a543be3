"""Test configuration: 8 virtual CPU devices, set before JAX is imported anywhere."""
import contextlib
import functools
import os
import sys

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_cpu_collective_call_terminate_timeout_seconds" not in _flags:
  # XLA:CPU aborts the whole process ("Termination timeout ... exceeded", then SIGABRT) when
  # one of the 8 virtual devices reaches a collective more than 40 s after the first, which a
  # device thread waiting for one of 2 loaded cores can (jaxcnn/cpu/thread_pool.py has the
  # deadlock that made CI's xdist workers abort this way). A real deadlock still ends, after
  # 20 minutes.
  _flags += (" --xla_cpu_collective_call_warn_stuck_timeout_seconds=300"
             " --xla_cpu_collective_call_terminate_timeout_seconds=1200")
os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _ROOT)

# JAX's persistent compilation cache, shared by both xdist workers and the launch.py
# subprocesses (they inherit the environment): many tests compile a program another test or
# run compiled before (each kill-and-resume test starts launch.py 3-4 times on one config;
# LeNet's run takes 20 s cold and 13 s warm here). Keyed by the program, the XLA flags and
# the versions, so a hit is the same executable; capped at 2 GiB, least recently used first
# out. In .pytest_cache: a clean clone (CI) starts empty.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(_ROOT, ".pytest_cache", "jax-compilation-cache"))
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 2**30))

import jax  # noqa: E402

from jaxcnn.cpu.thread_pool import widen_cpu_thread_pool  # noqa: E402

# The tests compile hundreds of programs and run most on a few tiny batches; LLVM's
# optimisation of the CPU machine code is much of the suite's time on 2 cores, so it is
# off for them (JAX's switch: XLA's backend optimisation level 0 and no expensive LLVM
# passes; XLA's HLO passes run either way). It halves ResNet-18's step compile. The tests
# that train many real steps turn it back on (`optimized_compiles`): unoptimised, the
# convolutions' CPU formulations (jaxcnn/cpu/conv.py: slices, stacks and a scan, emitted
# by XLA as its own loops) train LeNet on 8 devices 3x slower (348 vs 108 ms a step). The
# launch.py subprocesses (tests/launcher.py) do not inherit it.
jax.config.update("jax_disable_most_optimizations", True)


@contextlib.contextmanager
def optimized_compiles():
  """XLA's default optimisation for what compiles inside: for tests that run many steps."""
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", True)


@contextlib.contextmanager
def on_devices(count: int):
  """Training loops run inside build their parallel path (`parallel.create`) over the first
  `count` of the suite's 8 devices.

  One device runs the CPU's oneDNN kernels (jaxcnn.cpu), whose custom calls XLA compiles and
  runs several times faster than the partitioned formulation that several devices under jit
  need. The tests whose subject is not the parallel paths (those are tested on 8 devices in
  test_parallel.py and test_multihost.py) train on one, as a CPU user's run does.
  """
  from jaxcnn.train import parallel  # noqa: PLC0415
  create = parallel.create
  parallel.create = functools.partial(create, devices=jax.devices()[:count])
  try:
    yield
  finally:
    parallel.create = create


widen_cpu_thread_pool()  # 8 devices' collectives on 2 cores deadlock without it
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import faulthandler  # noqa: E402

import pytest  # noqa: E402

from jaxcnn.data import sources  # noqa: E402

needs_fashion_mnist = pytest.mark.skipif(
    not os.path.exists(os.path.join(sources.DEBIAN_FASHION_MNIST, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST files missing: apt-get install -y dataset-fashion-mnist")


@pytest.fixture
def one_device():
  """`on_devices(1)` for the test."""
  with on_devices(1):
    yield


@pytest.fixture(scope="session")
def fashion_mnist_test():
  return sources.load("fashion_mnist", "test", download=False)


def pytest_configure(config):
  config.addinivalue_line(
      "markers", "slow: minutes of compilation on a 2-core CPU; run with JAXCNN_SLOW_TESTS=1 "
      "(scripts/test.sh runs them too when it is set)")


# Tests that pytest-xdist schedules one by one rather than with the rest of their file: long
# and independent (each recipe's training run), so that no single file holds the suite's wall
# time. The scheduler sees only node ids, hence names rather than a marker.
SCHEDULED_ALONE = ("tests/test_configs.py::test_recipe_trains_two_steps_and_evaluates",)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
  """`--dist loadfile` (scripts/test.sh), except for the SCHEDULED_ALONE tests. xdist's queue
  puts the files with the most tests first, and the single tests last, where they fill in."""
  if config.getoption("dist") != "loadfile":
    return None
  from xdist.scheduler import LoadFileScheduling  # noqa: PLC0415  (only under xdist)

  class FileOrAloneScheduling(LoadFileScheduling):
    def _split_scope(self, nodeid):
      return nodeid if nodeid.split("[")[0] in SCHEDULED_ALONE else super()._split_scope(nodeid)

  return FileOrAloneScheduling(config, log)


def pytest_collection_modifyitems(config, items):
  # CI's suite must stay under 15 minutes on 2 cores: the slow tests (same code as a
  # faster test, at another depth or size) run only when asked for.
  if os.environ.get("JAXCNN_SLOW_TESTS") == "1":
    return
  skip = pytest.mark.skip(reason="slow; set JAXCNN_SLOW_TESTS=1 to run")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)


# pytest-timeout (pyproject.toml) fails a test after its limit with a signal, which Python
# sees only between bytecodes: a test stuck in native code (an XLA collective, a lock in a
# custom call) would never see it. faulthandler's watchdog is a C thread: past this limit
# it prints every thread's stack and ends the worker, and the run fails naming the test
# (scripts/test.sh: --max-worker-restart=0).
HARD_LIMIT_SECONDS = 900


@pytest.fixture(autouse=True)
def _hard_time_limit():
  faulthandler.dump_traceback_later(HARD_LIMIT_SECONDS, exit=True)
  yield
  faulthandler.cancel_dump_traceback_later()
