"""oneDNN's convolution and batch-norm passes on the CPU, through XLA's FFI (onednn.cc).

The binding is compiled on first use with the system's C++ compiler against the oneDNN of
the `onednn-cpu-gomp` / `onednn-devel-cpu-gomp` packages (project dependencies on x86-64
Linux) and jaxlib's FFI headers, and kept in a cache directory keyed by everything it was
built from (JAXCNN_NATIVE_CACHE, else $XDG_CACHE_HOME/jaxcnn, else ~/.cache/jaxcnn): about
5 s once per machine and version (JAXCNN_ONEDNN_CXXFLAGS adds compiler flags). `load()`
raises `Unavailable`, with the reason, where it cannot be built (no compiler, no oneDNN,
another platform); jaxcnn.cpu.conv then keeps its matrix-product formulations.

Three passes of a dense NHWC x HWIO float32 convolution with explicit padding:
`forward(x, kernel)`, `input_gradient(g, kernel, x_shape)` and `kernel_gradient(x, g,
kernel_shape)`; and batch norm over an NHWC float32 batch with the batch's statistics:
`batch_norm(x, scale, shift, epsilon)` -> (y, mean, biased variance) and
`batch_norm_gradients(x, dy, mean, var, scale, epsilon)` -> (dx, dscale, dshift). Each is
one XLA custom call.
"""
import ctypes
import hashlib
import importlib.metadata
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading

import jax
import numpy as np

_SOURCE = pathlib.Path(__file__).with_name("onednn.cc")
_LIBRARY_PACKAGE = "onednn-cpu-gomp"
_HEADERS_PACKAGE = "onednn-devel-cpu-gomp"
# FFI target name -> handler symbol in onednn.cc.
CONV_TARGETS = {
    "jaxcnn_onednn_conv_forward": "JaxcnnOnednnConvForward",
    "jaxcnn_onednn_conv_input_gradient": "JaxcnnOnednnConvInputGradient",
    "jaxcnn_onednn_conv_kernel_gradient": "JaxcnnOnednnConvKernelGradient",
}
BATCH_NORM_TARGETS = {
    "jaxcnn_onednn_batch_norm_forward": "JaxcnnOnednnBatchNormForward",
    "jaxcnn_onednn_batch_norm_backward": "JaxcnnOnednnBatchNormBackward",
}
_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC")


class Unavailable(RuntimeError):
  """oneDNN's convolutions cannot be used here; the message says why."""


_lock = threading.Lock()
_loaded: ctypes.CDLL | None = None
_failure: Unavailable | None = None


def _package_file(package: str, suffix: str) -> pathlib.Path:
  try:
    files = importlib.metadata.files(package) or []
  except importlib.metadata.PackageNotFoundError:
    raise Unavailable(f"the {package} package is not installed") from None
  for file in files:  # recorded relative to site-packages: ../../libdnnl.so.3
    path = pathlib.Path(file.locate()).resolve()
    if path.as_posix().endswith(suffix):
      return path
  raise Unavailable(f"the {package} package has no {suffix}")


def _cache_dir() -> pathlib.Path:
  if os.environ.get("JAXCNN_NATIVE_CACHE"):
    return pathlib.Path(os.environ["JAXCNN_NATIVE_CACHE"])
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return pathlib.Path(base) / "jaxcnn"


def _build() -> pathlib.Path:
  """The compiled binding, built now unless the cache has it."""
  if sys.platform != "linux" or platform.machine() != "x86_64":
    raise Unavailable(f"the oneDNN packages are for x86-64 Linux, not {sys.platform} "
                      f"{platform.machine()}")
  library = _package_file(_LIBRARY_PACKAGE, "lib/libdnnl.so.3")
  header = _package_file(_HEADERS_PACKAGE, "include/oneapi/dnnl/dnnl.hpp")
  include = header.parents[2]
  compiler = shutil.which(os.environ.get("CXX", "c++"))
  if compiler is None:
    raise Unavailable("no C++ compiler (c++, or $CXX) to build the oneDNN binding")
  # JAXCNN_ONEDNN_CXXFLAGS adds compiler flags (scripts/onednn_asan.sh: AddressSanitizer);
  # they are part of the cache key, so such a build never replaces the ordinary one.
  extra = os.environ.get("JAXCNN_ONEDNN_CXXFLAGS", "").split()
  command = [compiler, *_FLAGS, *extra, str(_SOURCE), "-I", jax.ffi.include_dir(),
             "-I", str(include), str(library), f"-Wl,-rpath,{library.parent}"]
  key = hashlib.sha256("\0".join(
      [_SOURCE.read_text(), jax.__version__, importlib.metadata.version("jaxlib"),
       importlib.metadata.version(_LIBRARY_PACKAGE), *command]).encode()).hexdigest()[:16]
  cache = _cache_dir()
  built = cache / f"onednn-{key}.so"
  if built.exists():
    return built
  cache.mkdir(parents=True, exist_ok=True)
  # Built under a temporary name and renamed: other processes (test workers) may build it too.
  handle, partial = tempfile.mkstemp(dir=cache, prefix=built.name, suffix=".partial")
  os.close(handle)
  try:
    result = subprocess.run([*command, "-o", partial], capture_output=True, text=True)
    if result.returncode != 0:
      raise Unavailable(f"building the oneDNN binding failed ({' '.join(command)}):\n"
                        f"{result.stderr[-2000:]}")
    os.replace(partial, built)
  finally:
    if os.path.exists(partial):
      os.remove(partial)
  return built


