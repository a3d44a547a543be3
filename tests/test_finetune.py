"""Fine-tuning from torchvision's weights: config.init_from="torchvision:FILE" and
config.head_only_epochs (jaxcnn/train/pretrained.py, jaxcnn/train/optim.py).

Without torch, the weights file is a ResNet-18 of this project's written in torchvision's
state_dict layout (the inverse of jaxcnn.convert) as safetensors; with torchvision installed,
a randomly initialised torchvision ResNet-18 saved by torch.save.
"""
import importlib.util
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import traverse_util
from safetensors.numpy import save_file

from configs import default
from jaxcnn import convert, models
from jaxcnn.errors import UserError
from jaxcnn.train import loop, optim, pretrained
from tests.conftest import on_devices

IMAGE = (32, 32, 3)  # ResNet-18's global pool takes any input: small and fast here
TRAIN_DEVICES = 2


def random_variables(num_classes: int, seed: int) -> dict:
  """ResNet-18's variables, every array random (numpy: nothing to compile)."""
  model = models.create("resnet18", num_classes=num_classes)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, *IMAGE))))
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = path[-1].key
    if name == "var":
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    if name == "scale":
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    fan_in = int(np.prod(leaf.shape[:-1])) if leaf.ndim > 1 else 1
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(fill, shapes)


def _torch_module(layer: list[str]) -> str:
  """Our layer path -> torchvision's module name (layer2_0/downsample_bn -> layer2.0.downsample.1)."""
  parts = []
  for name in layer:
    if m := re.fullmatch(r"(layer\d)_(\d+)", name):
      parts += [m.group(1), m.group(2)]
    else:
      parts += {"downsample_conv": ["downsample", "0"],
                "downsample_bn": ["downsample", "1"]}.get(name, [name])
  return ".".join(parts)


def as_torchvision_state_dict(variables: dict) -> dict[str, np.ndarray]:
  """ResNet variables in torchvision's state_dict layout, num_batches_tracked included."""
  state_dict = {}
  for path, x in traverse_util.flatten_dict(variables["params"], sep="/").items():
    *layer, leaf = path.split("/")
    module = _torch_module(layer)
    if leaf == "kernel":
      x = x.transpose(3, 2, 0, 1) if x.ndim == 4 else x.T  # HWIO -> OIHW, (in, out) -> (out, in)
    state_dict[f"{module}.{ {'kernel': 'weight', 'scale': 'weight'}.get(leaf, leaf)}"] = x
  for path, x in traverse_util.flatten_dict(variables["batch_stats"], sep="/").items():
    *layer, leaf = path.split("/")
    module = _torch_module(layer)
    state_dict[f"{module}.running_{leaf}"] = x
    state_dict[f"{module}.num_batches_tracked"] = np.array(7, np.int64)
  return {k: np.ascontiguousarray(v) for k, v in state_dict.items()}


@pytest.fixture(scope="module")
def imagenet_resnet18(tmp_path_factory):
  """(variables, path): a 1000-class ResNet-18 and its safetensors file in torchvision's layout."""
  variables = random_variables(1000, seed=1)
  path = str(tmp_path_factory.mktemp("weights") / "resnet18.safetensors")
  save_file(as_torchvision_state_dict(variables), path)
  return variables, path


def _flat(variables: dict) -> dict[str, np.ndarray]:
  return traverse_util.flatten_dict(variables, sep="/")


