"""Where the examples come from: each dataset name maps to a loader of its splits.

A split is its images, int32 labels [N] and class names. The images are one of
  - a uint8 array [N, H, W, C] in host memory (MNIST, CIFAR, small image folders once decoded),
  - `EncodedImages`: image files (paths) or encoded bytes, decoded inside tf.data, so data of
    ImageNet size need not fit in memory,
  - `SyntheticImages`: random images generated on the fly (benchmarks),
  - `TfdsStream`: a tfds split read as a stream of records (ImageNet through tfds).
Every kind supports len() and [i] (one decoded uint8 image, e.g. to infer the input shape);
the random-access kinds also make a tf.data dataset of the images at given indices.

Dataset-specific options come from the config (fields in configs/default.py); `load`
works without one, with those fields' defaults.
"""
import dataclasses
import gzip
import os
import re
import socket
import struct
import urllib.parse

import numpy as np
from absl import logging

from jaxcnn.data.lazy_tf import as_written
from jaxcnn.data.lazy_tf import tf as _tf
from jaxcnn.errors import UserError

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")

_IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

# The file types tf.io.decode_image reads; other files in an image folder are ignored.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")

# Defaults of the dataset fields of configs/default.py, for callers without a config.
_DEFAULTS = {"holdout_fraction": 0.1, "holdout_seed": 0, "cache_decoded_mb": 4096,
             "synthetic_image_shape": (32, 32, 3), "synthetic_train_examples": 10_000,
             "synthetic_test_examples": 1_000, "num_classes": 10, "seed": 0}


def option(config, field: str):
  """config.field, or its default where the config (or an old saved one) lacks it."""
  if config is not None and field in config:
    return config[field]
  return _DEFAULTS[field]


@dataclasses.dataclass(frozen=True)
class Split:
  images: "np.ndarray | EncodedImages | SyntheticImages | TfdsStream"  # uint8 [N, H, W, C] when an array
  labels: np.ndarray | None  # int32 [N]; None for a TfdsStream (labels come with the records)
  class_names: tuple[str, ...]

  @property
  def num_examples(self) -> int:
    return len(self.images)

  @property
  def in_memory(self) -> bool:
    return isinstance(self.images, np.ndarray)


def decode(data, channels: int, jpeg: bool = False):
  """uint8 [H, W, C] from encoded JPEG/PNG/GIF/BMP bytes (a tf.string scalar).

  `jpeg`: the caller knows the bytes are JPEG (decode_jpeg is ~3x faster than the format
  sniffing of decode_image on small images); otherwise JPEG is still tried first.
  """
  tf = _tf()
  if jpeg:
    image = tf.io.decode_jpeg(data, channels=channels)
  else:
    image = tf.cond(tf.io.is_jpeg(data), lambda: tf.io.decode_jpeg(data, channels=channels),
                    lambda: tf.io.decode_image(data, channels=channels, expand_animations=False))
  image.set_shape([None, None, channels])
  return image


def tf_reason(error) -> str:
  """The gist of a TensorFlow error's message, without its op and device decorations."""
  text = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]", "", error.message.splitlines()[0])
  return " ".join(text.split()).rstrip(". ") or type(error).__name__


