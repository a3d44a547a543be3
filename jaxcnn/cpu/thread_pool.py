"""Enough XLA:CPU threads for collectives across several CPU devices, or the step deadlocks.

XLA's CPU client runs the programs of all its devices on one shared pool of
max(cores, devices) threads. An all-reduce blocks its thread until every device of its group
has arrived, and one device's program may wait in two collectives at once (independent ones,
run concurrently: seen here with a pair-wise and an all-device all-reduce). With as many
threads as devices the pool can fill with waiting threads while another device still has
to reach the collective: the step never finishes (XLA aborts it after 40 s by default). The
tests hit this with 8 virtual devices on 2 cores (CI's workers aborted; here
tests/test_configs.py aborted within 3 minutes, and passed once the pool was widened).

XLA sizes that pool from the NPROC environment variable when it is set (xla/util.cc,
DefaultThreadPoolSize; no JAX or XLA option sets it), read once when the CPU client starts,
so entry points call `widen_cpu_thread_pool` before JAX starts. A single CPU device has no
collectives and keeps XLA's default; an NPROC set by the user is left alone.
"""
import os
import re

# Threads per CPU device: room for several collectives in flight in each device's program.
THREADS_PER_DEVICE = 8

_FORCED_DEVICES = re.compile(r"--xla_force_host_platform_device_count=(\d+)")


def cpu_device_count(environ=os.environ) -> int:
  """CPU devices the environment asks JAX for (XLA_FLAGS or JAX_NUM_CPU_DEVICES), else 1."""
  counts = [int(n) for n in _FORCED_DEVICES.findall(environ.get("XLA_FLAGS", ""))]
  if counts:
    return counts[-1]  # XLA takes the last occurrence of a flag
  value = environ.get("JAX_NUM_CPU_DEVICES", "")
  return int(value) if value.isdigit() else 1


def widen_cpu_thread_pool(environ=os.environ):
  """Sets NPROC for several CPU devices; returns the new pool size, or None if unchanged."""
  devices = cpu_device_count(environ)
  if devices <= 1 or "NPROC" in environ:
    return None
  threads = max(os.cpu_count() or 1, THREADS_PER_DEVICE * devices)
  environ["NPROC"] = str(threads)
  return threads
