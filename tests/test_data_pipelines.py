"""Every dataset path and preprocessing of jaxcnn.data, on mocked, offline and JPEG data.

tfds datasets run through tfds.testing.mock_data; Fashion-MNIST from its Debian package;
the image-folder path from a few hundred files of ../shared/data/cifar10-jpeg.tar.gz.
"""
import os
import shutil
import tarfile

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from configs import default
from jaxcnn.data import pipeline, preprocess, sources
from jaxcnn.errors import UserError
from tests.conftest import needs_fashion_mnist

CIFAR_TARBALL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "..", "shared", "data", "cifar10-jpeg.tar.gz")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")
needs_cifar_jpeg = pytest.mark.skipif(not os.path.exists(CIFAR_TARBALL),
                                      reason=f"{CIFAR_TARBALL} missing")


def unpack_cifar10_jpeg(dest, per_class: dict[str, int]) -> str:
  """The first per_class[split] files of every class of the CIFAR-10 JPEG copy, unpacked in
  dest; returns dest/cifar10-jpeg (holding train/ and test/)."""
  counts = {}
  with tarfile.open(CIFAR_TARBALL) as tar:
    for member in tar:
      parts = member.name.split("/")
      if not member.isfile() or len(parts) != 4 or parts[1] not in per_class:
        continue
      key = (parts[1], parts[2])
      if counts.get(key, 0) < per_class[parts[1]]:
        counts[key] = counts.get(key, 0) + 1
        tar.extract(member, dest, filter="data")
  return os.path.join(dest, "cifar10-jpeg")


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
  if not os.path.exists(CIFAR_TARBALL):
    pytest.skip(f"{CIFAR_TARBALL} missing")
  return unpack_cifar10_jpeg(str(tmp_path_factory.mktemp("cifar")), {"train": 24, "test": 8})


def _config(**fields) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.update(fields)
  return config


def _fn(name, **fields):
  """The preprocessing `name` bound to a config; a training preprocessing is its own source."""
  if name in preprocess.SOURCE_NORMALIZATION:
    fields.setdefault("train_preprocess", name)
  return pipeline.make_preprocess(preprocess.get(name), _config(**fields))


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


# --- datasets --------------------------------------------------------------------------------

# name -> (kind of images, channels, classes, training preprocessing, its config fields)
TFDS_CASES = {
    "mnist": (np.ndarray, 1, 10, "to_float", {}),
    "cifar10": (np.ndarray, 3, 10, "cifar", {"image_size": 32}),
    "cifar100": (np.ndarray, 3, 100, "cifar", {"image_size": 32}),
    "oxford_flowers102": (sources.EncodedImages, 3, 102, "inception", {"image_size": 24}),
    "imagenet2012": (sources.TfdsStream, 3, 1000, "inception", {"image_size": 24}),
}


@pytest.fixture
def mock_tfds(monkeypatch):
  """tfds.testing.mock_data stands in for the download, so the dataset's hosts count as
  reachable (offline, sources would otherwise refuse before tfds's mocked download)."""
  monkeypatch.setattr(sources, "_unreachable_source", lambda builder: "")
  return tfds.testing.mock_data


@pytest.mark.parametrize("name", list(TFDS_CASES))
def test_tfds_datasets_through_mock_data(name, mock_tfds):
  kind, channels, classes, train_pp, fields = TFDS_CASES[name]
  config = _config(dataset=name, num_classes=classes, train_preprocess=train_pp,
                   eval_preprocess="center_crop" if train_pp == "inception" else "normalize",
                   resize_size=fields.get("image_size", 28), **fields)
  with mock_tfds(num_examples=40):
    train = sources.load(name, "train", download=True, config=config)
    test = sources.load(name, "test", download=True, config=config)
    assert isinstance(train.images, kind) and isinstance(test.images, kind)
    assert train.num_examples == test.num_examples == 40
    assert len(train.class_names) == classes
    first = train.images[0]
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[-1] == channels
    fn = pipeline.make_preprocess(preprocess.get(train_pp), config)
    batches = pipeline.train_batches(train, global_batch_size=16, seed=1, start_step=0,
                                     preprocess=fn)
    batch = next(batches)
    size = fields.get("image_size", 28)
    assert batch["image"].shape == (16, size, size, channels)
    assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32
    assert ((0 <= batch["label"]) & (batch["label"] < classes)).all()
    eval_fn = pipeline.make_preprocess(preprocess.get(config.eval_preprocess), config)
    seen = sum(int(b["mask"].sum()) for b in
               pipeline.eval_batches(test, global_batch_size=16, preprocess=eval_fn))
    assert seen == 40


