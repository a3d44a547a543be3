"""The papers' test protocols (jaxcnn/data/views.py): ten_crop, dense and multi_scale."""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import linen as nn

from configs import resnet20_cifar
from jaxcnn import evaluate, models
from jaxcnn.data import preprocess, views
from jaxcnn.errors import UserError
from jaxcnn.train import loop, steps


class TinyNet(nn.Module):
  """A conv and a dense layer on the flattened map: every pixel of every crop matters."""
  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Conv(4, (3, 3), strides=2)(x))
    return nn.Dense(5)(x.reshape(x.shape[0], -1))


def _config(**fields):
  config = ml_collections.ConfigDict(dict(
      eval_protocol="ten_crop", eval_preprocess="normalize", train_preprocess="cifar",
      image_size=16, crop_padding=3, resize_size=20, mean_rgb=(), std_rgb=(), eval_scales=()))
  config.update(fields)
  return config


def _images(shape, n=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


@pytest.mark.parametrize("eval_preprocess", ["normalize", "center_crop"])
def test_ten_crop_is_the_mean_of_the_ten_crops_softmax_one_by_one(eval_preprocess):
  config = _config(eval_preprocess=eval_preprocess)
  images = _images((18, 22, 3))
  net = TinyNet()
  variables = net.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  fn = views.for_config(config)
  stacks = np.stack([np.asarray(fn(im, np.zeros(2, np.int64))) for im in images])
  assert stacks.shape == (3, 10, 16, 16, 3)
  got = jax.nn.softmax(steps.eval_logits(net.apply, variables, jnp.asarray(stacks)))

  mean, std = preprocess.normalization(config)
  for image, probs in zip(images, np.asarray(got)):
    if eval_preprocess == "center_crop":  # shorter side 20, its central 20x20 square
      source = np.asarray(preprocess.center_crop_to(
          preprocess.resize_shorter_side(image, 20), 20))
    else:  # zero-padded by crop_padding
      source = np.pad(image.astype(np.float32), ((3, 3), (3, 3), (0, 0)))
    h, w = source.shape[:2]
    crops = [source[t:t + 16, x:x + 16] for t, x in
             [(0, 0), (0, w - 16), (h - 16, 0), (h - 16, w - 16), ((h - 16) // 2, (w - 16) // 2)]]
    crops += [c[:, ::-1] for c in crops]
    one_by_one = [jax.nn.softmax(net.apply(variables, ((c / 255 - mean) / std)[None]))[0]
                  for c in crops]
    np.testing.assert_allclose(probs, np.mean(one_by_one, axis=0), rtol=1e-5, atol=1e-6)


def test_views_averaged_keep_a_finite_loss_where_softmax_underflows():
  # An untrained network's extreme logits: the second class's softmax is e^-200, 0 in
  # float32, in every view. The averaged log-probabilities stay finite and exact.
  logits = np.array([[[0.0, -200.0, 5.0], [0.0, -230.0, -5.0]],   # example 0: two views
                     [[3.0, 1.0, -150.0], [2.0, 0.0, -160.0]]])   # example 1
  views_as_images = jnp.asarray(logits[:, :, None, None, :], jnp.float32)  # [B, V, 1, 1, K]
  got = steps.eval_logits(lambda v, x, train: x[:, 0, 0, :], {}, views_as_images)
  log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  expected = np.log(np.exp(log_softmax).mean(axis=1))  # float64: e^-200 is representable
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  labels = jnp.asarray([1, 2])
  assert np.all(np.isfinite(steps.cross_entropy(got, labels, 3)))


def _perturbed(variables, scale=0.01):
  """Random biases (and batch-norm vectors) on top of the initial ones: zero biases and ReLUs
  would hide a wrong head. The kernels are random already; drawing VGG's 128M weights again
  at the suite's XLA level costs seconds."""
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(jax.random.key(7), len(leaves))
  return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape, x.dtype)
                                   if x.ndim == 1 else x for x, k in zip(leaves, keys)])


@pytest.mark.parametrize("name, options, side", [("vgg11", {}, 224), ("alexnet", {}, 224),
                                                 ("vgg11_bn", {"head": "cifar"}, 32)])
def test_dense_head_on_the_training_size_is_the_ordinary_forward_pass(name, options, side):
  model = models.create(name, num_classes=10, **options)
  x = jax.random.uniform(jax.random.key(0), (1, side, side, 3))
  variables = _perturbed(jax.jit(model.init)(jax.random.key(1), x))
  ordinary = jax.jit(model.apply)(variables, x)
  dense = jax.jit(lambda v, x: model.apply(v, x, dense=True))(variables, x)
  assert float(jnp.abs(ordinary).max()) > 1e-3
  np.testing.assert_allclose(dense, ordinary, atol=1e-5)
  # A larger image gives a map of class scores, averaged: one score vector per image, which
  # is not what the ordinary pass (adaptive pool, or a larger flattened map) computes.
  wider = jax.random.uniform(jax.random.key(2), (1, side + 32, side + 64, 3))
  dense_wider = jax.jit(lambda v, x: model.apply(v, x, dense=True))(variables, wider)
  assert dense_wider.shape == (1, 10)
  if options.get("head") != "cifar":  # the cifar head's dense layer cannot read a larger map
    ordinary_wider = jax.jit(model.apply)(variables, wider)
    assert float(jnp.abs(dense_wider - ordinary_wider).max()) > 1e-4


def test_multi_scale_averages_dense_views_of_non_square_images():
  config = _config(eval_protocol="multi_scale", eval_scales=(24, 32))
  fn = views.for_config(config)
  stacks = [fn(im, np.zeros(2, np.int64)) for im in _images((30, 45, 3))]
  assert [tuple(s.shape) for s in stacks[0]] == [(2, 24, 24, 3), (2, 32, 32, 3)]
  batch = tuple(np.stack([np.asarray(s[i]) for s in stacks]) for i in range(2))
  model = models.create("resnet20", num_classes=10)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  logits = steps.eval_logits(model.apply, variables, batch, dense=True)
  each = [jax.nn.softmax(model.apply(variables, view, dense=True))
          for stack in batch for view in np.swapaxes(stack, 0, 1)]
  np.testing.assert_allclose(jnp.exp(logits), np.mean(each, axis=0), rtol=1e-5, atol=1e-6)


def test_protocols_a_config_or_network_cannot_use_are_one_clear_error():
  with pytest.raises(UserError, match="not one of center, ten_crop"):
    views.check(_config(eval_protocol="twelve_crop"))
  with pytest.raises(UserError, match="fewer than two"):
    views.check(_config(eval_protocol="multi_scale", eval_scales=(256,)))
  with pytest.raises(UserError, match="ten_crop.*'resize'"):
    views.check(_config(eval_preprocess="resize"))
  lenet = ml_collections.ConfigDict(dict(eval_protocol="dense", model="lenet5"))
  with pytest.raises(UserError, match="'lenet5' cannot"):
    views.check_network(lenet, models.create("lenet5", num_classes=10))


def test_training_and_eval_mode_evaluate_with_the_chosen_protocol(tmp_path, one_device):
  """The ResNet-20 recipe, its network one block a stage (ResNet-8: the same layers, a third
  of the compiling for each protocol's program), trained a step on synthetic CIFAR-sized
  data: its training evaluation uses ten_crop, and --mode=eval gives each protocol's
  results, named, in its own JSON."""
  config = resnet20_cifar.get_config()
  config.model_options.stage_sizes = (1, 1, 1)
  config.dataset = "synthetic"
  config.synthetic_train_examples = 16
  config.synthetic_test_examples = 20  # two batches of 16, the last one padded
  config.batch_size = config.eval_batch_size = 16
  config.num_train_steps = 1
  config.eval_protocol = "ten_crop"
  workdir = str(tmp_path)
  summary = loop.train_and_evaluate(config, workdir)
  results = {}
  for protocol, scales in [("center", ()), ("ten_crop", ()), ("dense", ()),
                           ("multi_scale", (32, 40))]:
    config.eval_protocol, config.eval_scales = protocol, scales
    results[protocol] = evaluate.evaluate_checkpoint(config, workdir, "latest")
    assert results[protocol]["num_examples"] == 20
  assert results["ten_crop"]["top1_accuracy"] == pytest.approx(summary["accuracy"], abs=1e-6)
  assert results["multi_scale"]["protocol"] == "multi_scale Q=32,40"
  saved = json.load(open(os.path.join(workdir, "eval_step1_ten_crop.json")))
  assert saved["protocol"] == "ten_crop"
  assert "protocol multi_scale Q=32,40" in evaluate.format_results(results["multi_scale"])
