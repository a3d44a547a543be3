"""drop_remainder=False: every example of an epoch is trained, the last partial batch padded to
the compiled shape and masked, so that it trains as its real examples alone would."""
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import linen as nn

from jaxcnn import models
from jaxcnn.data import pipeline, preprocess, sources
from jaxcnn.models import layers
from jaxcnn.models.batch_norm import BatchNorm
from jaxcnn.train import parallel as parallel_lib, steps
from jaxcnn.train.state import create_train_state, for_devices
from tests.conftest import needs_fashion_mnist, optimized_compiles

REAL, PADDED = 5, 16  # a last batch of 5 examples, padded to a batch of 16 (2 per device)


def test_an_epoch_is_every_example_once_with_the_last_batch_padded_and_masked():
  n, batch = 60_000, 256  # Fashion-MNIST's training set at the seed's batch size
  assert pipeline.steps_per_epoch(n, batch, drop_remainder=False) == 235
  assert pipeline.steps_per_epoch(n, batch) == 234
  # Each example's label is its index, so the batches show which examples they hold.
  split = sources.Split(np.zeros((n, 1, 1, 1), np.uint8), np.arange(n, dtype=np.int32),
                        tuple("ab"))
  fn = pipeline.make_preprocess(preprocess.get("to_float"),
                                ml_collections.ConfigDict(preprocess.DEFAULTS))
  kw = dict(global_batch_size=batch, seed=3, preprocess=fn, drop_remainder=False)
  it = pipeline.train_batches(split, start_step=0, **kw)
  epoch = [next(it) for _ in range(235)]
  assert all(b["label"].shape == (batch,) and b["image"].shape == (batch, 1, 1, 1) for b in epoch)
  assert [int(b["mask"].sum()) for b in epoch] == [batch] * 234 + [n - 234 * batch]
  real = np.concatenate([b["label"][b["mask"]] for b in epoch])
  np.testing.assert_array_equal(np.sort(real), np.arange(n))
  assert not epoch[-1]["mask"][96:].any()  # the padding comes after the real examples
  following = next(it)  # the next epoch starts with a whole batch
  assert following["mask"].all()
  # A run resumed at any step, also in the padded batch's group, reads what it would have.
  resumed = pipeline.train_batches(split, start_step=233, **kw)
  for want in epoch[233:] + [following]:
    got = next(resumed)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])
  grouped = next(pipeline.train_batches(split, start_step=232, group_size=4, **kw))
  assert grouped["mask"].shape == (3, batch)  # the epoch's last group: the rest of it
  np.testing.assert_array_equal(grouped["label"], np.stack([b["label"] for b in epoch[232:]]))


@needs_fashion_mnist
def test_the_fashion_mnist_recipe_trains_235_steps_an_epoch():
  from configs import lenet_fashion_mnist
  from jaxcnn.train import loop
  config = lenet_fashion_mnist.get_config()
  assert config.drop_remainder is False  # seed 000's DataLoader keeps the last batch
  assert loop.prepare(config).steps_per_epoch == 235


class _Tiny(nn.Module):
  """A convolution, batch norm, a dense layer: the parts a padded batch could leak into."""
  bn_axis_name: str | None = None
  conv: Any = nn.Conv
  norm: Any = BatchNorm

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = self.conv(8, (3, 3))(x)
    x = nn.relu(layers.batch_norm(self.norm, train, jnp.float32, "bn", self.bn_axis_name)(x))
    return nn.Dense(10)(x.mean((1, 2)))


def _examples(n, shape, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, *shape)).astype(np.float32),
          rng.integers(0, 10, n).astype(np.int32))


def _padded(images, labels, size, seed=1):
  """The examples, then other examples as padding up to `size`, with the mask."""
  pad_images, pad_labels = _examples(size - len(images), images.shape[1:], seed)
  return {"image": np.concatenate([images, pad_images]),
          "label": np.concatenate([labels, pad_labels]), "mask": np.arange(size) < len(images)}


def _one_step(parallel, model, shape, batch):
  """Params and batch statistics after one SGD step at lr 1 (the params move by the
  gradient), and the step's metrics."""
  state = create_train_state(model, optax.sgd(1.0), shape, seed=0)
  new, metrics = parallel.compile_train_step(steps.train_step)(
      parallel.put_state(state), parallel.put_batch(batch))
  new = parallel.host_state(new)
  return (jax.device_get({"params": new.params, "batch_stats": new.batch_stats}),
          {k: float(v) for k, v in parallel.metrics(metrics).compute().items()})


