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
from tests.conftest import needs_fashion_mnist


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