def test_tfds_stream_resumes_and_shards_like_the_arrays(mock_tfds):
  config = _config(image_size=16)
  fn = pipeline.make_preprocess(preprocess.inception, config)
  with mock_tfds(num_examples=64):
    split = sources.load("imagenet2012", "train", download=True)
    kw = dict(global_batch_size=8, seed=3, preprocess=fn)
    full = _take(pipeline.train_batches(split, start_step=0, **kw), 12)  # 8 steps per epoch
    resumed = _take(pipeline.train_batches(split, start_step=5, **kw), 7)
    for want, got in zip(full[5:], resumed):
      np.testing.assert_array_equal(got["image"], want["image"])
      np.testing.assert_array_equal(got["label"], want["label"])
    parts = [next(pipeline.train_batches(split, start_step=5, process_index=p, process_count=2,
                                         **kw)) for p in range(2)]
    np.testing.assert_array_equal(np.concatenate([p["image"] for p in parts]),
                                  full[5]["image"])
    test = sources.load("imagenet2012", "test", download=True)
    eval_fn = pipeline.make_preprocess(preprocess.center_crop, _config(image_size=16,
                                                                       resize_size=16))
    seen = [sum(int(b["mask"].sum()) for b in pipeline.eval_batches(
        test, global_batch_size=24, preprocess=eval_fn, process_index=p, process_count=2))
            for p in range(2)]
    assert sum(seen) == 64  # 3 global batches, the last padded by 8


@pytest.mark.parametrize("name", ["cifar100", "imagenet2012"])
def test_missing_tfds_data_says_how_to_get_it(name, tmp_path):
  with pytest.raises(UserError, match="was not found in") as e:
    sources.load(name, "train", data_dir=str(tmp_path), download=False)
  assert ("manual" in str(e.value)) == (name == "imagenet2012")
  assert "(tfds: " not in str(e.value)


def test_imagenet_manual_files_are_prepared_without_download(tmp_path):
  # Files in the manual directory: tfds tries to prepare them (no internet needed) and
  # says why it could not.
  os.makedirs(tmp_path / "downloads" / "manual")
  (tmp_path / "downloads" / "manual" / "ILSVRC2012_img_val.tar").write_bytes(b"")
  with pytest.raises(UserError, match=r"imagenet2012 was not found in .* \(tfds: .*\): download "
                                      r"ILSVRC2012_img_train.tar"):
    sources.load("imagenet2012", "test", data_dir=str(tmp_path), download=False)


@needs_fashion_mnist
def test_fashion_mnist_and_mnist_idx_files_by_name():
  test = sources.load("fashion_mnist", "test", download=False)
  assert test.class_names == sources.FASHION_MNIST_CLASSES
  # The same IDX files through the mnist loader's data_dir path (as users bring MNIST).
  mnist = sources.load("mnist", "test", data_dir=sources.DEBIAN_FASHION_MNIST, download=False)
  np.testing.assert_array_equal(mnist.images, test.images)
  assert mnist.class_names == tuple(str(i) for i in range(10))
  fn = _fn("resize", image_size=64)
  batch = next(pipeline.eval_batches(test, global_batch_size=8, preprocess=fn))
  assert batch["image"].shape == (8, 64, 64, 1) and batch["mask"].all()
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_synthetic_dataset():
  config = _config(dataset="synthetic", synthetic_image_shape=(40, 30, 3),
                   synthetic_train_examples=50, synthetic_test_examples=7, num_classes=5)
  train = sources.load("synthetic", "train", config=config)
  test = sources.load("synthetic", "test", config=config)
  assert (train.num_examples, test.num_examples) == (50, 7)
  assert train.images[3].shape == (40, 30, 3) and train.images[3].dtype == np.uint8
  np.testing.assert_array_equal(train.images[3], train.images[3])  # a function of (seed, i)
  assert not np.array_equal(train.images[3], test.images[3])
  assert set(train.labels.tolist()) <= set(range(5)) and len(train.class_names) == 5
  batch = next(pipeline.train_batches(train, global_batch_size=10, seed=0, start_step=0,
                                      preprocess=_fn("to_float")))
  assert batch["image"].shape == (10, 40, 30, 3)


