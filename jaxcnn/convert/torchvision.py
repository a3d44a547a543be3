"""torchvision state_dicts -> this project's {"params", "batch_stats"}.

Takes a dict of numpy arrays or torch tensors; `read_state_dict` reads one from a file
(torch is imported only to read a torch file, where it is installed).
Layouts: conv weights OIHW -> HWIO; dense weights (out, in) -> (in, out); BN weight/bias ->
scale/bias, running_mean/var -> mean/var. torchvision flattens CHW feature maps before its
first dense layer and this project flattens HWC, so that layer's input rows are permuted.
The result is checked against the shapes of the registered model's own variables.

Converters: alexnet, the eight VGGs, resnet18..152, googlenet and inception_v3. Another
family can register into `CONVERTERS` from its own module:

    from jaxcnn.convert.torchvision import CONVERTERS, StateDict, Variables
    CONVERTERS["mynet"] = convert_mynet   # (StateDict) -> Variables
    HEADS["mynet"] = ("fc",)               # its classifier, for fine-tuning
"""
import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxcnn import models
from jaxcnn.errors import UserError


def _numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor
    value = value.detach().cpu().numpy()
  return np.asarray(value)


class StateDict:
  """The state_dict's arrays by key, remembering which were read (to report leftovers)."""

  def __init__(self, state_dict):
    self.arrays = {k: _numpy(v) for k, v in state_dict.items()}
    self.used: set[str] = set()

  def __contains__(self, key: str) -> bool:
    return key in self.arrays

  def __getitem__(self, key: str) -> np.ndarray:
    if key not in self.arrays:
      raise UserError(f"The state_dict has no {key!r}: is it from the right torchvision model?")
    self.used.add(key)
    return self.arrays[key]

  def unused(self) -> list[str]:
    # num_batches_tracked counts BN updates; flax's BatchNorm has no such counter.
    return sorted(k for k in self.arrays
                  if k not in self.used and not k.endswith("num_batches_tracked"))


class Variables:
  """{"params": ..., "batch_stats": ...} built leaf by leaf from '/'-separated paths.

  `num_classes` is the width of the output layer: the dense layer marked `logits=True`.
  `options` are the model options the state_dict implies, such as aux_logits=False for a
  GoogLeNet or Inception-v3 state_dict without auxiliary classifiers.
  """

  def __init__(self):
    self.num_classes = 0
    self.options: dict = {}  # model options the state_dict implies (aux_logits=False)
    self.params: dict[tuple[str, ...], np.ndarray] = {}
    self.batch_stats: dict[tuple[str, ...], np.ndarray] = {}

  def conv(self, sd: StateDict, prefix: str, path: str) -> None:
    self.params[(*path.split("/"), "kernel")] = sd[f"{prefix}.weight"].transpose(2, 3, 1, 0)
    if f"{prefix}.bias" in sd:
      self.params[(*path.split("/"), "bias")] = sd[f"{prefix}.bias"]

  def bn(self, sd: StateDict, prefix: str, path: str) -> None:
    key = tuple(path.split("/"))
    self.params[(*key, "scale")] = sd[f"{prefix}.weight"]
    self.params[(*key, "bias")] = sd[f"{prefix}.bias"]
    self.batch_stats[(*key, "mean")] = sd[f"{prefix}.running_mean"]
    self.batch_stats[(*key, "var")] = sd[f"{prefix}.running_var"]

  def dense(self, sd: StateDict, prefix: str, path: str,
            chw: tuple[int, int, int] | None = None, logits: bool = False) -> None:
    weight = sd[f"{prefix}.weight"]
    out = weight.shape[0]
    if logits:
      self.num_classes = out
    if chw is not None:  # rows in torchvision's (C, H, W) order -> ours (H, W, C)
      weight = weight.reshape(out, *chw).transpose(2, 3, 1, 0).reshape(-1, out)
    else:
      weight = weight.T
    self.params[(*path.split("/"), "kernel")] = weight
    self.params[(*path.split("/"), "bias")] = sd[f"{prefix}.bias"]

  def as_dict(self) -> dict:
    return {"params": traverse_util.unflatten_dict(
                {k: np.ascontiguousarray(v, np.float32) for k, v in self.params.items()}),
            "batch_stats": traverse_util.unflatten_dict(
                {k: np.ascontiguousarray(v, np.float32) for k, v in self.batch_stats.items()})}


CONVERTERS: dict[str, Callable[[StateDict], Variables]] = {}
# Each converted network's classifier: the layers (paths in params) that fine-tuning replaces
# where the number of classes differs, and that config.head_only_epochs trains alone.
HEADS: dict[str, tuple[str, ...]] = {}


def _converter(*names: str, head: tuple[str, ...]):
  def wrap(fn):
    for name in names:
      CONVERTERS[name] = fn
      HEADS[name] = head
    return fn
  return wrap


