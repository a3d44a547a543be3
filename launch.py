"""Runs one experiment: python launch.py --config=configs/NAME.py [--workdir=DIR] [--config.FIELD=VALUE].

Without --workdir the run's directory is runs/NAME (under the current directory).

Exit codes: 0 done; 2 a mistake in the command, config or data (one sentence on stderr);
75 preempted (SIGTERM/SIGINT; a checkpoint was written: rerun the same command);
1 training diverged (non-finite loss) or an unexpected error.
"""
import gc
import logging as std_logging
import os
import sys

from jaxcnn import cpu
from jaxcnn.errors import EXIT_USAGE, UserError

try:  # before JAX and TensorFlow start their threads; only where the platform is the CPU
  cpu.configure_process()
except ValueError as e:
  print(f"error: {e}", file=sys.stderr, flush=True)
  sys.exit(EXIT_USAGE)

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

# JAX and the training stack are imported after the flags are parsed: --help and mistakes in
# the command answer at once.

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: try again later

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and metrics; "
                                "default runs/NAME for --config=configs/NAME.py.")
_FRESH = flags.DEFINE_bool("fresh", False, "Move the workdir's checkpoints aside and start over.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"],
                          "train (resuming if possible), or eval: evaluate a checkpoint.")
_STEP = flags.DEFINE_string("step", "best", "--mode=eval: best, latest or a step number.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, for several processes (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (hosts).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0-based.")

# Environment variables that mean "one of several processes", for jax.distributed's own
# cluster detection (SLURM, Open MPI, Cloud TPU pods).
_CLUSTER_HINTS = {"SLURM_NTASKS": lambda v: int(v) > 1,
                  "OMPI_COMM_WORLD_SIZE": lambda v: int(v) > 1,
                  "TPU_WORKER_HOSTNAMES": lambda v: "," in v}


class _QuietCheckpointLogs(std_logging.Filter):
  """Orbax logs every step of every save at INFO; keep only its warnings and errors."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def _fail(message: str, code: int = EXIT_USAGE):
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(code)


def _parse_flags(argv):
  """absl's parser, with mistakes reported in one sentence and exit code 2."""
  try:
    rest = flags.FLAGS(argv)
  except AttributeError as e:  # ml_collections: an override of a field the config lacks
    key_error = e.args[0] if e.args and isinstance(e.args[0], KeyError) else e
    field, *hint = str(key_error.args[0] if key_error.args else key_error).splitlines()
    hint = f" ({hint[0][0].lower()}{hint[0][1:]})" if hint else ""
    _fail(f"unknown config field {field}{hint}; the fields are listed in configs/default.py")
  except (flags.Error, TypeError, ValueError) as e:
    _fail(f"{e}. See --help.".replace("..", "."))
  if _CONFIG.value is None:
    _fail("--config=configs/NAME.py is required")
  try:
    _CONFIG.value.get("model")  # config_flags defers a failed load to the first access
  except OSError as e:
    _fail(f"cannot load the config: {str(e).splitlines()[-1].strip()}")
  return rest


def _init_distributed():
  import jax
  explicit = _NUM_PROCESSES.value is not None and _NUM_PROCESSES.value > 1
  detected = any(k in os.environ and ok(os.environ[k]) for k, ok in _CLUSTER_HINTS.items())
  if explicit:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  elif detected or _COORDINATOR.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value)


def _workdir() -> str:
  if _WORKDIR.value:
    return _WORKDIR.value
  config_file = config_flags.get_config_filename(flags.FLAGS["config"])
  return os.path.join("runs", os.path.splitext(os.path.basename(config_file))[0])


def main(argv):
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.get_absl_handler().addFilter(_QuietCheckpointLogs())
  import jax
  from jaxcnn import compile_cache
  try:  # before anything compiles
    compile_cache.enable(_CONFIG.value.get("compilation_cache", ""))
  except UserError as e:
    _fail(str(e))
  _init_distributed()
  workdir = _workdir()
  if not _WORKDIR.value and jax.process_index() == 0:
    print(f"Workdir: {workdir} (no --workdir given).", flush=True)
  from jaxcnn.train import loop
  try:
    if _MODE.value == "eval":
      from jaxcnn import evaluate
      results = evaluate.evaluate_checkpoint(_CONFIG.value, workdir, _STEP.value)
      if jax.process_index() == 0:
        print(evaluate.format_results(results), flush=True)
    else:
      loop.train_and_evaluate(_CONFIG.value, workdir, fresh=_FRESH.value)
  except UserError as e:
    logging.flush()
    _fail(str(e))
  except loop.Preempted as e:
    logging.flush()
    _fail(str(e), EXIT_PREEMPTED)
  except loop.NonFiniteLoss as e:
    logging.flush()
    _fail(str(e), 1)
  # Everything is written and closed. The interpreter's final garbage collections would walk
  # every object JAX, XLA and the libraries made; frozen, they are skipped and it exits at once.
  gc.freeze()


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