@dataclasses.dataclass(frozen=True, eq=False)
class EncodedImages:
  """Encoded images, decoded in tf.data's parallel map: file paths, or the bytes themselves."""
  paths: np.ndarray | None = None  # str [N]
  encoded: np.ndarray | None = None  # object (bytes) [N], when held in memory
  channels: int = 3
  jpeg: bool = False  # every image is a JPEG (decoded with the faster decode_jpeg)

  def __len__(self) -> int:
    return len(self.paths if self.paths is not None else self.encoded)

  def name(self, i: int) -> str:
    return str(self.paths[i]) if self.paths is not None else f"encoded image #{i}"

  def _read(self, item):
    tf = _tf()
    return tf.io.read_file(item) if self.paths is not None else item

  def __getitem__(self, i: int) -> np.ndarray:
    item = self.paths[i] if self.paths is not None else self.encoded[i]
    tf = _tf()
    try:
      return decode(self._read(tf.constant(item)), self.channels, self.jpeg).numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      raise UserError(f"Cannot decode the image {self.name(i)} ({tf_reason(e)}): replace "
                      f"or remove the file.") from None

  def dataset(self, indices: np.ndarray):
    """tf.data dataset of the decoded images at `indices` (in that order), decoded in parallel."""
    tf = _tf()
    data = self.paths if self.paths is not None else self.encoded
    ds = tf.data.Dataset.from_tensor_slices(data[indices].astype(object))
    return ds.map(as_written(lambda x: decode(self._read(x), self.channels, self.jpeg)),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def first_unreadable(self, indices) -> str | None:
    """The first of `indices` that cannot be decoded (to name the file behind a tf error)."""
    for i in indices:
      try:
        self[int(i)]
      except UserError as e:
        return str(e)
    return None


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticImages:
  """Uniform random uint8 images, image i a function of (seed, i): nothing is stored."""
  shape: tuple[int, ...]
  count: int
  seed: int = 0

  def __len__(self) -> int:
    return self.count

  def _make(self, i):
    tf = _tf()
    seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(i, tf.int64)])
    return tf.cast(tf.random.stateless_uniform(self.shape, seed, maxval=256, dtype=tf.int32),
                   tf.uint8)

  def __getitem__(self, i: int) -> np.ndarray:
    return self._make(i).numpy()

  def dataset(self, indices: np.ndarray):
    tf = _tf()
    return tf.data.Dataset.from_tensor_slices(indices.astype(np.int64)).map(
        as_written(self._make), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@dataclasses.dataclass(frozen=True, eq=False)
class TfdsStream:
  """A tfds split too big for memory (ImageNet): records read in (shuffled) file order.

  The pipeline reads it with `as_dataset(seed)`; the images stay encoded until its map.
  """
  builder: object  # tfds.core.DatasetBuilder
  split: str
  count: int
  channels: int = 3

  def __len__(self) -> int:
    return self.count

  def as_dataset(self, shuffle_seed: int | None = None, input_context=None):
    """tf.data dataset of {"image": encoded bytes, "label": int64}; files shuffled by the seed."""
    tfds = _tfds()
    read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed, input_context=input_context,
                                  try_autocache=False)
    ds = self.builder.as_dataset(split=self.split, shuffle_files=shuffle_seed is not None,
                                 read_config=read_config,
                                 decoders={"image": tfds.decode.SkipDecoding()})
    return ds.map(as_written(lambda ex: {"image": ex["image"], "label": ex["label"]}))

  def __getitem__(self, i: int) -> np.ndarray:
    example = next(iter(self.as_dataset().skip(i).take(1)))
    return decode(example["image"], self.channels).numpy()


# --- the MNIST family's IDX files ------------------------------------------------------------

def read_idx(path: str) -> np.ndarray:
  """Reads a gzipped IDX file (the MNIST family's format).

  Written by hand: tfds parses these files only inside its own download step.
  """
  with gzip.open(path, "rb") as f:
    zero, dtype_code, ndim = struct.unpack(">HBB", f.read(4))
    if zero != 0 or dtype_code != 0x08:
      raise UserError(f"{path} is not an unsigned-byte IDX file.")
    shape = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
    data = np.frombuffer(f.read(), dtype=np.uint8)
  if data.size != int(np.prod(shape)):
    raise UserError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {data.size}.")
  return data.reshape(shape)


def _has_idx_files(directory: str) -> bool:
  return all(os.path.exists(os.path.join(directory, f))
             for files in _IDX_FILES.values() for f in files)


def load_idx_split(directory: str, split: str, class_names) -> Split:
  images_file, labels_file = _IDX_FILES[split]
  images = read_idx(os.path.join(directory, images_file))[..., None]
  labels = read_idx(os.path.join(directory, labels_file)).astype(np.int32)
  if len(images) != len(labels):
    raise UserError(f"{directory}: {len(images)} {split} images but {len(labels)} labels.")
  return Split(images, labels, tuple(class_names))