def head_layer(name: str, path: str) -> str | None:
  """The layer of `name`'s classifier (HEADS) that the '/'-separated `path` lies in, if any."""
  return next((layer for layer in HEADS[name]
               if path == layer or path.startswith(layer + "/")), None)


def in_head(name: str, path: str) -> bool:
  return head_layer(name, path) is not None


def head_labels(name: str) -> Callable[[Any], Any]:
  """optax.multi_transform's labels for `name`: "head" for its classifier, "body" elsewhere."""
  if name not in HEADS:
    raise UserError(f"config.head_only_epochs needs to know the classifier of {name!r}; it "
                    f"knows those of: {', '.join(sorted(HEADS))}.")

  def labels(params):
    flat = traverse_util.flatten_dict(params, sep="/")
    return traverse_util.unflatten_dict(
        {k: "head" if in_head(name, k) else "body" for k in flat}, sep="/")
  return labels


@_converter("alexnet", head=("classifier/fc3",))
def convert_alexnet(sd: StateDict) -> Variables:
  v = Variables()
  for i, index in enumerate((0, 3, 6, 8, 10), 1):
    v.conv(sd, f"features.{index}", f"conv{i}")
  v.dense(sd, "classifier.1", "classifier/fc1", chw=(256, 6, 6))
  v.dense(sd, "classifier.4", "classifier/fc2")
  v.dense(sd, "classifier.6", "classifier/fc3", logits=True)
  return v


@_converter("vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
            head=("fc3",))
def convert_vgg(sd: StateDict) -> Variables:
  v = Variables()
  # features.N holds convs (4-d weights), BNs (with running stats), and parameter-free
  # ReLUs and pools in between: number the convs in order, a BN belongs to the conv before.
  indices = sorted({int(m.group(1)) for k in sd.arrays
                    if (m := re.fullmatch(r"features\.(\d+)\.weight", k))})
  conv = 0
  for index in indices:
    prefix = f"features.{index}"
    if sd.arrays[f"{prefix}.weight"].ndim == 4:
      conv += 1
      v.conv(sd, prefix, f"conv{conv}")
    else:
      v.bn(sd, prefix, f"bn{conv}")
  v.dense(sd, "classifier.0", "fc1", chw=(512, 7, 7))
  v.dense(sd, "classifier.3", "fc2")
  v.dense(sd, "classifier.6", "fc3", logits=True)
  return v


@_converter("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", head=("fc",))
def convert_resnet(sd: StateDict) -> Variables:
  v = Variables()
  v.conv(sd, "conv1", "conv1")
  v.bn(sd, "bn1", "bn1")
  blocks = sorted({(int(m.group(1)), int(m.group(2))) for k in sd.arrays
                   if (m := re.match(r"layer(\d+)\.(\d+)\.", k))})
  for stage, block in blocks:
    prefix, path = f"layer{stage}.{block}", f"layer{stage}_{block}"
    for k in (1, 2, 3):
      if f"{prefix}.conv{k}.weight" in sd:
        v.conv(sd, f"{prefix}.conv{k}", f"{path}/conv{k}")
        v.bn(sd, f"{prefix}.bn{k}", f"{path}/bn{k}")
    if f"{prefix}.downsample.0.weight" in sd:
      v.conv(sd, f"{prefix}.downsample.0", f"{path}/downsample_conv")
      v.bn(sd, f"{prefix}.downsample.1", f"{path}/downsample_bn")
  v.dense(sd, "fc", "fc", logits=True)
  return v


def _torch_path(prefix: str) -> str:
  """torchvision's module path -> ours: a Sequential's index joins its name with "_"
  (inception3a.branch2.1 -> inception3a/branch2_1), other dots become "/"."""
  return re.sub(r"\.(\d+)", r"_\1", prefix).replace(".", "/")


def _basic_convs(v: Variables, sd: StateDict) -> None:
  """Every BasicConv2d (a bias-free conv `X.conv` and its batch norm `X.bn`) as X/conv, X/bn."""
  for key in sorted(sd.arrays):
    if key.endswith(".conv.weight"):
      prefix = key[:-len(".conv.weight")]
      v.conv(sd, f"{prefix}.conv", f"{_torch_path(prefix)}/conv")
      v.bn(sd, f"{prefix}.bn", f"{_torch_path(prefix)}/bn")


