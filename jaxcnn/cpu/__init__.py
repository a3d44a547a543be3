"""What makes training fast on the CPU, apart from the models: jaxcnn's only native code.

The networks in jaxcnn.models are plain flax: their convolution, batch norm and 2x2 max-pool
are fields (`conv`, `norm`, `max_pool_2x2`) that default to flax's own. For a step that runs
on the CPU, the training layer replaces them once with this package's (`for_platform`):

- conv.py: oneDNN's convolutions (onednn.py, the binding onednn.cc, built on first use), or
  matrix-product formulations of the passes XLA's CPU backend runs slowly;
- batch_norm.py: oneDNN's batch norm;
- pooling.py: a 2x2 max-pool whose gradient XLA's CPU backend runs faster.

JAXCNN_CONV chooses: auto (oneDNN where the binding builds, else the matrix products),
onednn (oneDNN, or an error saying why not), matmul (the matrix products alone) or xla (none
of them: the plain model, to measure them or to rule them out). GPUs and TPUs always get the
plain model, and nothing of this package beyond this file is imported for them.

Process settings for a CPU host (thread_pool.py, host_memory.py) are applied by the entry
points before JAX starts (`configure_process`), only when the platform will be the CPU.
"""
import dataclasses
import importlib.metadata
import importlib.util
import os

from absl import logging

from jaxcnn.errors import UserError

CHOICES = ("auto", "onednn", "matmul", "xla")
# The model fields this package replaces.
FIELDS = ("conv", "norm", "max_pool_2x2")


def conv_choice(environ=os.environ) -> str:
  """JAXCNN_CONV, checked (UserError: a mistake in the environment)."""
  choice = environ.get("JAXCNN_CONV", "auto")
  if choice not in CHOICES:
    raise UserError(f"JAXCNN_CONV must be one of {', '.join(CHOICES)}, not {choice!r}.")
  return choice


_fallback_logged = False


def formulation(choice: str) -> str:
  """JAXCNN_CONV's auto, onednn or matmul -> the convolution's formulation (conv.py):
  onednn or matmul. Raises onednn.Unavailable, with the reason, for onednn where the binding
  cannot be built."""
  global _fallback_logged
  if choice == "matmul":
    return "matmul"
  from jaxcnn.cpu import onednn
  try:
    onednn.load()
    return "onednn"
  except onednn.Unavailable as reason:
    if choice == "onednn":
      raise
    if not _fallback_logged:
      logging.warning("oneDNN's kernels are unavailable (%s); using the matrix-product "
                      "formulations", reason)
      _fallback_logged = True
    return "matmul"


def layers_for(platform: str, *, partitioned: bool = False, choice: str | None = None) -> dict:
  """The modules for the fields in FIELDS of a step on `platform` ("cpu", "gpu", "tpu"):
  {} (flax's own) except on the CPU, and there for JAXCNN_CONV=xla.

  `partitioned`: the step is partitioned over several devices by GSPMD (jit over a Mesh
  with the batch sharded), which cannot partition a custom call: no oneDNN, and XLA's own
  kernel gradient (conv.py says why).
  """
  choice = choice or conv_choice()
  if choice not in CHOICES:
    raise ValueError(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
  if platform != "cpu" or choice == "xla":
    return {}
  from jaxcnn.cpu import batch_norm, conv, pooling
  chosen = formulation(choice)
  layers = {"conv": conv.module(chosen, partitioned), "max_pool_2x2": pooling.max_pool_2x2}
  if chosen == "onednn" and not partitioned:
    layers["norm"] = batch_norm.BatchNorm
  return layers


def for_platform(model, platform: str, *, partitioned: bool = False,
                 choice: str | None = None):
  """`model` with this package's layers (`layers_for`) in the fields still at their defaults;
  `model` itself on GPUs and TPUs, and for a network without such fields."""
  layers = layers_for(platform, partitioned=partitioned, choice=choice)
  if not layers:
    return model
  defaults = {f.name: f.default for f in dataclasses.fields(model)}
  updates = {name: module for name, module in layers.items()
             if name in defaults and getattr(model, name) is defaults[name]}
  return model.clone(**updates) if updates else model


# Packages that give JAX a GPU or TPU platform (their plugins register under "jax_plugins").
_ACCELERATOR_MODULES = ("libtpu", "jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin",
                        "jax_rocm7_plugin", "jax_plugins.xla_cuda12", "jax_plugins.xla_rocm60")


def platform_before_start(environ=os.environ, installed=None) -> str:
  """The platform JAX will run on, judged before it starts ("cpu" or "accelerator").

  Starting JAX to ask it would start the threads that the process settings must precede.
  JAX_PLATFORMS names it when set; otherwise a host with a GPU or TPU plugin of JAX installed
  counts as an accelerator host (JAX prefers its accelerator). `installed`, for tests: the
  names of the installed plugin modules and entry points.
  """
  platforms = environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return "cpu" if platforms.split(",")[0].strip() == "cpu" else "accelerator"
  if installed is None:
    installed = {entry.name for entry in importlib.metadata.entry_points(group="jax_plugins")}
    installed |= {name for name in _ACCELERATOR_MODULES if _importable(name)}
  return "accelerator" if installed else "cpu"


def _importable(name: str) -> bool:
  try:
    return importlib.util.find_spec(name) is not None
  except (ImportError, ValueError):
    return False


def configure_process(environ=os.environ, installed=None) -> list[str]:
  """On a CPU host, before JAX and TensorFlow start: XLA's thread pool wide enough for
  several CPU devices' collectives, and malloc keeping freed memory for the next step.
  Returns what it set ([] on an accelerator host). Raises ValueError for a bad
  JAXCNN_HOST_MEMORY."""
  if platform_before_start(environ, installed) != "cpu":
    return []
  from jaxcnn.cpu import host_memory, thread_pool
  applied = []
  if thread_pool.widen_cpu_thread_pool(environ):
    applied.append(f"NPROC={environ['NPROC']}")
  if host_memory.keep_freed_memory(environ):
    applied.append("malloc keeps freed memory")
  return applied
