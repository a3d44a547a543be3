"""jaxcnn.cpu.thread_pool: XLA's CPU thread pool is widened for several CPU devices, and XLA obeys."""
import os
import subprocess
import sys

import pytest

from jaxcnn.cpu import thread_pool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_device_count_comes_from_xla_flags_or_jax_num_cpu_devices():
  flag = "--xla_force_host_platform_device_count"
  assert thread_pool.cpu_device_count({}) == 1
  assert thread_pool.cpu_device_count({"XLA_FLAGS": f"--xla_cpu_ftz=true {flag}=8"}) == 8
  assert thread_pool.cpu_device_count({"XLA_FLAGS": f"{flag}=8 {flag}=2"}) == 2  # XLA: the last
  assert thread_pool.cpu_device_count({"JAX_NUM_CPU_DEVICES": "4"}) == 4
  assert thread_pool.cpu_device_count({"JAX_NUM_CPU_DEVICES": "many"}) == 1


def test_pool_is_widened_only_for_several_devices_and_never_over_the_user():
  one = {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
  assert thread_pool.widen_cpu_thread_pool(one) is None and "NPROC" not in one
  eight = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  assert thread_pool.widen_cpu_thread_pool(eight) == 64 and eight["NPROC"] == "64"
  users = {"JAX_NUM_CPU_DEVICES": "8", "NPROC": "12"}
  assert thread_pool.widen_cpu_thread_pool(users) is None and users["NPROC"] == "12"


# Counts XLA's CPU worker threads (named tf_XLAEigen) after a collective on 8 devices.
_POOL = """
import os
from jaxcnn.cpu.thread_pool import widen_cpu_thread_pool
widen_cpu_thread_pool()
import jax, jax.numpy as jnp
jax.pmap(lambda a: jax.lax.psum(a, "i"), "i")(jnp.ones((8, 2))).block_until_ready()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(names.count("tf_XLAEigen"))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in Linux's /proc")
def test_xla_sizes_its_pool_from_the_setting():
  env = {k: v for k, v in os.environ.items() if k != "NPROC"}
  env.update(PYTHONPATH=ROOT, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  threads = int(subprocess.run([sys.executable, "-c", _POOL], env=env, capture_output=True,
                               text=True, check=True).stdout)
  assert threads == 8 * thread_pool.THREADS_PER_DEVICE  # XLA's own choice would be 8