def test_unknown_dataset_lists_the_names():
  with pytest.raises(UserError, match="valid names are: cifar10, cifar100, fashion_mnist, "
                                      "imagefolder, imagenet2012, mnist, oxford_flowers102, "
                                      "synthetic"):
    sources.load("cifar-10", "train")


# --- image folders ---------------------------------------------------------------------------

def test_cifar_jpeg_folder_train_test_pair(cifar_dir):
  train = sources.load("imagefolder", "train", data_dir=cifar_dir)
  test = sources.load("imagefolder", "test", data_dir=cifar_dir)
  assert train.class_names == test.class_names == CIFAR_CLASSES
  assert isinstance(train.images, np.ndarray)  # same-size images: decoded into memory once
  assert train.images.shape == (240, 32, 32, 3) and test.images.shape == (80, 32, 32, 3)
  assert np.bincount(train.labels).tolist() == [24] * 10
  assert np.bincount(test.labels).tolist() == [8] * 10
  # The labels follow the folders.
  path = os.path.join(cifar_dir, "test", "cat", "0000.jpg")
  i = sources._image_folder_files(cifar_dir, "test", None)[0].tolist().index(path)
  assert test.class_names[test.labels[i]] == "cat"
  np.testing.assert_array_equal(test.images[i], np.asarray(tf.io.decode_jpeg(
      tf.io.read_file(path), channels=3)))


def test_cached_and_streamed_folders_give_the_same_batches(cifar_dir):
  cached = sources.load("imagefolder", "train", data_dir=cifar_dir)
  streamed = sources.load("imagefolder", "train", data_dir=cifar_dir,
                          config=_config(cache_decoded_mb=0))
  assert isinstance(streamed.images, sources.EncodedImages) and streamed.images.jpeg
  fn = _fn("cifar", image_size=32)
  kw = dict(global_batch_size=32, seed=4, start_step=5, preprocess=fn)
  for a, b in zip(_take(pipeline.train_batches(cached, **kw), 3),
                  _take(pipeline.train_batches(streamed, **kw), 3)):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_image_folder_holdout_is_fixed_by_its_own_seed(cifar_dir):
  folder = os.path.join(cifar_dir, "train")  # class folders only: a held-out fraction
  def files(split, **fields):
    paths, labels, names = sources._image_folder_files(folder, split, _config(**fields))
    return paths.tolist(), labels, names
  train, train_labels, names = files("train", holdout_fraction=0.25)
  test, test_labels, _ = files("test", holdout_fraction=0.25)
  assert names == CIFAR_CLASSES
  assert not set(train) & set(test) and len(set(train) | set(test)) == 240
  assert np.bincount(test_labels).tolist() == [6] * 10  # 25% of each class
  assert files("test", holdout_fraction=0.25, seed=7)[0] == test  # config.seed plays no part
  assert files("test", holdout_fraction=0.25, holdout_seed=1)[0] != test
  split = sources.load("imagefolder", "test", data_dir=folder,
                       config=_config(holdout_fraction=0.25))
  assert split.num_examples == 60
  # Only a train/ folder: the held-out share comes from it.
  only_train = os.path.join(os.path.dirname(cifar_dir), "only_train")
  shutil.copytree(folder, os.path.join(only_train, "train"))
  paths, _, _ = sources._image_folder_files(only_train, "test", _config(holdout_fraction=0.25))
  assert [p.replace(only_train + "/train", folder) for p in paths.tolist()] == test


