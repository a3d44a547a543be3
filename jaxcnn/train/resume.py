"""Whether a config may resume the checkpoints that another config (or an earlier launch) wrote.

Every checkpoint's record holds the config that wrote it. A rerun may change how long it
trains, how often it logs and saves, how it evaluates and where it reads its data; a change
to anything else (the model and its options, the data and its preprocessing, the optimizer,
the schedule, EMA, clipping, precision, the batch size, the seed...) would continue a
different experiment from the checkpoint, or fail to restore it, so it is refused before
anything is read or written.
"""
import json
import os
from typing import Any, Iterator

import ml_collections

from jaxcnn.errors import UserError

MAY_CHANGE = frozenset({
    "num_epochs", "num_train_steps",  # train longer (or stop sooner)
    "log_every_steps", "progress_every_secs", "profile_steps", "profile_first_step",
    "checkpoint_every_epochs", "checkpoint_every_steps", "keep_checkpoints",
    "eval_batch_size",
    "steps_per_dispatch",  # the same steps, grouped into fewer calls
    "data_dir", "download", "cache_decoded_mb",  # where the same data is read from
    "skip_nonfinite_steps",  # what a diverged run's error message suggests
    "init_from", "init_from_layers",  # read only by a run's first start
    "compilation_cache",  # where compiled programs are kept
})


class _Unset:
  def __repr__(self):
    return "unset"


UNSET = _Unset()


def as_plain(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as JSON values (tuples as lists), as a record stores it."""
  return json.loads(config.to_json_best_effort())


def _fields(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _fields(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def changes(saved: dict[str, Any], config: ml_collections.ConfigDict) -> list[tuple[str, Any, Any]]:
  """(field, saved value, new value) for each field whose value differs ("unset" where a
  field has none, e.g. a model option given on one side only).

  Top-level fields the saved config lacks are not compared: they were added to the code
  after it was written, and the run trained with what their defaults do.
  """
  old, new = dict(_fields(saved)), dict(_fields(as_plain(config)))
  found = []
  for field in sorted(set(old) | set(new)):
    if field.split(".")[0] not in saved:
      continue
    before, after = old.get(field, UNSET), new.get(field, UNSET)
    if before != after:
      found.append((field, before, after))
  return found


def _show(changed: list[tuple[str, Any, Any]]) -> str:
  return ", ".join(f"{field} {before!r} -> {after!r}" for field, before, after in changed)


def check(record: dict[str, Any], config: ml_collections.ConfigDict, identity: dict[str, Any],
          directory: str, workdir_config: str | None = None) -> list[tuple[str, Any, Any]]:
  """The changed fields a resume may accept; raises UserError naming those it may not.

  The config comes from the record; checkpoints written before records held one are
  compared with the workdir's config.json (`workdir_config`) where it exists, and always by
  their identity (model, data and input shape).
  """
  theirs = {k: record.get(k) for k in identity}
  if theirs != identity:
    raise UserError(
        f"{directory} holds checkpoints of another run ({theirs}, this config: "
        f"{identity}); use another --workdir, or pass --fresh to move them aside and "
        f"start over.")
  saved = record.get("config")
  if saved is None and workdir_config and os.path.exists(workdir_config):
    with open(workdir_config) as f:
      saved = json.load(f)
  if saved is None:
    return []
  changed = changes(saved, config)
  refused = [c for c in changed if c[0].split(".")[0] not in MAY_CHANGE]
  if refused:
    raise UserError(
        f"This config differs from the one that wrote the checkpoints in {directory} in "
        f"what they hold or how training continues ({_show(refused)}); rerun with the old "
        f"value(s), or pass --fresh to move the checkpoints aside and start a new run.")
  return changed


def describe(changed: list[tuple[str, Any, Any]]) -> str:
  return f"Resuming with changed settings: {_show(changed)}."
