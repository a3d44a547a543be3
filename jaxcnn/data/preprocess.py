"""Per-example preprocessing by name, as tf.data map functions on uint8 images.

Each function takes (image uint8 [H, W, C], seed int64[2], config) and returns float32
[image_size, image_size, C] (to_float, normalize: the image's own size). All randomness is
a function of `seed`, which the pipeline derives from (run seed, epoch, example position): a
resumed run sees exactly the augmentations an uninterrupted one would. The ImageNet-style
ones use stateless tf.random ops; `cifar` hashes the seed, so that it can also take whole
batches [B, H, W, C] with seeds [B, 2] (the `batched` ones: the pipeline maps them over
batches of same-size images, with the same result per example).

TensorFlow is imported when a function first runs. `to_float`, `normalize` and `cifar` also
have a NumPy twin (`fn.in_numpy`, batches only) giving the same values to the bit, which the
pipeline uses for images held in memory: such runs never import TensorFlow.

Every choice is a config field (configs/default.py); a config that lacks one (an old saved
config.json) gets the default below. Normalisation, `(x / 255 - mean_rgb) / std_rgb`, uses
config.mean_rgb / config.std_rgb, or when those are empty the statistics that the *training*
preprocessing's source uses, so that the evaluation preprocessing always matches training.
"""

import numpy as np

from jaxcnn.data.lazy_tf import tf as _tf
from jaxcnn.errors import UserError

# ImageNet RGB statistics on the [0, 1] scale. MEAN is the VGG paper's mean RGB
# (123.68, 116.779, 103.939) / 255; STD the usual torchvision values.
IMAGENET_MEAN = (0.485, 0.458, 0.408)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# AlexNet's "PCA lighting": eigenvalues and eigenvectors (columns) of the covariance of the
# ImageNet training set's RGB pixel values, on the [0, 1] scale. The paper (Krizhevsky et al.
# 2012, sec. 4.1) does not print them; these are the values every reimplementation uses
# (fb.resnet.torch, torchvision's references, Caffe's) computed on the same data.
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009),
              (-0.5808, -0.0045, -0.8140),
              (-0.5836, -0.6948, 0.4203))

# The defaults of the preprocessing fields in configs/default.py.
DEFAULTS = {
    "image_size": 224,
    "resize_size": 256,
    "resize_antialias": False,
    "crop_padding": 4,
    "random_flip": True,
    "pca_lighting_std": 0.1,
    "vgg_scale_range": (256, 512),
    "rgb_shift_std": 0.1,
    "crop_area_range": (0.08, 1.0),
    "crop_aspect_range": (0.75, 4.0 / 3.0),
    "mean_rgb": (),
    "std_rgb": (),
    "train_preprocess": "to_float",
}

# The normalisation each training preprocessing's source uses: (mean, std) on [0, 1].
SOURCE_NORMALIZATION = {
    "to_float": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "resize": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "cifar": (CIFAR10_MEAN, CIFAR10_STD),  # per-channel mean/std (torchvision's CIFAR recipes)
    "alexnet": (IMAGENET_MEAN, (1.0, 1.0, 1.0)),  # mean subtraction
    "vgg": (IMAGENET_MEAN, (1.0, 1.0, 1.0)),  # "subtracting the mean RGB value"
    "inception": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1], as TF-slim's Inception
}


def option(config, field: str):
  if config is not None and field in config:
    return config[field]
  return DEFAULTS[field]


def normalization(config):
  """(mean, std) per channel on the [0, 1] scale: the config's, or the training source's."""
  mean, std = tuple(option(config, "mean_rgb")), tuple(option(config, "std_rgb"))
  source = SOURCE_NORMALIZATION.get(option(config, "train_preprocess"),
                                    SOURCE_NORMALIZATION["to_float"])
  return (mean or source[0]), (std or source[1])


def _scale_and_offset(config, channels: int):
  """(scale, offset) per channel with x * scale + offset == (x / 255 - mean) / std, or None
  where the normalisation is x / 255 alone."""
  mean, std = normalization(config)
  mean, std = mean[:channels], std[:channels]  # grayscale: the first channel's statistics
  if all(m == 0 for m in mean) and all(d == 1 for d in std):
    return None
  return ([1.0 / (255.0 * d) for d in std], [-m / d for m, d in zip(mean, std)])