def _folder(root, files: dict[str, bytes]) -> str:
  for name, data in files.items():
    os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    with open(os.path.join(root, name), "wb") as f:
      f.write(data)
  return str(root)


def _jpeg(value=0, size=(8, 8)) -> bytes:
  return tf.io.encode_jpeg(np.full((*size, 3), value, np.uint8)).numpy()


def test_empty_image_folders_are_clear_errors(tmp_path):
  with pytest.raises(UserError, match="is not a directory"):
    sources.load("imagefolder", "train", data_dir=str(tmp_path / "nowhere"))
  os.makedirs(tmp_path / "a")
  with pytest.raises(UserError, match=r"has no class folders: .*one folder of images per class"):
    sources.load("imagefolder", "train", data_dir=str(tmp_path / "a"))
  root = _folder(tmp_path / "b", {"cat/notes.txt": b"x", "dog/.hidden.jpg": _jpeg()})
  with pytest.raises(UserError, match=r"holds no images \(\.jpg"):
    sources.load("imagefolder", "train", data_dir=root)
  root = _folder(tmp_path / "c", {"train/cat/1.jpg": _jpeg(), "test/cat/1.txt": b""})
  with pytest.raises(UserError, match="test folder .* holds no images"):
    sources.load("imagefolder", "test", data_dir=root)
  root = _folder(tmp_path / "d", {"train/cat/1.jpg": _jpeg(), "test/cow/1.jpg": _jpeg()})
  with pytest.raises(UserError, match=r"class folders that .* lacks \(cow\)"):
    sources.load("imagefolder", "test", data_dir=root)
  root = _folder(tmp_path / "e", {"test/cat/1.jpg": _jpeg()})
  with pytest.raises(UserError, match="no train/ folder"):
    sources.load("imagefolder", "train", data_dir=root)


@pytest.mark.parametrize("cache_mb", [4096, 0])  # decoded at load, or in the pipeline
def test_an_unreadable_image_is_named(tmp_path, cache_mb):
  files = {f"train/{c}/{i:02d}.jpg": _jpeg(i) for c in "ab" for i in range(20)}
  files["train/b/13.jpg"] = b"not a jpeg"
  root = _folder(tmp_path, {**files, "test/a/0.jpg": _jpeg()})
  config = _config(cache_decoded_mb=cache_mb)
  with pytest.raises(UserError) as e:
    split = sources.load("imagefolder", "train", data_dir=root, config=config)
    assert cache_mb == 0  # a cached folder is decoded, and fails, in load
    _take(pipeline.train_batches(split, global_batch_size=4, seed=0, start_step=0,
                                 preprocess=_fn("to_float")), 10)
  bad = os.path.join(root, "train", "b", "13.jpg")
  assert str(e.value).startswith(f"Cannot decode the image {bad} (")
  assert str(e.value).endswith("): replace or remove the file.")


@needs_cifar_jpeg
def test_num_classes_that_do_not_match_the_folder(cifar_dir):
  from jaxcnn.train import loop
  config = _config(dataset="imagefolder", data_dir=cifar_dir, num_classes=7, batch_size=16,
                   eval_batch_size=16)
  with pytest.raises(UserError, match=r"num_classes=7 but imagefolder has 10 classes: set "
                                      r"--config.num_classes=10\."):
    loop.prepare(config)


# --- preprocessing ---------------------------------------------------------------------------

