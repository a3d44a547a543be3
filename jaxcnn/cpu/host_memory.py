"""Keep freed host memory for the next training step instead of handing it back to the kernel.

XLA's CPU runtime allocates each step's temporary buffers from its worker threads, with
glibc's malloc: 314 MiB in one piece per ResNet-20 step at batch 128. glibc serves a block
that large with a fresh mmap (a worker thread's arena cannot hold more than 64 MiB, and
blocks above the mmap threshold go to mmap anyway) and unmaps it at free, so every step
page-faults its whole working set in again: about 80,000 page faults per ResNet-20 step here.
With one arena, no mmap and no trimming, a step reuses the pages of the step before.

This is glibc's own mallopt (no library offers it; jemalloc or tcmalloc through LD_PRELOAD
would do the same from outside the process). It only affects allocations made after the
call, so entry points call it first, before JAX or TensorFlow start threads, on a host
whose platform is the CPU (jaxcnn.cpu.configure_process).
JAXCNN_HOST_MEMORY=release leaves malloc as it is.
"""
import ctypes
import ctypes.util
import os

# mallopt parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: trim only above 2 GiB of free heap top


def keep_freed_memory(environ=os.environ) -> bool:
  """Sets glibc's malloc to reuse freed memory; True if it did (Linux with glibc only)."""
  choice = environ.get("JAXCNN_HOST_MEMORY", "keep")
  if choice not in ("keep", "release"):
    raise ValueError(f"JAXCNN_HOST_MEMORY must be 'keep' or 'release', not {choice!r}")
  if choice == "release":
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError unless this is glibc
  except (OSError, AttributeError):
    return False
  # mallopt returns 1 on success; all three or the setting means nothing.
  return all(libc.mallopt(parameter, value) == 1 for parameter, value in
             ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM)))