@_converter("googlenet", head=("fc", "aux1", "aux2"))
def convert_googlenet(sd: StateDict) -> Variables:
  """torchvision's GoogLeNet, with its auxiliary classifiers (aux1, aux2) or without (as its
  pretrained checkpoint: the model is then created with aux_logits=False)."""
  v = Variables()
  _basic_convs(v, sd)
  if "aux1.fc2.weight" in sd:
    for aux in ("aux1", "aux2"):
      # fc1 reads the flattened 128x4x4 map: (C, H, W) rows there, (H, W, C) here.
      v.dense(sd, f"{aux}.fc1", f"{aux}/fc1", chw=(128, 4, 4))
      v.dense(sd, f"{aux}.fc2", f"{aux}/fc2")
  else:
    v.options["aux_logits"] = False
  v.dense(sd, "fc", "fc", logits=True)
  return v


@_converter("inception_v3", head=("fc", "AuxLogits"))
def convert_inception_v3(sd: StateDict) -> Variables:
  """torchvision's Inception-v3, with its auxiliary classifier (AuxLogits) or without."""
  v = Variables()
  _basic_convs(v, sd)
  if "AuxLogits.fc.weight" in sd:
    v.dense(sd, "AuxLogits.fc", "AuxLogits/fc")  # after a global pool: no permutation
  else:
    v.options["aux_logits"] = False
  v.dense(sd, "fc", "fc", logits=True)
  return v


def _shapes(tree) -> dict[str, tuple[int, ...]]:
  return {"/".join(k): tuple(x.shape) for k, x in traverse_util.flatten_dict(tree).items()}


def _check(name: str, variables: dict, num_classes: int, options: dict) -> None:
  """The converted variables must have exactly the registered model's names and shapes."""
  model = models.create(name, num_classes=num_classes, **options)
  image = jnp.zeros((1, *models.input_shape(name)), jnp.float32)
  expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, train=False))
  for collection in ("params", "batch_stats"):
    want = _shapes(expected.get(collection, {}))
    got = _shapes(variables[collection])
    if want != got:
      missing = sorted(set(want) - set(got))
      extra = sorted(set(got) - set(want))
      wrong = sorted(k for k in set(want) & set(got) if want[k] != got[k])
      raise UserError(
          f"The converted {collection} do not fit {name!r}: missing {missing[:5]}, "
          f"unexpected {extra[:5]}, wrong shapes "
          f"{[(k, got[k], want[k]) for k in wrong[:5]]}; is the state_dict from torchvision's "
          f"{name}?")


def from_torchvision(name: str, state_dict) -> dict:
  """Converts torchvision's `name` state_dict to {"params": ..., "batch_stats": ...}.

  The number of classes is read from the output layer. Every array of the state_dict must be
  used (except BN's num_batches_tracked), and the result must match the model's shapes.
  googlenet and inception_v3 state_dicts may come with their auxiliary classifiers or without
  (torchvision's pretrained GoogLeNet has none): without, create the model with
  aux_logits=False. Their pretrained weights also expect transform_input=True.
  """
  if name not in CONVERTERS:
    raise UserError(f"No torchvision converter for {name!r}; there is one for: "
                    f"{', '.join(sorted(CONVERTERS))}.")
  sd = StateDict(state_dict)
  converted = CONVERTERS[name](sd)
  variables = converted.as_dict()
  if sd.unused():
    raise UserError(f"The state_dict has arrays the {name!r} converter does not use: "
                    f"{sd.unused()[:8]}; is it from torchvision's {name}?")
  _check(name, variables, converted.num_classes, converted.options)
  return variables


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """A torchvision state_dict saved to `path`, as numpy arrays, running no code from the file.

  `.safetensors` files are read by safetensors (a dependency); torch's own files (`.pth`,
  `.pt`) by torch's weights-only loader, where torch is installed (the `torch` extra). A
  training checkpoint that holds the state_dict under "model" (torchvision's references) or
  "state_dict" is read too, and DistributedDataParallel's "module." prefixes are dropped.
  """
  if not os.path.isfile(path):
    raise UserError(f"There is no torchvision weights file {path!r}.")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file  # a few ms: only where a file is read
    try:
      arrays = load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError, and OSError
      raise UserError(f"{path!r} is not a readable safetensors file ({e}).") from e
  else:
    try:
      import torch
    except ImportError as e:
      raise UserError(f"Reading {path!r} (a torch file) needs torch: pip install -e '.[torch]', "
                      f"or save the state_dict as .safetensors "
                      f"(safetensors.torch.save_file).") from e
    try:
      loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the weights-only unpickler refuses anything but tensors
      raise UserError(f"torch could not read {path!r} as weights only ({e}).") from e
    for key in ("model", "state_dict"):
      if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
        loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(hasattr(v, "numpy") for v in loaded.values()):
      raise UserError(f"{path!r} holds no state_dict (a dict of tensors).")
    arrays = {k: _numpy(v) for k, v in loaded.items()}
  if arrays and all(k.startswith("module.") for k in arrays):
    arrays = {k[len("module."):]: v for k, v in arrays.items()}
  return arrays