def _image(h, w, c=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def _bounds(fields):
  """The outputs' range: pixels 0 and 255 through the normalisation that `fields` selects."""
  mean, std = preprocess.normalization(_config(**fields))
  low = (0 - np.array(mean)) / np.array(std)
  high = (1 - np.array(mean)) / np.array(std)
  return low.min(), high.max()


# name -> (input HWC, config fields, output HWC, random)
AUGMENT_CASES = {
    "to_float": ((28, 28, 1), {}, (28, 28, 1), False),
    "resize": ((28, 28, 1), {"image_size": 224}, (224, 224, 1), False),
    "cifar": ((32, 32, 3), {"image_size": 32}, (32, 32, 3), True),
    "normalize": ((32, 32, 3), {"train_preprocess": "cifar"}, (32, 32, 3), False),
    "alexnet": ((375, 500, 3), {"image_size": 224, "resize_size": 256}, (224, 224, 3), True),
    "vgg": ((375, 500, 3), {"image_size": 224}, (224, 224, 3), True),
    "inception": ((375, 500, 3), {"image_size": 299}, (299, 299, 3), True),
    "center_crop": ((375, 500, 3), {"image_size": 224, "resize_size": 256,
                                    "train_preprocess": "vgg"}, (224, 224, 3), False),
}


@pytest.mark.parametrize("name", list(AUGMENT_CASES))
def test_preprocessing_shape_dtype_range_and_seed(name):
  shape, fields, out_shape, random = AUGMENT_CASES[name]
  fields = {"train_preprocess": name, **fields}
  fn = pipeline.make_preprocess(preprocess.get(name), _config(**fields))
  image = _image(*shape)
  outs = [np.asarray(fn(image, np.array(s, np.int64))) for s in ([1, 2], [1, 2], [1, 3], [9, 2])]
  assert outs[0].shape == out_shape and outs[0].dtype == np.float32
  low, high = _bounds(fields)
  # alexnet / vgg add a colour shift (PCA lighting): a few sigma of it beyond the pixel range.
  margin = 0.05 if name in ("alexnet", "vgg") else 1e-4
  assert low - margin <= outs[0].min() and outs[0].max() <= high + margin
  assert outs[0].std() > 0.1 * (high - low) / 4  # not collapsed
  np.testing.assert_array_equal(outs[0], outs[1])  # the same seed, the same output
  for other in outs[2:]:
    assert (not np.array_equal(outs[0], other)) == random


def test_cifar_parts_follow_their_fields():
  image = _image(32, 32)
  seed = np.array([0, 1], np.int64)
  plain = _fn("cifar", image_size=32, crop_padding=0, random_flip=False)(image, seed)
  np.testing.assert_allclose(plain, _fn("normalize", train_preprocess="cifar")(image, seed))
  mean, std = np.array(preprocess.CIFAR10_MEAN), np.array(preprocess.CIFAR10_STD)
  np.testing.assert_allclose(np.asarray(plain), (image / 255 - mean) / std, atol=1e-5)
  # With padding some seeds shift the crop: the zero padding shows as -mean/std at an edge.
  outs = [np.asarray(_fn("cifar", image_size=32, random_flip=False)(image,
                                                                     np.array([0, s], np.int64)))
          for s in range(20)]
  padded = -mean / std
  assert any(np.allclose(o[0, :, :], padded, atol=1e-5) or np.allclose(o[:, 0], padded, atol=1e-5)
             for o in outs)


def test_cifar_on_a_batch_equals_one_by_one_and_covers_every_crop():
  fn = _fn("cifar", image_size=32)
  images = np.stack([_image(32, 32, seed=i) for i in range(16)])
  seeds = np.stack([np.full(16, 3), np.arange(16)], 1)
  np.testing.assert_array_equal(np.asarray(fn(images, seeds)),
                                np.stack([fn(x, s) for x, s in zip(images, seeds)]))
  seeds = np.stack([np.full(2000, 3), np.arange(2000)], 1)
  tops = np.asarray(preprocess._draw(seeds, 0, 9))
  lefts = np.asarray(preprocess._draw(seeds, 1, 9))
  flips = np.asarray(preprocess._draw(seeds, 2, 2))
  assert np.bincount(tops, minlength=9).min() > 150 and np.bincount(lefts).min() > 150
  assert 0.45 < flips.mean() < 0.55 and np.corrcoef(tops, lefts)[0, 1] < 0.1


def test_pca_lighting_adds_one_colour_per_image():
  image = _image(300, 300)
  seed = np.array([5, 6], np.int64)
  lit = np.asarray(_fn("alexnet", pca_lighting_std=0.1)(image, seed))
  unlit = np.asarray(_fn("alexnet", pca_lighting_std=0.0)(image, seed))
  shift = (lit - unlit).reshape(-1, 3)
  np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-4)
  assert np.abs(shift[0]).max() > 1e-4