def test_a_torchvision_file_gives_every_variable_and_a_fresh_classifier(imagenet_resnet18):
  source, path = imagenet_resnet18
  # The same 1000 classes: every array as it was, classifier included.
  same, described = pretrained.from_torchvision("resnet18", random_variables(1000, seed=2), path)
  for key, value in _flat(source).items():
    np.testing.assert_array_equal(_flat(same)[key], value, err_msg=key)
  assert described == "102 arrays of torchvision's resnet18"
  x = np.random.default_rng(0).normal(size=(2, *IMAGE)).astype(np.float32)
  model = models.create("resnet18", num_classes=1000)
  np.testing.assert_array_equal(model.apply(same, x), model.apply(source, x))
  # 10 classes: the classifier keeps the target's own initialisation, the rest is the file's.
  target = random_variables(10, seed=3)
  tuned, described = pretrained.from_torchvision("resnet18", target, path)
  assert described == "100 arrays of torchvision's resnet18 (freshly initialised: fc)"
  for key, value in _flat(tuned).items():
    expected = _flat(target)[key] if key.startswith("params/fc/") else _flat(source)[key]
    np.testing.assert_array_equal(value, expected, err_msg=key)


@pytest.mark.parametrize("name", sorted(convert.CONVERTERS))
def test_every_converted_network_names_its_classifier(name):
  # Each HEADS layer exists, and the main one has num_classes outputs: what fine-tuning
  # replaces and head_only_epochs trains.
  model = models.create(name, num_classes=7)
  x = jnp.zeros((1, *models.input_shape(name)))
  params = _flat(jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x))["params"])
  for layer in convert.HEADS[name]:
    assert [k for k in params if convert.head_layer(name, k) == layer], layer
  main = convert.HEADS[name][0]
  assert params[f"{main}/kernel"].shape[-1] == 7
  labels = _flat(convert.head_labels(name)(traverse_util.unflatten_dict(params, sep="/")))
  assert {k for k, v in labels.items() if v == "head"} == {
      k for k in params if convert.in_head(name, k)}
  assert "body" in labels.values()


