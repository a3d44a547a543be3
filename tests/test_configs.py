"""Every recipe config builds and trains: two steps and an evaluation, at a reduced size.

Only the data source and the sizes are reduced (synthetic images, small batches and images,
two steps); the model, optimizer, schedule, preprocessing and every other field are the
recipe's own.
"""
import functools
import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
from jaxcnn.train import loop

CONFIG_DIR = os.path.dirname(configs.__file__)
# On the 2-core CI machine every recipe is prepared (model, optimizer, schedule, data and
# preprocessing built, the model initialised abstractly) but only these train: one per
# network family and recipe feature. JAXCNN_SLOW_TESTS=1 trains all of them (each costs
# 10-60 s of compilation here). The VGG ImageNet recipes are left to the slow run for
# memory: their 120M-parameter head, replicated with its optimizer state on 8 virtual CPU
# devices, needs over 16 GB of host memory; VGG trains in CI through the flowers recipe's
# model in test_training_options (pre-initialisation).
TRAINED_IN_CI = {
    "lenet_fashion_mnist",  # Adam, to_float
    "alexnet_fashion_mnist",  # resize to 224 (reduced here)
    "resnet18_cifar",  # cifar augmentation, SGD + cosine, weight decay
    "resnet20_cifar",  # piecewise at iterations, option-A shortcuts
    "alexnet_imagenet",  # alexnet preprocessing (PCA lighting), plateau, LRN, paper init
    "resnet18_imagenet",  # vgg scale jittering (S in [256, 480]), piecewise at epochs
    "googlenet_imagenet",  # auxiliary losses, EMA, inception crops, exponential staircase
    "resnet50_signs",  # the Keras ResNet-50 (its only train step in CI)
    "resnet18_blog_cifar",  # seed 001's network, to_float with a normalisation of its own
}
# Also left to the slow run for time: the flowers recipes (alexnet_flowers17 takes 90 s here,
# AlexNet's 58M-parameter Adam update on 8 virtual devices); AlexNet trains in CI through
# three other recipes and early stopping in test_optim.


# The recipes train data-parallel over two of the eight virtual devices. Each device holds
# a replica of the train state and of the step's temporaries, and the eight virtual devices
# share one host's memory: eight replicas of VGG-16's Adam state (134M parameters, 2.7 GB a
# replica in the step) do not fit in these machines' 24 GB. Eight devices are tested in
# test_parallel.py and test_multihost.py.
RECIPE_DEVICES = 2


# Networks that need more than 64 pixels: AlexNet-d2l's stride-4 stem and pools, the
# Keras BN-Inception's fixed 7x7 final pool, and the paper's GoogLeNet (googlenet_imagenet),
# whose auxiliary heads pool 5x5 at inception 4a.
MIN_SIDE = {"alexnet_d2l": 96, "inception_v2": 193, "googlenet": 79}


def _doc(module) -> str:
  """The recipe's docstring and those of the shared configs it builds on."""
  docs = [module.__doc__ or ""]
  for value in vars(module).values():
    if getattr(value, "__name__", "").startswith("configs.") and value is not module:
      docs.append(_doc(value))
  return "\n".join(docs)


def test_every_config_file_is_a_recipe_or_shared():
  files = {f[:-3] for f in os.listdir(CONFIG_DIR) if f.endswith(".py") and f != "__init__.py"}
  assert files == set(configs.RECIPES) | set(configs.SHARED)


@pytest.mark.parametrize("name", configs.RECIPES)
def test_recipe_names_its_source_and_expected_result(name):
  doc = _doc(importlib.import_module(f"configs.{name}"))
  assert "Expected" in doc and ("Source" in doc or "paper" in doc), name


def _reduced(config):
  """The recipe with synthetic data and small sizes; every training choice unchanged."""
  side = config.image_size
  small = side if side <= 64 else MIN_SIDE.get(config.model, 64)
  channels = 1 if config.dataset in ("fashion_mnist", "mnist") else 3
  config.dataset = "synthetic"
  config.data_dir = ""
  # Stored images a bit larger than the crop, as the real data is.
  stored = small if config.train_preprocess in ("to_float", "cifar", "normalize") else small + 8
  config.synthetic_image_shape = (stored, stored, channels)
  config.synthetic_train_examples = 16
  config.synthetic_test_examples = 11  # a padded last batch
  config.image_size = small
  config.resize_size = small + 8
  lo, hi = config.vgg_scale_range
  config.vgg_scale_range = (small + 8, small + 8 + (hi - lo) // 32)
  config.eval_scales = tuple(small + 8 * i for i, _ in enumerate(config.eval_scales))
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_train_steps = 2
  config.progress_every_secs = 3600.0
  if config.init_from.startswith("torchvision:"):
    # The weights file is the user's (tests/test_finetune.py trains from one).
    config.init_from = ""
  return config


@pytest.mark.parametrize("name", configs.RECIPES)
def test_recipe_builds_its_model_optimizer_and_data(name):
  config = _reduced(importlib.import_module(f"configs.{name}").get_config())
  run = loop.prepare(config)
  x = jnp.zeros((1, *run.image_shape))
  variables = jax.eval_shape(lambda: run.model.init(jax.random.PRNGKey(0), x, train=False))
  assert jax.eval_shape(lambda v: run.model.apply(v, x, train=False),
                        variables).shape == (1, config.num_classes)
  assert run.total_steps == 2 and run.tx is not None


@pytest.mark.parametrize("name", [
    n if n in TRAINED_IN_CI else pytest.param(n, marks=pytest.mark.slow)
    for n in configs.RECIPES])
def test_recipe_trains_two_steps_and_evaluates(name, tmp_path, monkeypatch):
  monkeypatch.setattr(loop.parallel_lib, "create", functools.partial(
      loop.parallel_lib.create, devices=jax.devices()[:RECIPE_DEVICES]))
  config = importlib.import_module(f"configs.{name}").get_config()
  recipe = config.to_dict()
  config = _reduced(config)
  changed = {k for k in recipe if recipe[k] != config.to_dict()[k]}
  assert changed <= {"dataset", "data_dir", "synthetic_image_shape", "synthetic_train_examples",
                     "synthetic_test_examples", "image_size", "resize_size", "vgg_scale_range",
                     "batch_size", "eval_batch_size", "num_train_steps", "progress_every_secs",
                     "eval_scales", "init_from"}
  summary = loop.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(summary["loss"]) and 0.0 <= summary["accuracy"] <= 1.0
  with open(tmp_path / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  from jaxcnn.train import monitor
  evaluated = [r for r in records if r.get("split") == monitor.split_name(config)]
  assert evaluated and evaluated[-1]["step"] == 2
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["model"] == recipe["model"]
