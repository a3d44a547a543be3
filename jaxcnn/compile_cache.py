"""JAX's persistent compilation cache: a run's compiled programs are reused by the next run.

Where (`directory`): `--config.compilation_cache=DIR`, else $JAXCNN_COMPILATION_CACHE, else
JAX's own $JAX_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/jaxcnn/jax (~/.cache/jaxcnn/jax);
"off" in the config field or the variable disables it. At most
$JAX_COMPILATION_CACHE_MAX_SIZE bytes (default `MAX_BYTES`), the least recently used entries
evicted first. Every program is kept, however quickly it compiled: small ones add up, and a
run of a small network compiles several.

A cached executable is what XLA would compile again: JAX keys it by the program, the XLA
flags, the jax/jaxlib versions and the devices; `enable` adds the host CPU's model and
instruction-set flags, since XLA's CPU code is compiled for the host and a cache directory
may be shared between machines (a network home). Programs with oneDNN's custom calls
(jaxcnn/cpu/onednn.py) name their FFI targets; a process registers them while tracing, which
always comes before JAX looks the program up, so a cached executable finds them.

`Tally` counts this process's compilations (JAX's monitoring events): how many programs were
requested, how many came from the cache, and the seconds spent tracing, lowering and
compiling (or loading) them.
"""
import dataclasses
import functools
import hashlib
import importlib.util
import os
import platform

from jaxcnn.errors import UserError

ENV = "JAXCNN_COMPILATION_CACHE"
OFF = "off"
MAX_BYTES = 2 * 2**30


def default_directory() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "jaxcnn", "jax")


def directory(setting: str = "") -> str | None:
  """The cache directory for a config's `compilation_cache` field, or None when it is off."""
  for value in (setting, os.environ.get(ENV, ""), os.environ.get("JAX_COMPILATION_CACHE_DIR", "")):
    if value:
      return None if value.strip().lower() == OFF else os.path.expanduser(value)
  return default_directory()


# /proc/cpuinfo's lines that say what code the CPU runs (x86: model and flags; Arm: the rest).
_CPU_FIELDS = ("model name", "flags", "Features", "CPU implementer", "CPU part")


@functools.cache
def host_fingerprint() -> str:
  """A hash of the host CPU's model and instruction-set flags (what XLA's CPU code targets)."""
  fields = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = (part.strip() for part in line.partition(":"))
        if key in _CPU_FIELDS:
          fields.setdefault(key, " ".join(value.split()))
  except OSError:  # not Linux: what the platform module knows
    fields = {"processor": platform.processor()}
  text = "\n".join([platform.machine(), *(f"{k}: {v}" for k, v in sorted(fields.items()))])
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def enable(setting: str = "") -> str | None:
  """Turns the cache on (before anything compiles) and returns its directory; None when off.

  Raises UserError when the directory cannot be created.
  """
  import jax
  from jax._src import cache_key
  path = directory(setting)
  _tally.start()
  if path is None:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise UserError(f"Cannot create the compilation cache directory {path} ({e.strerror}): "
                    f"give another with --config.compilation_cache=DIR (or ${ENV}=DIR), or "
                    f"turn it off with --config.compilation_cache={OFF}.") from None
  jax.config.update("jax_enable_compilation_cache", True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  if "JAX_COMPILATION_CACHE_MAX_SIZE" not in os.environ and importlib.util.find_spec("filelock"):
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # JAX's eviction needs filelock
  if hasattr(cache_key, "custom_hook"):  # JAX's hook for what else a key depends on
    cache_key.custom_hook = host_fingerprint
  return path


@dataclasses.dataclass
class Tally:
  """This process's compilations so far (JAX's monitoring events, counted once listening)."""
  requests: int = 0  # programs looked up in the persistent cache
  hits: int = 0  # of which loaded from it
  seconds: float = 0.0  # tracing, lowering and XLA's compile or the cache's load
  listening: bool = False

  def start(self) -> None:
    if self.listening:
      return
    from jax import monitoring
    monitoring.register_event_listener(self._event)
    monitoring.register_event_duration_secs_listener(self._duration)
    self.listening = True

  def _event(self, event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/compile_requests_use_cache":
      self.requests += 1
    elif event == "/jax/compilation_cache/cache_hits":
      self.hits += 1

  def _duration(self, event: str, duration: float, **kwargs) -> None:
    if event.startswith("/jax/core/compile/"):
      self.seconds += duration

  def snapshot(self) -> "Tally":
    return dataclasses.replace(self)


_tally = Tally()


def tally() -> Tally:
  """The counts so far (a copy); all zero until `enable` (or `listen`) started counting."""
  return _tally.snapshot()


def listen() -> None:
  """Counts compilations from now on without changing the cache's settings (tests, benchmarks)."""
  _tally.start()


def active_directory() -> str | None:
  """The directory JAX's cache uses in this process (however it was set), or None."""
  import jax
  if not jax.config.jax_enable_compilation_cache:
    return None
  return jax.config.jax_compilation_cache_dir or None


def describe(since: Tally, now: Tally) -> str:
  """One line: how long compilation took from `since` to `now`, and what came from the cache."""
  seconds = now.seconds - since.seconds
  requests, hits = now.requests - since.requests, now.hits - since.hits
  path = active_directory()
  if path is None:
    return f"Compilation: {seconds:.1f} s (no compilation cache)."
  if not requests:
    return f"Compilation: {seconds:.1f} s (nothing new to compile in this process)."
  compiled = requests - hits
  if not compiled:
    return (f"Compilation: {seconds:.1f} s, all {hits} programs from the compilation cache "
            f"({path}).")
  if not hits:
    return (f"Compilation: {seconds:.1f} s, {compiled} programs compiled and saved to the "
            f"compilation cache ({path}): a rerun loads them.")
  return (f"Compilation: {seconds:.1f} s, {hits} of {requests} programs from the compilation "
          f"cache ({path}), {compiled} compiled and saved to it.")