def load() -> ctypes.CDLL:
  """Builds (once) and loads the binding and registers its FFI targets; raises Unavailable."""
  global _loaded, _failure
  with _lock:
    if _loaded is not None:
      return _loaded
    if _failure is not None:
      raise _failure
    try:
      library = ctypes.CDLL(str(_build()))
    except (Unavailable, OSError) as error:
      _failure = error if isinstance(error, Unavailable) else Unavailable(str(error))
      raise _failure from None
    for target, symbol in {**CONV_TARGETS, **BATCH_NORM_TARGETS}.items():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)),
                                  platform="cpu")
    _loaded = library
    return library


def available() -> bool:
  try:
    load()
  except Unavailable:
    return False
  return True


def _attributes(strides, padding):
  (top, bottom), (left, right) = padding
  return dict(strides=np.asarray(strides, np.int64),
              padding=np.asarray([top, bottom, left, right], np.int64))


def output_shape(x_shape, kernel_shape, strides, padding):
  n, h, w, _ = x_shape
  kh, kw, _, out = kernel_shape
  (top, bottom), (left, right) = padding
  return (n, (h + top + bottom - kh) // strides[0] + 1, (w + left + right - kw) // strides[1] + 1,
          out)


# The envelope of the convolutions tests/onednn_isa_sweep.py checks at every ISA level (every
# registered network's): kernel sides up to 11 (AlexNet's stem), strides up to 4 and no
# larger than the kernel (a 1x1 kernel: up to 2), each padding edge at most (side - 1) // 2,
# up to 4096 channels. A layer outside it takes XLA's convolution (jaxcnn.cpu.conv).
MAX_KERNEL_SIDE, MAX_STRIDE, MAX_CHANNELS = 11, 4, 4096


def verified(kernel_shape, strides, padding) -> bool:
  """Whether a convolution lies within the configurations the binding is verified for."""
  kh, kw, cin, cout = kernel_shape
  for side, stride, edges in zip((kh, kw), strides, padding):
    if not (1 <= side <= MAX_KERNEL_SIDE and 1 <= stride <= min(MAX_STRIDE, max(side, 2))
            and all(0 <= edge <= (side - 1) // 2 for edge in edges)):
      return False
  return 1 <= cin <= MAX_CHANNELS and 1 <= cout <= MAX_CHANNELS


def forward(x, kernel, strides, padding):
  load()
  out = jax.ShapeDtypeStruct(output_shape(x.shape, kernel.shape, strides, padding), x.dtype)
  return jax.ffi.ffi_call("jaxcnn_onednn_conv_forward", out)(
      x, kernel, **_attributes(strides, padding))


def input_gradient(g, kernel, x_shape, strides, padding):
  load()
  out = jax.ShapeDtypeStruct(tuple(x_shape), g.dtype)
  return jax.ffi.ffi_call("jaxcnn_onednn_conv_input_gradient", out)(
      g, kernel, **_attributes(strides, padding))


def kernel_gradient(x, g, kernel_shape, strides, padding):
  load()
  out = jax.ShapeDtypeStruct(tuple(kernel_shape), x.dtype)
  return jax.ffi.ffi_call("jaxcnn_onednn_conv_kernel_gradient", out)(
      x, g, **_attributes(strides, padding))


def batch_norm(x, scale, shift, epsilon):
  load()
  channels = jax.ShapeDtypeStruct(scale.shape, x.dtype)
  return jax.ffi.ffi_call("jaxcnn_onednn_batch_norm_forward",
                          (jax.ShapeDtypeStruct(x.shape, x.dtype), channels, channels))(
      x, scale, shift, epsilon=np.float32(epsilon))


def batch_norm_gradients(x, dy, mean, var, scale, epsilon):
  load()
  channels = jax.ShapeDtypeStruct(scale.shape, x.dtype)
  return jax.ffi.ffi_call("jaxcnn_onednn_batch_norm_backward",
                          (jax.ShapeDtypeStruct(x.shape, x.dtype), channels, channels))(
      x, dy, mean, var, scale, epsilon=np.float32(epsilon))