def test_bad_weights_are_one_sentence(imagenet_resnet18, tmp_path):
  source, path = imagenet_resnet18
  with pytest.raises(UserError, match="no torchvision weights file"):
    pretrained.from_torchvision("resnet18", source, str(tmp_path / "missing.safetensors"))
  (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
  with pytest.raises(UserError, match="not a readable safetensors file"):
    pretrained.from_torchvision("resnet18", source, str(tmp_path / "junk.safetensors"))
  with pytest.raises(UserError, match="needs a network that jaxcnn.convert converts"):
    pretrained.from_torchvision("resnet20", source, path)
  with pytest.raises(UserError, match="is the state_dict from torchvision's resnet50"):
    pretrained.from_torchvision("resnet50", source, path)
  # A layer outside the classifier that does not fit (another model option) is refused.
  target = jax.tree.map(np.copy, source)
  target["params"]["conv1"]["kernel"] = np.zeros((3, 3, 3, 64), np.float32)
  with pytest.raises(UserError, match=r"params conv1/kernel has shape \(7, 7, 3, 64\) there"):
    pretrained.from_torchvision("resnet18", target, path)


def _config(**fields) -> ml_collections.ConfigDict:
  c = default.get_config()
  c.update(model="resnet18", num_classes=10, dataset="synthetic", synthetic_image_shape=IMAGE,
           image_size=IMAGE[0], synthetic_train_examples=32, synthetic_test_examples=16,
           batch_size=16, eval_batch_size=16, optimizer="sgd", learning_rate=0.05,
           progress_every_secs=3600.0)
  c.update(fields)
  return c


def test_fine_tuning_trains_the_new_head_alone_first(imagenet_resnet18, tmp_path, capsys):
  source, path = imagenet_resnet18
  # Two steps an epoch: both inside the head-only epoch.
  config = _config(init_from=f"torchvision:{path}", head_only_epochs=1.0, num_train_steps=2)
  with on_devices(TRAIN_DEVICES):
    summary = loop.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(summary["loss"])
  assert (f"Initialised 100 arrays of torchvision's resnet18 (freshly initialised: fc) from "
          f"torchvision:{path}.") in capsys.readouterr().out
  trained = pretrained.load_variables(str(tmp_path))
  for key, value in _flat(trained["params"]).items():
    if key.startswith("fc/"):
      assert value.shape[-1] == 10 and np.abs(value).max() > 0
    else:  # the pretrained body is held
      np.testing.assert_array_equal(value, _flat(source["params"])[key], err_msg=key)
  # batch norm's statistics follow the new data, as in PyTorch with frozen parameters
  assert not np.array_equal(trained["batch_stats"]["bn1"]["mean"],
                            source["batch_stats"]["bn1"]["mean"])


def test_head_only_epochs_hold_the_body_then_follow_the_runs_schedule():
  config = _config(head_only_epochs=1.0, schedule="piecewise", lr_decay_steps=(3,),
                   learning_rate=0.1, momentum=0.0, weight_decay=1e-2)
  tx = optim.create_optimizer(config, steps_per_epoch=2, total_steps=5)
  params = {"conv1": {"kernel": jnp.ones(3)}, "fc": {"kernel": jnp.ones(2)}}
  grads = jax.tree.map(jnp.ones_like, params)
  opt_state = tx.init(params)
  body, head = [], []
  for _ in range(5):
    updates, opt_state = tx.update(grads, opt_state, params)
    body.append(float(updates["conv1"]["kernel"][0]))
    head.append(float(updates["fc"]["kernel"][0]))
    params = optax.apply_updates(params, updates)
  # lr 0.1 for steps 0-2, 0.01 from step 3; the body is held for the first epoch (2 steps),
  # weight decay included, then steps with the schedule of the run's step: SGD with L2,
  # -lr (g + 0.01 p).
  expected, p = [0.0, 0.0], 1.0
  for lr in (0.1, 0.01, 0.01):
    expected.append(-lr * (1 + 1e-2 * p))
    p += expected[-1]
  np.testing.assert_allclose(body, expected, rtol=1e-6)
  assert head[0] == pytest.approx(-0.1 * 1.01) and head[3] < 0 and abs(head[3]) < 0.02
  assert optim.lr_scale(opt_state) == 1.0  # reduce-on-plateau's multiplier stays last
  with pytest.raises(UserError, match="needs to know the classifier of 'resnet20'"):
    optim.create_optimizer(_config(model="resnet20", head_only_epochs=1.0), 2, 5)


# torchvision's side runs in a process of its own: torchvision imports triton (with CUDA
# wheels of torch), which crashes a process that has loaded TensorFlow, as the test process
# has. Reading the .pth needs torch.load only, which does not.
TORCHVISION_SIDE = """
import sys
import numpy as np, torch, torchvision
torch.manual_seed(0)
net = torchvision.models.resnet18(weights=None).eval()
torch.save(net.state_dict(), sys.argv[1] + "/resnet18.pth")
images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
with torch.no_grad():
  np.save(sys.argv[1] + "/logits.npy", net(torch.from_numpy(images)).numpy())
np.save(sys.argv[1] + "/images.npy", images)
"""


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                    reason="torchvision is not installed (docs/models.md)")
def test_torchvision_resnet18_fine_tunes_from_its_pth_file(tmp_path):
  subprocess.run([sys.executable, "-c", TORCHVISION_SIDE, str(tmp_path)], check=True)
  path = str(tmp_path / "resnet18.pth")
  variables, _ = pretrained.from_torchvision("resnet18", random_variables(1000, seed=2), path)
  images = np.load(tmp_path / "images.npy").transpose(0, 2, 3, 1)  # NCHW -> NHWC
  theirs = np.load(tmp_path / "logits.npy")
  ours = np.asarray(models.create("resnet18", num_classes=1000).apply(variables, images))
  assert np.abs(ours - theirs).max() <= 1e-4 * max(1.0, np.abs(theirs).max())
  with on_devices(TRAIN_DEVICES):
    summary = loop.train_and_evaluate(_config(init_from=f"torchvision:{path}", num_train_steps=2),
                                      str(tmp_path / "run"))
  assert np.isfinite(summary["loss"])
