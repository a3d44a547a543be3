"""Per-example preprocessing by name, as tf.data map functions on uint8 images.

Each function takes (image uint8 [H, W, C], seed int64[2]) and returns float32; the seed
makes any randomness a function of (run seed, epoch, example position) for exact resume.
"""
import tensorflow as tf

from jaxcnn.errors import UserError


def to_float(image, seed, config):
  """Scales to [0, 1] as torchvision's ToTensor does (the seeds' Fashion-MNIST input)."""
  del seed, config
  return tf.cast(image, tf.float32) / 255.0


def resize(image, seed, config):
  """Bilinear resize to config.image_size, then to [0, 1] (the seed's AlexNet at 224)."""
  del seed
  size = config.image_size
  image = tf.image.resize(tf.cast(image, tf.float32), (size, size), method="bilinear")
  return image / 255.0


PREPROCESSORS = {"to_float": to_float, "resize": resize}


def get(name: str):
  if name not in PREPROCESSORS:
    raise UserError(f"Unknown preprocessing {name!r}; valid names are: "
                    f"{', '.join(sorted(PREPROCESSORS))}.")
  return PREPROCESSORS[name]
