"""Where the examples come from: each dataset name maps to a loader of its splits.

A split is held as uint8 images [N, H, W, C] and int32 labels [N] in host memory (the
datasets of the seeds fit), together with the class names.
"""
import dataclasses
import gzip
import os
import struct

import numpy as np

from jaxcnn.errors import UserError

DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")

_IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@dataclasses.dataclass(frozen=True)
class Split:
  images: np.ndarray  # uint8 [N, H, W, C]
  labels: np.ndarray  # int32 [N]
  class_names: tuple[str, ...]

  @property
  def num_examples(self) -> int:
    return len(self.labels)


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


def _tfds_split(name: str, split: str, data_dir: str | None, download: bool) -> Split | None:
  """The split from tfds if it is prepared (or, with `download`, can be prepared)."""
  import tensorflow_datasets as tfds
  root = data_dir or os.environ.get("TFDS_DATA_DIR") or tfds.core.constants.DATA_DIR
  if not download and not os.path.isdir(os.path.join(root, name)):
    return None  # not prepared; checked first because tfds warns about absent folders
  builder = tfds.builder(name, data_dir=data_dir or None)
  if not builder.is_prepared():
    if not download:
      return None
    try:
      builder.download_and_prepare()
    except Exception:  # offline, or the source is unreachable: the caller explains
      return None
  arrays = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
  names = builder.info.features["label"].names
  return Split(arrays["image"].astype(np.uint8), arrays["label"].astype(np.int32), tuple(names))


def load_fashion_mnist(split: str, data_dir: str | None = None, download: bool = True) -> Split:
  """Fashion-MNIST: IDX files in `data_dir`, a prepared tfds copy, the Debian package, or tfds's download."""
  if data_dir and _has_idx_files(data_dir):
    return load_idx_split(data_dir, split, FASHION_MNIST_CLASSES)
  found = _tfds_split("fashion_mnist", split, data_dir, download=False)
  if found is None and _has_idx_files(DEBIAN_FASHION_MNIST):
    return load_idx_split(DEBIAN_FASHION_MNIST, split, FASHION_MNIST_CLASSES)
  if found is None and download:
    found = _tfds_split("fashion_mnist", split, data_dir, download=True)
  if found is None:
    raise UserError(
        "Fashion-MNIST was not found: install the Debian package (`apt-get install -y "
        "dataset-fashion-mnist`, files in /usr/share/datasets/fashion-mnist) or run once "
        "with internet so tfds can download it (or point --config.data_dir at the four "
        "*-ubyte.gz files).")
  return found


# Name -> loader(split, data_dir, download). Later datasets register here.
LOADERS = {"fashion_mnist": load_fashion_mnist}


def load(name: str, split: str, data_dir: str | None = None, download: bool = True) -> Split:
  if name not in LOADERS:
    raise UserError(f"Unknown dataset {name!r}; valid names are: {', '.join(sorted(LOADERS))}.")
  return LOADERS[name](split, data_dir=data_dir, download=download)