def _normalize(image, config):
  """float32 pixels on [0, 255] -> (x / 255 - mean) / std, per channel (of images [..., H, W, C])."""
  tf = _tf()
  channels = image.shape[-1] or len(normalization(config)[0])
  affine = _scale_and_offset(config, channels)
  if affine is None:
    return image / 255.0
  # As x * scale + offset over rows of W * C values: broadcasting along an inner axis of 3
  # channels is several times slower.
  scale, offset = (tf.constant(v, tf.float32) for v in affine)
  shape = tf.shape(image)
  rows = tf.reshape(image, [-1, shape[-2] * channels])
  rows = rows * tf.tile(scale, [shape[-2]]) + tf.tile(offset, [shape[-2]])
  return tf.reshape(rows, shape)


def normalize_rgb(images, config):
  """float32 images [..., H, W, C] on [0, 255], normalised as every preprocessing here does."""
  return _normalize(images, config)


def _require(ok: bool, message: str) -> None:
  """A config that cannot work stops with one sentence, before any data flows."""
  if not ok:
    raise UserError(message)


def _at_least(field: str, config, size: int) -> None:
  _require(option(config, field) >= size,
           f"config.{field}={option(config, field)} is smaller than config.image_size={size}: "
           f"the crop must fit in the resized image.")


def _seeds(seed, n: int):
  """n independent stateless seeds from the example's seed."""
  tf = _tf()
  return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=n))


def _flip(image, seed, config):
  tf = _tf()
  if option(config, "random_flip"):
    return tf.image.stateless_random_flip_left_right(image, seed)
  return image


def _random_crop(image, size: int, seed):
  tf = _tf()
  return tf.image.stateless_random_crop(image, (size, size, tf.shape(image)[-1]), seed)


def resize_shorter_side(image, size):
  """Isotropic bilinear (antialiased) resize so that the shorter side is `size`; float32 out."""
  tf = _tf()
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  scale = tf.cast(size, tf.float32) / tf.minimum(h, w)
  new = (tf.maximum(1, tf.cast(tf.round(h * scale), tf.int32)),
         tf.maximum(1, tf.cast(tf.round(w * scale), tf.int32)))
  return tf.image.resize(tf.cast(image, tf.float32), new, method="bilinear", antialias=True)


def center_crop_to(image, size: int):
  tf = _tf()
  shape = tf.shape(image)
  top, left = (shape[0] - size) // 2, (shape[1] - size) // 2
  return image[top:top + size, left:left + size]


def _pca_lighting(image, seed, std: float):
  """AlexNet's colour augmentation: add eigvec @ (alpha * eigval) to every pixel, alpha ~ N(0, std).

  `image` is on [0, 255]; the eigenvalues are for [0, 1], hence the scaling.
  """
  tf = _tf()
  if not std:
    return image
  alpha = tf.random.stateless_normal((3,), seed, stddev=std)
  shift = tf.linalg.matvec(tf.constant(PCA_EIGVEC), alpha * tf.constant(PCA_EIGVAL))
  return image + 255.0 * shift[:image.shape[-1]]


# --- the preprocessings ----------------------------------------------------------------------


def to_float(image, seed, config):
  """Scales to [0, 1] as torchvision's ToTensor does (the seeds' Fashion-MNIST input); then
  config.mean_rgb / std_rgb if set."""
  tf = _tf()
  del seed
  return _normalize(tf.cast(image, tf.float32), config)


def resize(image, seed, config):
  """Bilinear resize to config.image_size square (the seed's Fashion-MNIST at 224 for
  AlexNet), then as to_float. config.resize_antialias: a shrinking resize averages over
  the pixels each output pixel covers, as PIL's (the Keras seeds' image loading) does; no
  effect when enlarging."""
  tf = _tf()
  del seed
  size = option(config, "image_size")
  image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear",
                          antialias=bool(option(config, "resize_antialias")))
  return _normalize(image, config)


# splitmix64's constants: the golden-ratio increment, then the finaliser's shifts and factors.
_GOLDEN = 0x9e3779b97f4a7c15
_MIX = ((30, 0xbf58476d1ce4e5b9), (27, 0x94d049bb133111eb), (31, None))


def _mix(x):
  """splitmix64's finaliser on uint64 tensors: a well-spread hash, elementwise."""
  tf = _tf()
  for shift, factor in _MIX:
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(shift, tf.uint64)))
    if factor is not None:
      x = x * tf.constant(factor, tf.uint64)
  return x


def _draw(seeds, stream: int, n: int):
  """int32 [B] uniform in [0, n), a hash of each row of seeds [B, 2] and `stream`.

  Elementwise, so one draw is the same whether its example is alone or in a batch (the
  stateless tf.random ops take one seed per call, and would tie a draw to its batch).
  """
  tf = _tf()
  seeds = tf.cast(seeds, tf.uint64)
  golden = tf.constant(_GOLDEN, tf.uint64)
  h = _mix(_mix(seeds[:, 0] + golden * tf.constant(stream + 1, tf.uint64)) + seeds[:, 1])
  return tf.cast(h % tf.cast(n, tf.uint64), tf.int32)


