"""Every recipe config builds and trains: two steps and an evaluation, at a reduced size.

Only the data source and the sizes are reduced (synthetic images, small batches and images,
two steps); the model, optimizer, schedule, preprocessing and every other field are the
recipe's own.
"""
import contextlib
import importlib
import json
import os

import numpy as np
import pytest

import configs
from jaxcnn.train import loop, parallel as parallel_lib
from tests.conftest import on_devices, optimized_compiles

CONFIG_DIR = os.path.dirname(configs.__file__)

# Every recipe trains here, in CI: on one device, at batch 2, so that each costs little
# more than compiling its network's step once. One device runs the CPU's oneDNN kernels
# (jaxcnn.cpu), whose custom calls XLA compiles and runs several times faster than the
# partitioned formulation that several devices under jit need; the parallel paths are
# tested on 8 devices in test_parallel.py and test_multihost.py. One device also holds a
# single replica of VGG's 120M-parameter ImageNet head and its optimizer state.
RECIPE_DEVICES = 1
RECIPE_BATCH = 2


# VGG's 120M-parameter ImageNet head (every VGG recipe has it): drawing and updating those
# parameters with XLA's optimisations off takes longer than the optimisations take to
# compile (docs/tests.md), so these runs compile with them.
def _optimized(config) -> bool:
  return config.model.startswith("vgg")


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
  config.synthetic_train_examples = 4 * RECIPE_BATCH
  config.synthetic_test_examples = RECIPE_BATCH + 1  # a padded last batch
  config.image_size = small
  config.resize_size = small + 8
  lo, hi = config.vgg_scale_range
  config.vgg_scale_range = (small + 8, small + 8 + (hi - lo) // 32)
  config.eval_scales = tuple(small + 8 * i for i, _ in enumerate(config.eval_scales))
  config.batch_size = RECIPE_BATCH
  config.eval_batch_size = RECIPE_BATCH
  config.num_train_steps = 2
  config.progress_every_secs = 3600.0
  if config.init_from.startswith("torchvision:"):
    # The weights file is the user's (tests/test_finetune.py trains from one).
    config.init_from = ""
  return config


@pytest.fixture
def recipe_devices():
  """Runs built in the test train on RECIPE_DEVICES devices."""
  with on_devices(RECIPE_DEVICES):
    yield


def test_every_registered_model_takes_a_train_step():
  """Each network of the registry trains a step in this suite: through a recipe below, or
  in the model tests (those no recipe trains, and one per family with flax's own layers)."""
  from jaxcnn import models
  from tests import test_models_seeds, test_models_zoo_a, test_models_zoo_b
  by_recipe = {importlib.import_module(f"configs.{n}").get_config().model for n in configs.RECIPES}
  by_model_tests = (test_models_zoo_a.TRAIN_STEP | test_models_zoo_b.TRAIN_STEP
                    | test_models_seeds.TRAIN_STEP)
  assert set(models.list_models()) - by_recipe - by_model_tests == set()


@pytest.mark.parametrize("name", configs.RECIPES)
def test_recipe_trains_two_steps_and_evaluates(name, tmp_path, recipe_devices, monkeypatch):
  # The FLOP count of a run's first lines traces the train step a second time, with the
  # plain network (GPUs' and TPUs' layers): a sixth of these runs' time. The recipes' runs
  # skip it. The plain layers' step is traced for each network class in test_cpu.py, and
  # the count itself is made by every other training run of the suite (and checked on
  # every parallel path in test_parallel.py).
  monkeypatch.setattr(parallel_lib, "step_flops", lambda *args: 0.0)
  config = importlib.import_module(f"configs.{name}").get_config()
  recipe = config.to_dict()
  config = _reduced(config)
  changed = {k for k in recipe if recipe[k] != config.to_dict()[k]}
  assert changed <= {"dataset", "data_dir", "synthetic_image_shape", "synthetic_train_examples",
                     "synthetic_test_examples", "image_size", "resize_size", "vgg_scale_range",
                     "batch_size", "eval_batch_size", "num_train_steps", "progress_every_secs",
                     "eval_scales", "init_from"}
  with optimized_compiles() if _optimized(config) else contextlib.nullcontext():
    summary = loop.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(summary["loss"]) and 0.0 <= summary["accuracy"] <= 1.0
  with open(tmp_path / "metrics.jsonl") as f:
    records = [json.loads(line) for line in f]
  from jaxcnn.train import monitor
  evaluated = [r for r in records if r.get("split") == monitor.split_name(config)]
  assert evaluated and evaluated[-1]["step"] == 2
  with open(tmp_path / "config.json") as f:
    assert json.load(f)["model"] == recipe["model"]