# --- tensorflow-datasets ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TfdsSpec:
  """How one tfds dataset is read: its split names, and whether it is held in memory."""
  splits: dict  # our split ("train"/"test") -> tfds split
  kind: str  # "arrays": decoded into memory | "encoded": bytes in memory | "stream"
  how_to_get: str  # what to do when it is missing
  manual: bool = False  # prepared from files the user downloads (tfds's manual directory)


_TFDS = {
    "mnist": TfdsSpec({"train": "train", "test": "test"}, "arrays",
                      "run once with internet so tfds can download it, or point "
                      "--config.data_dir at the four *-ubyte.gz IDX files"),
    "cifar10": TfdsSpec({"train": "train", "test": "test"}, "arrays",
                        "run once with internet so tfds can download it, or read a copy as "
                        "JPEG files with --config.dataset=imagefolder "
                        "--config.data_dir=DIR (one folder per class)"),
    "cifar100": TfdsSpec({"train": "train", "test": "test"}, "arrays",
                         "run once with internet so tfds can download it"),
    "oxford_flowers102": TfdsSpec({"train": "train", "validation": "validation",
                                   "test": "test"}, "encoded",
                                  "run once with internet so tfds can download it"),
    "imagenet2012": TfdsSpec({"train": "train", "test": "validation",
                              "validation": "validation"}, "stream",
                             "download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
                             "from image-net.org into <data_dir>/downloads/manual/ (tfds's "
                             "manual-download directory) and run again; tfds then prepares it",
                             manual=True),
}


def _tfds():
  _tf()  # first: it hides the accelerators from TensorFlow before tfds runs any op
  import tensorflow_datasets as tfds
  return tfds


def _tfds_data_dir(data_dir: str | None) -> str:
  """tfds's data directory, as tfds resolves it (tfds.core.constants.DATA_DIR), without
  importing tfds: looking for a prepared copy then costs no TensorFlow import."""
  return (data_dir or os.environ.get("TFDS_DATA_DIR")
          or os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def _tfds_builder(name: str, data_dir: str | None, download: bool, manual: bool = False):
  """(the prepared tfds builder or None, why not): None if it is not and cannot be prepared.

  `manual`: the dataset is prepared from files the user put in tfds's manual directory
  (<data_dir>/downloads/manual), which needs no internet, so it is tried even without
  `download`.
  """
  root = _tfds_data_dir(data_dir)
  manual_dir = os.path.join(root, "downloads", "manual")
  has_manual = manual and os.path.isdir(manual_dir) and bool(os.listdir(manual_dir))
  if not download and not has_manual and not os.path.isdir(os.path.join(root, name)):
    return None, ""  # not prepared; checked first because tfds warns about absent folders
  tfds = _tfds()
  builder = tfds.builder(name, data_dir=data_dir or None)
  if builder.is_prepared():
    return builder, ""
  if not download and not has_manual:
    return None, ""
  if not has_manual and (unreachable := _unreachable_source(builder)):
    return None, unreachable
  try:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir) if manual else None)
  except Exception as e:  # offline, the source unreachable, manual files missing or damaged
    logging.warning("tfds could not prepare %s: %s", name, e)
    return None, "tfds: " + (str(e).strip().splitlines()[0] if str(e).strip()
                             else type(e).__name__)
  return builder, ""


def _unreachable_source(builder, timeout_secs: float = 5.0) -> str:
  """Why tfds cannot download `builder`'s files ("" if some host answers or none is listed).

  Written by hand: tfds retries an unreachable URL with back-off for minutes before it gives
  up; a connection attempt to each host of the dataset's listed URLs answers in seconds.
  """
  hosts = {(u.hostname, u.port or (443 if u.scheme == "https" else 80))
           for u in map(urllib.parse.urlparse, (builder.url_infos or {}))
           if u.scheme in ("http", "https") and u.hostname}
  reasons = []
  for host, port in sorted(hosts):
    try:
      socket.create_connection((host, port), timeout=timeout_secs).close()
      return ""
    except OSError as e:
      reasons.append(f"{host}: {e.strerror or e}")
  return "offline, cannot reach " + "; ".join(reasons) if reasons else ""


