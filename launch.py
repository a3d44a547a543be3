"""Runs one experiment: python launch.py --config=configs/NAME.py --workdir=DIR [--config.FIELD=VALUE]."""
import logging as std_logging
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxcnn.errors import EXIT_USAGE, UserError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and metrics.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietCheckpointLogs(std_logging.Filter):
  """Orbax logs every step of every save at INFO; keep only its warnings and errors."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}.")
  logging.get_absl_handler().addFilter(_QuietCheckpointLogs())
  from jaxcnn.train import loop  # after flag parsing: jax and tf are slow to import
  try:
    loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    logging.flush()
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


if __name__ == "__main__":
  app.run(main)
