"""jaxcnn.cpu.host_memory: with it, a large block freed by a worker thread is reused without page faults."""
import os
import subprocess
import sys

import pytest

from jaxcnn.cpu import host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A worker thread allocates, touches and frees 256 MiB five times (as XLA's threads do with a
# step's temporary buffers); prints the page faults of the last four rounds.
_ROUNDS = """
import resource, sys, threading
import numpy as np
from jaxcnn.cpu.host_memory import keep_freed_memory
print(keep_freed_memory())
faults = []
def rounds():
  for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(64 * 2**20, np.float32)
    del block
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
thread = threading.Thread(target=rounds)
thread.start()
thread.join()
print(sum(faults[1:]))
"""


def _run_rounds(setting):
  env = {**os.environ, "JAXCNN_HOST_MEMORY": setting, "PYTHONPATH": ROOT}
  out = subprocess.run([sys.executable, "-c", _ROUNDS], env=env, capture_output=True, text=True,
                       check=True).stdout.split()
  return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_memory_is_reused_without_page_faults():
  applied, kept_faults = _run_rounds("keep")
  not_applied, released_faults = _run_rounds("release")
  assert applied and not not_applied
  # Four rounds of 256 MiB, in pages of at most 2 MiB (numpy asks for transparent huge pages).
  pages = 4 * 256 // 2
  assert released_faults > pages // 2  # glibc's default: mmap, unmap, fault in again
  assert kept_faults < pages // 20


def test_a_wrong_setting_is_one_sentence_and_exit_code_2():
  env = {**os.environ, "JAXCNN_HOST_MEMORY": "sometimes"}
  result = subprocess.run([sys.executable, os.path.join(ROOT, "launch.py"), "--help"], env=env,
                          capture_output=True, text=True, cwd=ROOT)
  assert result.returncode == 2
  assert result.stderr.strip() == (
      "error: JAXCNN_HOST_MEMORY must be 'keep' or 'release', not 'sometimes'")


def test_release_leaves_malloc_alone(monkeypatch):
  monkeypatch.setenv("JAXCNN_HOST_MEMORY", "release")
  assert host_memory.keep_freed_memory() is False