def _class_names(builder) -> tuple[str, ...]:
  return tuple(builder.info.features["label"].names)


def _tfds_split(name: str, split: str, data_dir: str | None, download: bool,
                kind: str = "arrays", manual: bool = False) -> Split | str | None:
  """The split from tfds if it is prepared (or can be prepared); else why not (or None)."""
  builder, why = _tfds_builder(name, data_dir, download, manual)
  if builder is None:
    return why or None
  tfds = _tfds()
  channels = builder.info.features["image"].shape[-1] or 3
  if kind == "arrays":  # decoded once into host memory, in batches (tfds's batch_size=-1
    # sizes its one batch from the metadata, which a partial or mocked copy lacks)
    images, labels = [], []
    for batch in tfds.as_numpy(builder.as_dataset(split=split, batch_size=10_000)):
      images.append(batch["image"])
      labels.append(batch["label"])
    if not images:
      raise UserError(f"The tfds copy of {name}/{split} holds no examples; prepare it again.")
    return Split(np.concatenate(images).astype(np.uint8),
                 np.concatenate(labels).astype(np.int32), _class_names(builder))
  ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
  if kind == "encoded":  # a few thousand images of varying size: keep the bytes in memory
    encoded, labels = [], []
    for example in tfds.as_numpy(ds):
      encoded.append(example["image"])
      labels.append(example["label"])
    encoded_array = np.empty(len(encoded), dtype=object)
    encoded_array[:] = encoded
    return Split(EncodedImages(encoded=encoded_array, channels=channels),
                 np.asarray(labels, np.int32), _class_names(builder))
  count = int(ds.cardinality())
  if count < 0:
    raise UserError(f"tfds reports no example count for {name}/{split}; prepare it again.")
  return Split(TfdsStream(builder, split, count, channels), None, _class_names(builder))


def _load_tfds(name: str):
  spec = _TFDS[name]

  def load_split(split: str, data_dir: str | None = None, download: bool = True,
                 config=None) -> Split:
    del config
    if split not in spec.splits:
      raise UserError(f"{name} has no split {split!r}; it has: {', '.join(spec.splits)}.")
    if name == "mnist" and data_dir and _has_idx_files(data_dir):
      return load_idx_split(data_dir, split, tuple(str(i) for i in range(10)))
    found = _tfds_split(name, spec.splits[split], data_dir, download, spec.kind, spec.manual)
    if not isinstance(found, Split):
      where = data_dir or "tfds's data directory"
      why = f" ({found.rstrip('.')})" if found else ""
      raise UserError(f"{name} was not found in {where}{why}: {spec.how_to_get}, or give "
                      f"--config.data_dir=DIR where tfds has prepared it.")
    return found

  load_split.__doc__ = f"{name} through tensorflow-datasets."
  return load_split


def load_fashion_mnist(split: str, data_dir: str | None = None, download: bool = True,
                       config=None) -> Split:
  """Fashion-MNIST: IDX files in `data_dir`, a prepared tfds copy, the Debian package, or tfds's download."""
  del config
  if data_dir and _has_idx_files(data_dir):
    return load_idx_split(data_dir, split, FASHION_MNIST_CLASSES)
  found = _tfds_split("fashion_mnist", split, data_dir, download=False)
  if not isinstance(found, Split) and _has_idx_files(DEBIAN_FASHION_MNIST):
    return load_idx_split(DEBIAN_FASHION_MNIST, split, FASHION_MNIST_CLASSES)
  if not isinstance(found, Split) and download:
    found = _tfds_split("fashion_mnist", split, data_dir, download=True)
  if not isinstance(found, Split):
    raise UserError(
        "Fashion-MNIST was not found: install the Debian package (`apt-get install -y "
        "dataset-fashion-mnist`, files in /usr/share/datasets/fashion-mnist) or run once "
        "with internet so tfds can download it (or point --config.data_dir at the four "
        "*-ubyte.gz files).")
  return found