def _check_crop(h: int, w: int, config) -> None:
  size, pad = option(config, "image_size"), option(config, "crop_padding")
  _require(min(h, w) + 2 * pad >= size,
           f"config.image_size={size} is larger than the {h}x{w} images padded by "
           f"config.crop_padding={pad}: use the images' size (cifar preprocessing) or "
           f"another preprocessing.")


def cifar(image, seed, config):
  """CIFAR training (He et al. 2016, sec. 4.2): zero-pad config.crop_padding pixels on each
  side, random config.image_size crop, random horizontal flip, per-channel mean/std.

  Takes one image [H, W, C] with its seed [2], or a batch [B, H, W, C] with seeds [B, 2]:
  per-example work costs more than the augmentation of a 32x32 image, so the pipeline
  applies it to whole batches of same-size images, with the same result per example.
  """
  tf = _tf()
  image = tf.convert_to_tensor(image)
  if image.shape.rank == 3:
    return cifar(image[None], tf.reshape(seed, (1, 2)), config)[0]
  size = option(config, "image_size")
  pad = option(config, "crop_padding")
  h, w = image.shape[1], image.shape[2]
  if h is not None and w is not None:
    _check_crop(h, w, config)
  image = tf.pad(image, [[0, 0], [pad, pad], [pad, pad], [0, 0]])  # zeros, before normalising
  shape = tf.shape(image)
  top = _draw(seed, 0, shape[1] - size + 1)
  left = _draw(seed, 1, shape[2] - size + 1)
  steps = tf.range(size)
  cols = left[:, None] + steps
  if option(config, "random_flip"):
    flip = tf.cast(_draw(seed, 2, 2), tf.bool)
    cols = tf.where(flip[:, None], left[:, None] + size - 1 - steps, cols)
  image = tf.gather(image, top[:, None] + steps, axis=1, batch_dims=1)  # rows [B, size]
  image = tf.gather(image, cols, axis=2, batch_dims=1)  # columns [B, size]
  return _normalize(tf.cast(image, tf.float32), config)


def normalize(image, seed, config):
  """Evaluation of 32x32 data (CIFAR): only the training preprocessing's normalisation."""
  tf = _tf()
  del seed
  return _normalize(tf.cast(image, tf.float32), config)


def alexnet(image, seed, config):
  """AlexNet (Krizhevsky et al. 2012, sec. 2 and 4.1): shorter side to config.resize_size,
  its central square, a random config.image_size crop, flip, PCA lighting noise
  (config.pca_lighting_std, the paper's 0.1), mean subtraction."""
  _at_least("resize_size", config, option(config, "image_size"))
  crop_seed, flip_seed, light_seed = _seeds(seed, 3)
  size = option(config, "resize_size")
  image = center_crop_to(resize_shorter_side(image, size), size)
  image = _random_crop(image, option(config, "image_size"), crop_seed)
  image = _flip(image, flip_seed, config)
  image = _pca_lighting(image, light_seed, option(config, "pca_lighting_std"))
  return _normalize(image, config)


def vgg(image, seed, config):
  """VGG (Simonyan & Zisserman 2015, sec. 3.1): isotropic rescale to a smallest side S drawn
  uniformly from config.vgg_scale_range (S fixed when both ends are equal), random
  config.image_size crop, flip, random RGB colour shift (the AlexNet PCA shift the paper
  cites, config.rgb_shift_std), mean-RGB subtraction."""
  tf = _tf()
  scale_seed, crop_seed, flip_seed, shift_seed = _seeds(seed, 4)
  low, high = (int(s) for s in option(config, "vgg_scale_range"))
  _require(option(config, "image_size") <= low <= high,
           f"config.vgg_scale_range=({low}, {high}) must be ordered and start at or above "
           f"config.image_size={option(config, 'image_size')} (the paper: (256, 512), or S "
           f"fixed at 256 or 384).")
  scale = tf.random.stateless_uniform((), scale_seed, minval=low, maxval=high + 1,
                                      dtype=tf.int32)
  image = resize_shorter_side(image, scale)
  image = _random_crop(image, option(config, "image_size"), crop_seed)
  image = _flip(image, flip_seed, config)
  image = _pca_lighting(image, shift_seed, option(config, "rgb_shift_std"))
  return _normalize(image, config)