def test_vgg_fixed_scale_and_sizes_that_cannot_work():
  image = _image(375, 500)
  # S fixed at 256 (the paper's single-scale setting): every crop comes from the same resize.
  fixed = _fn("vgg", image_size=224, vgg_scale_range=(256, 256), random_flip=False,
              rgb_shift_std=0.0)
  resized = np.asarray(preprocess.resize_shorter_side(image, 256))
  mean = np.array(preprocess.IMAGENET_MEAN)
  for s in range(3):
    crop = np.asarray(fixed(image, np.array([0, s], np.int64))) + mean
    assert any(np.allclose(crop * 255, resized[y:y + 224, x:x + 224], atol=0.05)
               for y in range(256 - 224 + 1) for x in range(341 - 224 + 1)
               if np.isclose(crop[0, 0, 0] * 255, resized[y, x, 0], atol=0.05))
  with pytest.raises(UserError, match=r"vgg_scale_range=\(200, 512\) must be ordered and start "
                                      r"at or above config.image_size=224"):
    _fn("vgg", image_size=224, vgg_scale_range=(200, 512))(image, np.array([0, 0], np.int64))
  with pytest.raises(UserError, match="resize_size=128 is smaller than config.image_size=224"):
    _fn("center_crop", image_size=224, resize_size=128)(image, np.array([0, 0], np.int64))


def test_unknown_preprocessing_lists_the_names():
  with pytest.raises(UserError, match="valid names are: alexnet, center_crop, cifar, inception, "
                                      "normalize, resize, to_float, vgg"):
    preprocess.get("random_crop")


def test_evaluation_normalisation_follows_the_training_preprocessing():
  image = _image(300, 300)
  zero = np.zeros(2, np.int64)
  for train_pp, mean, std in [("vgg", preprocess.IMAGENET_MEAN, (1, 1, 1)),
                              ("inception", (0.5,) * 3, (0.5,) * 3)]:
    out = np.asarray(_fn("center_crop", train_preprocess=train_pp, image_size=256,
                         resize_size=256)(image, zero))
    raw = np.asarray(preprocess.center_crop_to(preprocess.resize_shorter_side(image, 256), 256))
    np.testing.assert_allclose(out, (raw / 255 - np.array(mean)) / np.array(std), atol=1e-5)
  custom = _fn("to_float", mean_rgb=(0.5,), std_rgb=(0.25,))(_image(4, 4, 1), zero)
  np.testing.assert_allclose(custom, (_image(4, 4, 1) / 255 - 0.5) / 0.25, atol=1e-6)


# --- order, resume, hosts, evaluation --------------------------------------------------------

def test_augmented_batches_are_a_function_of_seed_epoch_and_step(cifar_dir):
  split = sources.load("imagefolder", "train", data_dir=cifar_dir,
                       config=_config(cache_decoded_mb=0))  # decoded in the pipeline
  fn = _fn("cifar", image_size=32)
  kw = dict(global_batch_size=48, preprocess=fn)  # 5 steps per epoch
  full = _take(pipeline.train_batches(split, seed=0, start_step=0, **kw), 12)
  again = _take(pipeline.train_batches(split, seed=0, start_step=0, **kw), 12)
  resumed = _take(pipeline.train_batches(split, seed=0, start_step=3, **kw), 9)  # mid-epoch
  for want, a, b in zip(full[3:], again[3:], resumed):
    for key in ("image", "label"):
      np.testing.assert_array_equal(a[key], want[key])
      np.testing.assert_array_equal(b[key], want[key])
  other = next(pipeline.train_batches(split, seed=1, start_step=0, **kw))
  assert not np.array_equal(other["label"], full[0]["label"])
  # An epoch visits each example once (240 = 5 steps x 48).
  labels0 = np.concatenate([b["label"] for b in full[:5]])
  assert len(labels0) == 240 and np.bincount(labels0).tolist() == [24] * 10