def _assert_same_step(got, want, tol):
  (tree, metrics), (want_tree, want_metrics) = got, want
  np.testing.assert_allclose(metrics["loss"], want_metrics["loss"], rtol=tol, atol=tol)
  assert metrics["accuracy"] == want_metrics["accuracy"]
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(tree), jax.tree.leaves(want_tree)):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("name, conv", [("tiny", "auto"), ("resnet20", "matmul")])
@optimized_compiles()
def test_a_padded_masked_batch_trains_as_its_real_examples_alone(name, conv, monkeypatch):
  """Loss, gradients and batch statistics of 5 examples padded to 8 equal those of the 5.

  ResNet-20 with the XLA formulations: the masked batch norm computes flax's formula, and
  oneDNN's batch norm (the unmasked path on the CPU) differs from it by float rounding that
  20 layers at batch 5 amplify to 1e-4. Compiled as training compiles (optimised): on an
  Intel Xeon (family 6, model 167) XLA's CPU code with most optimisations off (the suite's
  default, tests/conftest.py) gave ResNet-20's masked step a gradient 2e-3 away from the
  same step run op by op, in float64, or compiled optimised, which all agree to 1e-7.
  """
  monkeypatch.setenv("JAXCNN_CONV", conv)
  one = parallel_lib.JitParallel(jax.devices()[:1])
  model = for_devices(_Tiny() if name == "tiny" else models.create(name, num_classes=10), one)
  shape = (8, 8, 3) if name == "tiny" else models.input_shape(name)
  images, labels = _examples(REAL, shape)
  want = _one_step(one, model, shape, {"image": images, "label": labels})
  _assert_same_step(_one_step(one, model, shape, _padded(images, labels, 8)), want, 1e-6)


def test_synchronised_batch_norm_over_8_devices_counts_only_real_examples():
  """5 real examples in a batch of 16 over 8 devices (2 each: 2, 2, 1 and 0 real): with
  synchronised batch norm (jit over the Mesh, pmap with the BN axis) one step is that of the
  5 examples alone on one device."""
  shape = (8, 8, 3)
  images, labels = _examples(REAL, shape)
  one = parallel_lib.JitParallel(jax.devices()[:1])
  want = _one_step(one, _Tiny(), shape, {"image": images, "label": labels})
  batch = _padded(images, labels, PADDED)
  for parallel in (parallel_lib.JitParallel(jax.devices()),
                   parallel_lib.PmapParallel(jax.devices(), sync_batch_norm=True)):
    model = for_devices(_Tiny(bn_axis_name=parallel.bn_axis_name), parallel)
    _assert_same_step(_one_step(parallel, model, shape, batch), want, 1e-6)


def test_per_replica_batch_norm_ignores_what_the_padding_holds():
  """Per-replica batch norm (each device's own statistics; shard_map and pmap): devices that
  hold only padding leave the gradient and the running statistics as they are, whatever the
  padding is, and the loss is the mean over the 5 real examples."""
  shape = (8, 8, 3)
  images, labels = _examples(REAL, shape)
  for parallel in (parallel_lib.JitParallel(jax.devices(), per_replica_batch_norm=True),
                   parallel_lib.PmapParallel(jax.devices(), sync_batch_norm=False)):
    model = for_devices(_Tiny(), parallel)
    first, second = (_one_step(parallel, model, shape, _padded(images, labels, PADDED, seed))
                     for seed in (1, 2))
    _assert_same_step(first, second, 1e-6)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(first[0]))
    # Devices 0 and 1 hold 2 real examples each and device 2 one: the mean of the 5 losses.
    per_device = []
    for d, real in ((0, 2), (2, 2), (4, 1)):
      tree, metrics = _one_step(parallel_lib.JitParallel(jax.devices()[:1]), _Tiny(), shape,
                                {"image": images[d:d + real], "label": labels[d:d + real]})
      per_device.append(metrics["loss"] * real)
    np.testing.assert_allclose(first[1]["loss"], sum(per_device) / REAL, rtol=1e-6)
