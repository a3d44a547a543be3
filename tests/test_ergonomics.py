"""What a researcher sees: progress, curves, eval mode, confusion matrix, predict."""
import io
import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from configs import lenet_fashion_mnist
from jaxcnn import evaluate, predict, report
from jaxcnn.data import sources
from jaxcnn.train import loop
from jaxcnn.train.progress import EpochProgress
from tests.conftest import needs_fashion_mnist, on_devices, optimized_compiles
from tests.test_data_pipelines import CIFAR_CLASSES, CIFAR_TARBALL, unpack_cifar10_jpeg


def test_progress_is_bounded_when_not_a_terminal():
  out = io.StringIO()
  progress = EpochProgress(batch_size=256, every_secs=0.05, stream=out)
  progress.start(epoch=1, done=0, total=100_000)
  t0 = time.time()
  for step in range(1, 100_001):
    progress.update(step, loss=1.0 if step % 100 == 0 else None)
  elapsed = time.time() - t0
  progress.close()
  lines = out.getvalue().splitlines()
  assert 1 <= len(lines) <= elapsed / 0.05 + 2
  assert lines[-1].startswith("epoch 1: step ") and "img/s" in lines[-1] and "ETA" in lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  config = lenet_fashion_mnist.get_config()
  config.num_train_steps = 240  # one epoch (234 steps) and a few more: two rows per split
  config.eval_batch_size = 1000
  workdir = str(tmp_path_factory.mktemp("run"))
  with optimized_compiles(), on_devices(1):  # 240 steps: run time, not compile time
    loop.train_and_evaluate(config, workdir)
  return config, workdir


def _assert_png(path, min_side=300):
  with Image.open(path) as im:
    assert im.format == "PNG"
    assert min(im.size) >= min_side and max(im.size) <= 4000


@needs_fashion_mnist
def test_curves_png_is_written_every_epoch(trained):
  _, workdir = trained
  _assert_png(os.path.join(workdir, "curves.png"))
  rows = report.read_metrics(workdir)
  assert [r["epoch"] for r in rows] == [1, 1, 2, 2]


@needs_fashion_mnist
def test_eval_mode_reproduces_the_logged_test_accuracy(trained):
  config, workdir = trained
  results = evaluate.evaluate_checkpoint(config, workdir, "latest")
  logged = [r for r in report.read_metrics(workdir) if r["split"] == "test"][-1]
  assert results["step"] == logged["step"] == 240
  assert results["num_examples"] == 10_000
  assert results["top1_accuracy"] == pytest.approx(logged["accuracy"], abs=1e-6)
  assert results["top1_accuracy"] <= results["top5_accuracy"] <= 1.0
  per_class = results["per_class_accuracy"]
  assert list(per_class) == list(sources.FASHION_MNIST_CLASSES)
  assert np.mean(list(per_class.values())) == pytest.approx(results["top1_accuracy"], abs=1e-6)
  _assert_png(results["confusion_matrix_png"])
  saved = json.load(open(os.path.join(workdir, "eval_step240.json")))
  assert np.sum(saved["confusion_matrix"]) == 10_000


@needs_fashion_mnist
def test_predict_agrees_with_the_evaluation_path(trained, tmp_path):
  config, workdir = trained
  test = sources.load("fashion_mnist", "test", download=False)
  paths = []
  for i in range(8):
    paths.append(str(tmp_path / f"{i}.png"))
    Image.fromarray(test.images[i, ..., 0]).save(paths[-1])
  results = predict.predict(workdir, paths, step="latest")
  # The evaluation path: the restored network on the same examples, preprocessed by the pipeline.
  parallel = evaluate.JitParallel(evaluate.jax.devices()[:1])
  state, _ = evaluate.restore_for_inference(config, workdir, "latest", parallel)
  logits = state.apply_fn({"params": state.params}, test.images[:8] / np.float32(255), train=False)
  want = [test.class_names[i] for i in np.argmax(logits, -1)]
  assert [top[0][0] for _, top in results] == want
  for _, top in results:
    probs = [p for _, p in top]
    assert len(top) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6