@pytest.mark.parametrize("process_count", [2, 3])
def test_host_shards_are_disjoint_and_complete_over_an_epoch(process_count):
  n, batch = 1000, 96  # 10 steps per epoch, 40 examples left out of each epoch
  images = np.arange(n, dtype=np.int64).reshape(n, 1, 1, 1)
  split = sources.Split((images % 251).astype(np.uint8), np.arange(n, dtype=np.int32), ("a",))
  kw = dict(global_batch_size=batch, seed=2, start_step=10, preprocess=_fn("to_float"))
  whole = _take(pipeline.train_batches(split, **kw), 10)  # epoch 1
  shards = [_take(pipeline.train_batches(split, process_index=p, process_count=process_count,
                                         **kw), 10) for p in range(process_count)]
  seen = [np.concatenate([b["label"] for b in s]) for s in shards]
  for i in range(process_count):
    for j in range(i):
      assert not set(seen[i].tolist()) & set(seen[j].tolist())
  every = np.concatenate(seen)
  assert len(every) == len(set(every.tolist())) == 10 * batch
  for step in range(10):  # the hosts' shards side by side are the global batch
    np.testing.assert_array_equal(
        np.concatenate([s[step]["label"] for s in shards]), whole[step]["label"])


@pytest.mark.parametrize("process_count,batch", [(1, 64), (2, 64), (4, 36)])
def test_eval_padding_counts_every_folder_image_once(cifar_dir, process_count, batch):
  split = sources.load("imagefolder", "test", data_dir=cifar_dir,
                       config=_config(cache_decoded_mb=0))
  fn = _fn("normalize", train_preprocess="cifar")
  labels, images = [], []
  for p in range(process_count):
    for b in pipeline.eval_batches(split, global_batch_size=batch, preprocess=fn,
                                   process_index=p, process_count=process_count):
      assert b["image"].shape[0] == batch // process_count
      labels.append(b["label"][b["mask"]])
      images.append(b["image"][b["mask"]])
  assert sorted(np.concatenate(labels).tolist()) == sorted(split.labels.tolist())
  assert len(np.concatenate(images)) == split.num_examples == 80


def test_prefetch_to_device_keeps_order_and_runs_ahead():
  put = []
  out = pipeline.prefetch_to_device(iter(range(6)), lambda x: put.append(x) or x * 10, size=2)
  assert next(out) == 0 and put == [0, 1]  # the next one already on its way
  assert list(out) == [10, 20, 30, 40, 50]


def test_offline_download_fails_in_seconds_naming_the_host_and_the_local_flags(tmp_path):
  import socket
  import time
  try:  # this test is about a machine without internet
    socket.create_connection(("www.cs.toronto.edu", 443), timeout=3).close()
    pytest.skip("www.cs.toronto.edu is reachable from here")
  except OSError:
    pass
  t0 = time.time()
  with pytest.raises(UserError) as e:
    sources.load("cifar10", "train", data_dir=str(tmp_path), download=True)
  assert time.time() - t0 < 60  # tfds's own retries take minutes
  message = str(e.value)
  assert message.startswith(f"cifar10 was not found in {tmp_path} (offline, cannot reach "
                            f"www.cs.toronto.edu: ")
  assert "--config.dataset=imagefolder --config.data_dir=DIR" in message


def test_resize_antialias_shrinks_as_pil_does():
  """Noise shrunk 96 -> 24: with resize_antialias, PIL's antialiased bilinear resize (the
  Keras seeds' loading) within 1.5/255; without it, plain bilinear interpolation, which
  reads 2x2 of each 4x4 block, is far from it."""
  from PIL import Image
  image = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
  pil = np.asarray(Image.fromarray(image).resize((24, 24), Image.BILINEAR), np.float32) / 255
  seed = np.zeros(2, np.int64)
  smooth = np.asarray(_fn("resize", image_size=24, resize_antialias=True)(image, seed))
  sampled = np.asarray(_fn("resize", image_size=24)(image, seed))
  assert np.abs(smooth - pil).max() < 1.5 / 255
  assert np.abs(sampled - pil).mean() > 15 / 255
