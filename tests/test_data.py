import jax
import numpy as np
import pytest

from jaxcnn.data import pipeline, preprocess, sources
from tests.conftest import needs_fashion_mnist

TO_FLOAT = pipeline.make_preprocess(preprocess.to_float, None)


@needs_fashion_mnist
def test_offline_fashion_mnist_splits():
  for split, n in [("train", 60_000), ("test", 10_000)]:
    data = sources.load("fashion_mnist", split, download=False)
    assert data.images.shape == (n, 28, 28, 1)
    assert data.images.dtype == np.uint8 and data.labels.dtype == np.int32
    assert data.labels.min() == 0 and data.labels.max() == 9
    assert np.bincount(data.labels).tolist() == [n // 10] * 10  # balanced classes
    assert len(data.class_names) == 10


def test_missing_data_names_both_ways_to_get_it(monkeypatch, tmp_path):
  monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST", str(tmp_path / "none"))
  with pytest.raises(sources.UserError, match="apt-get install -y dataset-fashion-mnist.*tfds"):
    sources.load("fashion_mnist", "train", data_dir=str(tmp_path), download=False)


def _split(n: int) -> sources.Split:
  images = (np.arange(n, dtype=np.int64) % 256).astype(np.uint8).reshape(n, 1, 1, 1)
  return sources.Split(images, np.arange(n, dtype=np.int32), tuple("ab"))


@pytest.mark.parametrize("process_count", [1, 3])
def test_eval_batches_cover_every_example_once(process_count):
  split = _split(10_000)
  seen = []
  for p in range(process_count):
    for batch in pipeline.eval_batches(split, global_batch_size=297, preprocess=TO_FLOAT,
                                       process_index=p, process_count=process_count):
      assert batch["image"].shape[0] == 297 // process_count
      seen.extend(batch["label"][batch["mask"]].tolist())
  assert sorted(seen) == list(range(10_000))


def test_train_order_is_deterministic_and_resumable():
  split = _split(1000)
  kw = dict(global_batch_size=64, seed=3, preprocess=TO_FLOAT)
  full = pipeline.train_batches(split, start_step=0, **kw)
  first = [next(full)["label"] for _ in range(40)]  # crosses the epoch boundary (15 steps/epoch)
  resumed = pipeline.train_batches(split, start_step=22, **kw)
  for want in first[22:]:
    np.testing.assert_array_equal(next(resumed)["label"], want)
  # An epoch visits distinct examples; the next epoch is a different order.
  epoch0 = np.concatenate(first[:15])
  assert len(set(epoch0.tolist())) == 15 * 64
  assert not np.array_equal(first[0], first[15])


def test_host_shards_are_disjoint_and_form_the_global_batch():
  split = _split(1000)
  kw = dict(global_batch_size=64, seed=5, start_step=7, preprocess=TO_FLOAT)
  whole = next(pipeline.train_batches(split, **kw))["label"]
  parts = [next(pipeline.train_batches(split, process_index=p, process_count=4, **kw))["label"]
           for p in range(4)]
  np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_groups_of_batches_are_the_batches_grouped_from_each_epochs_start():
  split = _split(1000)  # 15 steps per epoch at 64
  kw = dict(global_batch_size=64, seed=3, preprocess=TO_FLOAT)
  singles = pipeline.train_batches(split, start_step=0, **kw)
  want = [next(singles)["label"] for _ in range(45)]
  for start, sizes in [(0, [4, 4, 4, 3] * 3),
                       (6, [2, 4, 3] + [4, 4, 4, 3] * 2)]:  # resumed mid-group
    groups = pipeline.train_batches(split, start_step=start, group_size=4, **kw)
    got = [next(groups)["label"] for _ in sizes]
    assert [len(g) for g in got] == sizes
    np.testing.assert_array_equal(np.concatenate(got), np.stack(want[start:]))


def _in_tf_data(fn):
  """`fn` without its NumPy twin: the pipeline then runs it in tf.data, as before the twins."""
  def tf_only(image, seed, config):
    return fn(image, seed, config)
  tf_only.batched = fn.batched
  return tf_only


@pytest.mark.parametrize("name, shape, fields", [
    ("to_float", (28, 28, 1), {}),
    ("to_float", (28, 28, 1), {"mean_rgb": (0.286,), "std_rgb": (0.353,)}),
    ("cifar", (32, 32, 3), {"train_preprocess": "cifar"}),
    ("cifar", (32, 32, 3), {"train_preprocess": "cifar", "random_flip": False,
                            "crop_padding": 2, "image_size": 30}),
    ("normalize", (32, 32, 3), {"train_preprocess": "cifar"}),
])
def test_numpy_twins_give_tf_datas_batches_to_the_bit(name, shape, fields):
  """Images in memory take the preprocessing's NumPy twin; a run resumed, grouped, sharded or
  evaluated sees exactly what tf.data made of them."""
  import ml_collections
  config = ml_collections.ConfigDict({**preprocess.DEFAULTS, "image_size": shape[0], **fields})
  rng = np.random.default_rng(0)
  split = sources.Split(rng.integers(0, 256, (203, *shape), dtype=np.uint8),
                        rng.integers(0, 10, 203).astype(np.int32), tuple("abcdefghij"))
  fn = preprocess.get(name)
  assert fn.in_numpy is not None
  twin, tf_data = (pipeline.make_preprocess(f, config) for f in (fn, _in_tf_data(fn)))
  assert pipeline.example_shape(split, twin) == pipeline.example_shape(split, tf_data)
  for kw in [dict(start_step=0), dict(start_step=5, group_size=4),
             dict(start_step=3, process_index=1, process_count=2)]:
    args = dict(global_batch_size=32, seed=7, **kw)
    got, want = (pipeline.train_batches(split, preprocess=f, **args) for f in (twin, tf_data))
    _assert_same_batches([next(got) for _ in range(8)], [next(want) for _ in range(8)])
  _assert_same_batches(
      *(list(pipeline.eval_batches(split, global_batch_size=48, preprocess=f))
        for f in (twin, tf_data)))


def _assert_same_batches(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert g.keys() == w.keys()
    for k in g:
      assert g[k].dtype == w[k].dtype and g[k].shape == w[k].shape
      np.testing.assert_array_equal(g[k], w[k])