@pytest.mark.skipif(not os.path.exists(CIFAR_TARBALL), reason=f"{CIFAR_TARBALL} missing")
def test_predict_on_cifar_jpegs_agrees_with_the_evaluation_path(tmp_path, one_device):
  """A LeNet trained briefly on a CIFAR-10 JPEG folder; `python -m jaxcnn.predict` on some of
  its test files gives the classes of the model's argmax on the pipeline's eval batches."""
  import subprocess
  import sys
  from configs import default
  from jaxcnn.data import pipeline, preprocess
  from tests import launcher
  root = unpack_cifar10_jpeg(str(tmp_path), {"train": 40, "test": 6})
  config = default.get_config()
  config.update(model="lenet5_classic", dataset="imagefolder", data_dir=root, num_classes=10,
                image_size=32, train_preprocess="cifar", eval_preprocess="normalize",
                batch_size=40, eval_batch_size=40, num_epochs=3, learning_rate=3e-3,
                checkpoint_every_epochs=3, progress_every_secs=1e6)
  config.model_options.sparse_c3 = False  # fewer layers to initialise op by op
  workdir = str(tmp_path / "run")
  loop.train_and_evaluate(config, workdir)
  # The evaluation path: the checkpoint's network on the pipeline's evaluation batches.
  parallel = evaluate.JitParallel(evaluate.jax.devices()[:1])
  state, record = evaluate.restore_for_inference(config, workdir, "latest", parallel)
  assert tuple(record["class_names"]) == CIFAR_CLASSES  # kept with the checkpoint
  test = sources.load("imagefolder", "test", data_dir=root, config=config)
  fn = pipeline.make_preprocess(preprocess.get(config.eval_preprocess), config)
  want = []
  for batch in pipeline.eval_batches(test, global_batch_size=60, preprocess=fn):
    logits = state.apply_fn({"params": state.params, "batch_stats": state.batch_stats},
                            batch["image"], train=False)
    want.extend(np.argmax(logits, -1)[batch["mask"]].tolist())
  paths = sources._image_folder_files(root, "test", config)[0].tolist()  # the split's order
  chosen = list(range(0, 60, 3))  # two files of each class
  p = subprocess.run([sys.executable, "-m", "jaxcnn.predict", f"--workdir={workdir}",
                      "--step=latest", *[paths[i] for i in chosen]], cwd=launcher.ROOT,
                     env=launcher.environment(1), capture_output=True, text=True, timeout=120)
  assert p.returncode == 0, p.stderr
  lines = p.stdout.splitlines()
  got = {}
  for i, line in enumerate(lines):
    if not line.startswith(" "):  # a path, then its top-5 lines "  12.34%  name"
      got[line] = [l.split()[-1] for l in lines[i + 1:i + 6]]
  assert [got[paths[i]][0] for i in chosen] == [CIFAR_CLASSES[want[i]] for i in chosen]
  assert all(len(top) == 5 and set(top) <= set(CIFAR_CLASSES) for top in got.values())
  assert len({want[i] for i in chosen}) > 1  # a network that tells classes apart


@needs_fashion_mnist
def test_eval_and_predict_of_an_ema_run_use_its_averaged_parameters(tmp_path, one_device):
  """A LeNet trained with EMA, evaluated with a config that does not say so (the recipe as
  shipped): the state is built as the run trained it and evaluated with the averages."""
  config = lenet_fashion_mnist.get_config()
  config.num_train_steps, config.ema_decay, config.eval_batch_size = 60, 0.9, 2000
  workdir = str(tmp_path / "ema")
  with optimized_compiles():
    loop.train_and_evaluate(config, workdir)
  results = evaluate.evaluate_checkpoint(lenet_fashion_mnist.get_config(), workdir, "latest")
  logged = [r for r in report.read_metrics(workdir) if r["split"] == "test"][-1]
  assert results["top1_accuracy"] == pytest.approx(logged["accuracy"], abs=1e-6)

  parallel = evaluate.JitParallel(evaluate.jax.devices()[:1])
  state, _ = evaluate.restore_for_inference(lenet_fashion_mnist.get_config(), workdir, "latest",
                                            parallel)
  assert state.ema_params is not None
  test = sources.load("fashion_mnist", "test", download=False)
  images = test.images[:64] / np.float32(255)
  averaged = np.argmax(state.apply_fn({"params": state.ema_params}, images, train=False), -1)
  latest = np.argmax(state.apply_fn({"params": state.params}, images, train=False), -1)
  assert (averaged != latest).any()  # else this test could not tell them apart
  paths = []
  for i in range(64):
    paths.append(str(tmp_path / f"{i}.png"))
    Image.fromarray(test.images[i, ..., 0]).save(paths[-1])
  predicted = [top[0][0] for _, top in predict.predict(workdir, paths, step="latest")]
  assert predicted == [test.class_names[i] for i in averaged]
