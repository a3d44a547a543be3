"""Initialising some layers of a fresh run from another run's checkpoint.

VGG's pre-initialisation (the deeper configurations take layers of a trained
configuration A) and fine-tuning from any earlier run go through here:

    config.init_from = "runs/vgg11"            # a workdir: its best checkpoint, else its latest
    config.init_from_layers = ("conv1=conv1", "conv3=conv2", "fc1=fc1")   # target=source

An empty `init_from_layers` takes every top-level layer whose name appears in both
networks (all shapes must then agree). Parameters and batch-norm statistics are copied;
the optimizer starts fresh. A resumed run restores its own checkpoint and never reads these.
Orbax restores the arrays as numpy from the checkpoint's own metadata (nothing pickled).

Fine-tuning from torchvision's weights (every network jaxcnn.convert converts):

    config.init_from = "torchvision:resnet50.safetensors"   # or a .pth state_dict, with torch
    config.head_only_epochs = 2   # optional: only the classifier trains for the first 2 epochs

The file is converted (jaxcnn.convert.from_torchvision) and every variable is taken from it,
except the classifier's (convert.HEADS) where the number of classes differs, which keeps
its fresh initialisation; so do layers the file lacks (GoogLeNet's auxiliary heads: its
pretrained file has none). `init_from_layers` does not apply.
"""
import os
from typing import Any, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util

from jaxcnn import convert
from jaxcnn.errors import UserError
from jaxcnn.train import checkpoint

COLLECTIONS = ("params", "batch_stats")
TORCHVISION = "torchvision:"


def _checkpoint_dir(path: str) -> str:
  """The `state` item of the best (else latest) checkpoint under a workdir or checkpoints dir."""
  for directory, workdir in ((os.path.join(path, "checkpoints"), path),
                             (path, os.path.dirname(os.path.abspath(path)))):
    if os.path.isdir(directory) and any(s.isdigit() for s in os.listdir(directory)):
      ckpt = checkpoint.Checkpointer.of_workdir(workdir, directory)
      step = ckpt.best_step() or ckpt.latest_step()
      ckpt.close()
      return os.path.join(directory, str(step), "state")
  raise UserError(f"config.init_from={path!r} holds no checkpoint; give the workdir of a "
                  f"trained run.")


def load_variables(path: str) -> dict[str, Any]:
  """{"params", "batch_stats"} of the run in `path`, as numpy arrays on the host."""
  state_dir = _checkpoint_dir(path)
  reader = ocp.PyTreeCheckpointer()
  tree = reader.metadata(state_dir).item_metadata.tree
  wanted = {k: tree[k] for k in COLLECTIONS if k in tree}
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
  restored = reader.restore(state_dir, args=ocp.args.PyTreeRestore(
      item=wanted, restore_args=as_numpy, partial_restore=True))
  return {k: restored.get(k) or {} for k in COLLECTIONS}


def _pairs(layers: Sequence[str], target: dict, source: dict) -> list[tuple[str, str]]:
  if not layers:
    return [(name, name) for name in target if name in source]
  pairs = []
  for spec in layers:
    to, sep, frm = spec.partition("=")
    if not sep or not to or not frm:
      raise UserError(f"config.init_from_layers entries are 'target=source' layer names, "
                      f"not {spec!r}.")
    pairs.append((to.strip(), frm.strip()))
  return pairs


def copy_layers(target: dict[str, Any], source: dict[str, Any],
                layers: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
  """`target` variables with the chosen layers replaced by `source`'s; also the copied names."""
  result = {k: dict(target.get(k) or {}) for k in COLLECTIONS}
  pairs = _pairs(layers, target["params"], source["params"])
  if not pairs:
    raise UserError("config.init_from shares no layer name with this model; list the layers "
                    "to copy in config.init_from_layers ('target=source').")
  for to, frm in pairs:
    if to not in result["params"]:
      raise UserError(f"config.init_from_layers names {to!r}, which this model does not have "
                      f"(its layers: {', '.join(result['params'])}).")
    if frm not in source["params"]:
      raise UserError(f"config.init_from_layers names {frm!r}, which the checkpoint's model "
                      f"does not have (its layers: {', '.join(source['params'])}).")
    for collection in COLLECTIONS:
      if to not in result[collection] and frm not in (source.get(collection) or {}):
        continue
      new, old = source[collection].get(frm), result[collection].get(to)
      shapes = jax.tree.map(np.shape, (old, new))
      if new is None or old is None or shapes[0] != shapes[1]:
        raise UserError(f"Layer {frm!r} of config.init_from does not fit layer {to!r} of this "
                        f"model ({collection} shapes {shapes[1]} and {shapes[0]}).")
      result[collection][to] = jax.tree.map(
          lambda x, like: np.asarray(x, dtype=np.asarray(like).dtype), new, old)
  return result, [to for to, _ in pairs]


def from_torchvision(model: str, target: dict[str, Any],
                     path: str) -> tuple[dict[str, Any], str]:
  """`target` variables of `model` with every variable taken from torchvision's weights in
  `path`, but the classifier's where its shape differs and what the file lacks; also a
  description of what was taken and which layers kept their fresh initialisation."""
  if model not in convert.CONVERTERS:
    raise UserError(f"config.init_from={TORCHVISION}... needs a network that "
                    f"jaxcnn.convert converts, not {model!r}: "
                    f"{', '.join(sorted(convert.CONVERTERS))}.")
  source = convert.from_torchvision(model, convert.read_state_dict(path))
  result, taken, fresh = {}, 0, set()
  for collection in COLLECTIONS:
    mine = traverse_util.flatten_dict(target.get(collection) or {}, sep="/")
    theirs = traverse_util.flatten_dict(source.get(collection) or {}, sep="/")
    for key, value in mine.items():
      new, head = theirs.get(key), convert.head_layer(model, key)
      if new is not None and np.shape(new) == np.shape(value):
        mine[key] = np.asarray(new, dtype=np.asarray(value).dtype)
        taken += 1
      elif head is not None:  # other classes, or heads the file has not
        fresh.add(head)
      else:
        there = "is missing there" if new is None else f"has shape {np.shape(new)} there"
        raise UserError(
            f"torchvision's {model} in {path!r} does not fit this run's {model}: {collection} "
            f"{key} {there} and {np.shape(value)} here (check config.model_options).")
    result[collection] = traverse_util.unflatten_dict(mine, sep="/")
  described = f"{taken} arrays of torchvision's {model}"
  if fresh:
    described += f" (freshly initialised: {', '.join(sorted(fresh))})"
  return result, described


def initialize_from(state, config):
  """A fresh `state` (host arrays) with layers taken from config.init_from (a run's workdir
  or torchvision's weights); what was taken too (layer names, or a description)."""
  target = {"params": state.params, "batch_stats": state.batch_stats}
  if config.init_from.startswith(TORCHVISION):
    variables, described = from_torchvision(config.model, target,
                                            config.init_from[len(TORCHVISION):])
    copied = [described]
  else:
    variables, copied = copy_layers(target, load_variables(config.init_from),
                                    config.init_from_layers)
  state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
  if state.ema_params is not None:
    state = state.replace(ema_params=jax.tree.map(np.copy, variables["params"]))
  return state, copied