def inception(image, seed, config):
  """Inception / GoogLeNet (Szegedy et al. 2015, sec. 6): a random crop covering
  config.crop_area_range of the area with aspect ratio in config.crop_aspect_range,
  resized to config.image_size, flip, scaled to [-1, 1]."""
  tf = _tf()
  box_seed, flip_seed = _seeds(seed, 2)
  image = tf.convert_to_tensor(image)
  size = option(config, "image_size")
  begin, box_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=box_seed,
      min_object_covered=0.0, aspect_ratio_range=tuple(option(config, "crop_aspect_range")),
      area_range=tuple(option(config, "crop_area_range")), max_attempts=10,
      use_image_if_no_bounding_boxes=True)
  channels = image.shape[-1]
  image = tf.slice(image, begin, box_size)  # the whole image if no box fits in 10 attempts
  image.set_shape([None, None, channels])
  image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear",
                          antialias=True)
  image = _flip(image, flip_seed, config)
  return _normalize(image, config)


def center_crop(image, seed, config):
  """Evaluation: shorter side to config.resize_size, the central config.image_size square,
  the training preprocessing's normalisation."""
  del seed
  _at_least("resize_size", config, option(config, "image_size"))
  image = resize_shorter_side(image, option(config, "resize_size"))
  return _normalize(center_crop_to(image, option(config, "image_size")), config)


# --- NumPy twins: batches [B, H, W, C] uint8 with seeds [B, 2] ------------------------------
# The same operations in the same order as the TensorFlow versions above, so the same float32
# values to the bit (tests/test_data.py compares them).


def _normalize_numpy(images, config):
  affine = _scale_and_offset(config, images.shape[-1])
  if affine is None:
    return images / np.float32(255.0)
  # As _normalize, over rows of W * C values (NumPy too is slow along an inner axis of 3).
  width = images.shape[-2]
  scale, offset = (np.tile(np.asarray(v, np.float32), width) for v in affine)
  rows = images.reshape(-1, width * images.shape[-1]) * scale
  rows += offset
  return rows.reshape(images.shape)


def _to_float_numpy(images, seeds, config):
  del seeds
  return _normalize_numpy(images.astype(np.float32), config)


def _mix_numpy(x):
  for shift, factor in _MIX:
    x = x ^ (x >> np.uint64(shift))
    if factor is not None:
      x = x * np.uint64(factor)  # wraps modulo 2**64, as tf.uint64 does
  return x


def _draw_numpy(seeds, stream: int, n: int):
  seeds = seeds.astype(np.uint64)
  increment = np.uint64(_GOLDEN * (stream + 1) % 2**64)
  h = _mix_numpy(_mix_numpy(seeds[:, 0] + increment) + seeds[:, 1])
  return (h % np.uint64(n)).astype(np.int32)


def _cifar_numpy(images, seeds, config):
  _check_crop(images.shape[1], images.shape[2], config)
  size, pad = option(config, "image_size"), option(config, "crop_padding")
  images = np.pad(images, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
  top = _draw_numpy(seeds, 0, images.shape[1] - size + 1)
  left = _draw_numpy(seeds, 1, images.shape[2] - size + 1)
  flips = (_draw_numpy(seeds, 2, 2).astype(bool) if option(config, "random_flip")
           else np.zeros(len(images), bool))
  crops = np.empty((len(images), size, size, images.shape[-1]), np.float32)
  for i, (t, l, flip) in enumerate(zip(top, left, flips)):  # slices: faster than a gather
    crop = images[i, t:t + size, l:l + size]
    crops[i] = crop[:, ::-1] if flip else crop
  return _normalize_numpy(crops, config)


# These take a batch of same-size images [B, H, W, C] with seeds [B, 2] as well as one
# image, with the same result per example; the pipeline maps them over batches.
for _fn in (to_float, resize, cifar, normalize):
  _fn.batched = True
# The pipeline runs these instead on batches held in memory.
to_float.in_numpy = _to_float_numpy
normalize.in_numpy = _to_float_numpy  # the same operations: a cast, then the normalisation
cifar.in_numpy = _cifar_numpy

PREPROCESSORS = {"to_float": to_float, "resize": resize, "cifar": cifar, "normalize": normalize,
                 "alexnet": alexnet, "vgg": vgg, "inception": inception,
                 "center_crop": center_crop}


def get(name: str):
  if name not in PREPROCESSORS:
    raise UserError(f"Unknown preprocessing {name!r}; valid names are: "
                    f"{', '.join(sorted(PREPROCESSORS))}.")
  return PREPROCESSORS[name]