# --- image folders ---------------------------------------------------------------------------

def _list_class_folder(root: str) -> dict[str, list[str]]:
  """{class name: sorted image paths} of a class-per-folder directory."""
  classes = sorted(d for d in os.listdir(root)  # hidden folders (.ipynb_checkpoints) are no class
                   if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
  found = {}
  for name in classes:
    folder = os.path.join(root, name)
    files = []
    for dirpath, _, filenames in os.walk(folder, followlinks=True):
      files.extend(os.path.join(dirpath, f) for f in filenames
                   if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith("."))
    found[name] = sorted(files)
  return found


_TEST_FOLDER_NAMES = ("test", "val", "validation")


def _holdout(listing: dict[str, list[str]], split: str, config) -> list[tuple[str, int]]:
  """(path, label) of `split` when a fixed-seed share of each class is held out as the test set."""
  fraction = float(option(config, "holdout_fraction"))
  if not 0.0 < fraction < 1.0:
    raise UserError(f"config.holdout_fraction={fraction} must lie strictly between 0 and 1 for "
                    f"an image folder without a test/ folder.")
  # Its own generator, seeded by config.holdout_seed only: the split never changes with
  # config.seed, so runs with different seeds are evaluated on the same images.
  rng = np.random.default_rng(int(option(config, "holdout_seed")))
  pairs = []
  for label, paths in enumerate(listing.values()):
    order = rng.permutation(len(paths))
    n_test = int(round(fraction * len(paths)))
    chosen = order[:n_test] if split == "test" else order[n_test:]
    pairs.extend((paths[i], label) for i in sorted(chosen))
  return pairs


def _image_folder_files(data_dir: str, split: str, config):
  """(paths, labels, class names) of a split of an image folder.

  Layouts: DIR/train/<class>/ with DIR/test/ (or val/, validation/) beside it; or only
  DIR/<class>/ (or only DIR/train/<class>/), of which config.holdout_fraction of each class,
  chosen with config.holdout_seed, is the test split.
  """
  if not data_dir or not os.path.isdir(data_dir):
    raise UserError(f"--config.data_dir={data_dir!r} is not a directory: for "
                    f"--config.dataset=imagefolder point it at a folder of class folders "
                    f"(DIR/<class>/*.jpg) or of train/ and test/ folders of class folders.")
  train_dir = os.path.join(data_dir, "train")
  test_dir = next((os.path.join(data_dir, d) for d in _TEST_FOLDER_NAMES
                   if os.path.isdir(os.path.join(data_dir, d))), None)
  if test_dir is not None and not os.path.isdir(train_dir):
    raise UserError(f"{data_dir} has {os.path.basename(test_dir)}/ but no train/ folder: put the "
                    f"training images in {train_dir}/<class>/.")
  root = train_dir if os.path.isdir(train_dir) else data_dir
  listing = _list_class_folder(root)
  class_names = tuple(listing)
  if not class_names:
    raise UserError(f"{root} has no class folders: an image folder holds one folder of images "
                    f"per class (e.g. {os.path.join(root, 'cat', '0001.jpg')}).")
  if not any(listing.values()):
    raise UserError(f"The image folder {root} holds no images ({', '.join(IMAGE_EXTENSIONS)}) "
                    f"in its class folders.")
  if test_dir is None:
    pairs = _holdout(listing, split, config)
  elif split == "train":
    pairs = [(p, label) for label, paths in enumerate(listing.values()) for p in paths]
  else:
    test_listing = _list_class_folder(test_dir)
    extra = sorted(set(test_listing) - set(class_names))
    if extra:
      raise UserError(f"{test_dir} has class folders that {train_dir} lacks "
                      f"({', '.join(extra)}): both need the same classes.")
    pairs = [(p, class_names.index(c)) for c, paths in test_listing.items() for p in paths]
    if not pairs:
      raise UserError(f"The test folder {test_dir} holds no images "
                      f"({', '.join(IMAGE_EXTENSIONS)}) in its class folders.")
  if not pairs:
    raise UserError(f"The {split} split of {root} is empty: config.holdout_fraction="
                    f"{option(config, 'holdout_fraction')} leaves it no images.")
  paths = np.array([p for p, _ in pairs])
  labels = np.array([label for _, label in pairs], np.int32)
  return paths, labels, class_names


def decode_all(encoded: EncodedImages, max_bytes: float) -> np.ndarray | None:
  """All images decoded into one uint8 array if they share a shape and fit in `max_bytes`.

  None where they do not (the split then stays encoded and is decoded every epoch).
  """
  first = encoded[0]
  if first.nbytes * len(encoded) > max_bytes:
    return None
  tf = _tf()
  indices = np.arange(len(encoded))

  def same_shape(image):  # dense batches (much faster than ragged ones), with a flag per image
    ok = tf.reduce_all(tf.shape(image) == first.shape)
    return tf.cond(ok, lambda: tf.reshape(image, first.shape),
                   lambda: tf.zeros(first.shape, tf.uint8)), ok

  ds = encoded.dataset(indices).map(as_written(same_shape), num_parallel_calls=tf.data.AUTOTUNE,
                                    deterministic=True).batch(1024).prefetch(1)
  out = np.empty((len(encoded),) + first.shape, np.uint8)
  done = 0
  it = iter(ds)
  while True:
    try:
      images, ok = next(it)
    except StopIteration:
      break
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      raise UserError(encoded.first_unreadable(indices[done:]) or
                      f"An image could not be decoded ({tf_reason(e)}).") from None
    if not ok.numpy().all():
      return None  # sizes differ: keep them encoded
    out[done:done + len(ok)] = images.numpy()
    done += len(ok)
  return out


def load_image_folder(split: str, data_dir: str | None = None, download: bool = True,
                      config=None) -> Split:
  """Class-per-folder images (`data_dir`): decoded into memory when they fit, else read per epoch.

  Class names are the sorted folder names (label i is the i-th); the checkpoint keeps them.
  """
  del download
  paths, labels, class_names = _image_folder_files(data_dir, split, config)
  jpeg = all(p.lower().endswith((".jpg", ".jpeg")) for p in paths)
  encoded = EncodedImages(paths=paths, channels=3, jpeg=jpeg)
  max_bytes = float(option(config, "cache_decoded_mb")) * 2**20
  images = decode_all(encoded, max_bytes) if max_bytes > 0 else None
  return Split(images if images is not None else encoded, labels, class_names)


# --- synthetic -------------------------------------------------------------------------------

def load_synthetic(split: str, data_dir: str | None = None, download: bool = True,
                   config=None) -> Split:
  """Random images of config.synthetic_image_shape and random labels (benchmarks)."""
  del data_dir, download
  shape = tuple(int(d) for d in option(config, "synthetic_image_shape"))
  count = int(option(config, f"synthetic_{split}_examples"))
  num_classes = int(option(config, "num_classes"))
  seed = int(option(config, "seed")) * 2 + (split == "test")
  labels = np.random.default_rng(seed).integers(0, num_classes, count).astype(np.int32)
  return Split(SyntheticImages(shape, count, seed), labels,
               tuple(str(i) for i in range(num_classes)))


# Name -> loader(split, data_dir, download, config).
LOADERS = {
    "fashion_mnist": load_fashion_mnist,
    **{name: _load_tfds(name) for name in _TFDS},
    "imagefolder": load_image_folder,
    "synthetic": load_synthetic,
}


def load(name: str, split: str, data_dir: str | None = None, download: bool = True,
         config=None) -> Split:
  """The `split` ("train" or "test") of dataset `name`; `config` supplies dataset options."""
  if name not in LOADERS:
    raise UserError(f"Unknown dataset {name!r}; valid names are: {', '.join(sorted(LOADERS))}.")
  if name == "synthetic" and split not in ("train", "test"):
    raise UserError(f"synthetic has no split {split!r}; it has: train, test.")
  return LOADERS[name](split, data_dir=data_dir, download=download, config=config)
