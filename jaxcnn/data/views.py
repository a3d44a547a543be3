"""The test protocols of the papers: which views of a test image the network sees.

    center       config.eval_preprocess's one view (a centre crop, or the whole 32x32 image)
    ten_crop     the four corner crops and the centre crop and their horizontal flips
                 (AlexNet, sec. 4.1; the 10-crop testing of ResNet's Table 3)
    dense        VGG's dense evaluation (sec. 3.2): the image rescaled so its shorter side is
                 Q and its flip, each through the network with its dense layers applied as
                 convolutions (the model's `dense=True`)
    multi_scale  dense at each Q of config.eval_scales (VGG's Table 4, ResNet's Table 4)

Every protocol but `center` makes each example a stack of views [V, H, W, C] (multi_scale:
one stack per scale, a tuple), and the eval step averages the views' softmax
(jaxcnn.train.steps.eval_logits). The views are tf.data map functions, like the
preprocessings of jaxcnn/data/preprocess.py, and normalise as they do.

ten_crop's source is config.eval_preprocess's: the central config.resize_size square of the
image rescaled so its shorter side is resize_size (center_crop, AlexNet's 256x256), or the
image itself zero-padded by config.crop_padding on each side (normalize and to_float, as the
CIFAR training crops); the crops are config.image_size squares.

dense keeps the central Q x Q square of the rescaled image, so that every view of a batch has
one shape: the whole image where it is square (CIFAR), the paper's uncropped image only then.
Q is config.eval_scales' one value, else resize_size (center_crop) or the image's own shorter
side.
"""
import functools
import inspect

from jaxcnn.data import preprocess
from jaxcnn.data.lazy_tf import tf as _tf
from jaxcnn.errors import UserError

PROTOCOLS = ("center", "ten_crop", "dense", "multi_scale")

# The protocols whose views go through the network's dense form.
DENSE = ("dense", "multi_scale")


def check(config) -> None:
  """A UserError for a protocol or scales the config cannot evaluate with."""
  protocol = config.eval_protocol
  if protocol not in PROTOCOLS:
    raise UserError(f"config.eval_protocol={protocol!r} is not one of {', '.join(PROTOCOLS)}.")
  if protocol == "ten_crop" and config.eval_preprocess not in ("center_crop", "normalize",
                                                               "to_float"):
    raise UserError(f"config.eval_protocol='ten_crop' crops from config.eval_preprocess's "
                    f"source, which {config.eval_preprocess!r} does not have: use center_crop "
                    f"(shorter side resize_size), normalize or to_float (padded by "
                    f"crop_padding).")
  scales = tuple(config.get("eval_scales", ()))
  if protocol == "multi_scale" and len(scales) < 2:
    raise UserError(f"config.eval_protocol='multi_scale' averages over several scales; "
                    f"config.eval_scales={scales} names fewer than two (VGG: (256, 384, 512)).")
  if protocol == "dense" and len(scales) > 1:
    raise UserError(f"config.eval_protocol='dense' evaluates at one scale, not "
                    f"config.eval_scales={scales}: use multi_scale to average several.")
  if any(int(q) < 1 for q in scales):
    raise UserError(f"config.eval_scales={scales} must be positive sizes.")


def check_network(config, model) -> None:
  """A UserError where the protocol needs a dense form that the network has not."""
  if config.eval_protocol in DENSE and (
      "dense" not in inspect.signature(type(model).__call__).parameters):
    raise UserError(f"config.eval_protocol={config.eval_protocol!r} applies the network's "
                    f"dense layers as convolutions, which {config.model!r} cannot (its head "
                    f"reads a map of a fixed size); VGG, AlexNet and ResNet can. Use center "
                    f"or ten_crop.")


def describe(config) -> str:
  """The protocol as the results name it: "center", "ten_crop", "dense Q=256",
  "multi_scale Q=256,384,512"."""
  protocol = config.get("eval_protocol", "center")
  scales = tuple(config.get("eval_scales", ()))
  if protocol in DENSE and scales:
    return f"{protocol} Q={','.join(str(int(q)) for q in scales)}"
  return protocol


def _five_crops(image, size: int):
  """Top-left, top-right, bottom-left, bottom-right and centre `size` squares."""
  tf = _tf()
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
             ((h - size) // 2, (w - size) // 2)]
  return [image[t:t + size, x:x + size] for t, x in corners]


def ten_crop(image, seed, config):
  """[10, image_size, image_size, C]: five crops, then the same five flipped."""
  tf = _tf()
  del seed
  size = preprocess.option(config, "image_size")
  if config.eval_preprocess == "center_crop":
    side = preprocess.option(config, "resize_size")
    if side < size:
      raise UserError(f"config.resize_size={side} is smaller than config.image_size={size}: "
                      f"ten_crop's crops come from the resize_size square.")
    source = preprocess.center_crop_to(preprocess.resize_shorter_side(image, side), side)
  else:
    pad = preprocess.option(config, "crop_padding")
    source = tf.pad(tf.cast(image, tf.float32), [[pad, pad], [pad, pad], [0, 0]])
  crops = _five_crops(source, size)
  views = tf.stack(crops + [tf.image.flip_left_right(c) for c in crops])
  return preprocess.normalize_rgb(views, config)


def _dense_views(image, scale: int | None, config):
  """[2, Q, Q, C]: the central square of the image rescaled to shorter side Q, and its flip."""
  tf = _tf()
  image = tf.cast(image, tf.float32)
  if scale is None:
    shape = tf.shape(image)
    scale = tf.minimum(shape[0], shape[1])
  else:
    image = preprocess.resize_shorter_side(image, scale)
  square = preprocess.center_crop_to(image, scale)
  return preprocess.normalize_rgb(tf.stack([square, tf.image.flip_left_right(square)]), config)


def _default_scale(config) -> int | None:
  if config.eval_preprocess == "center_crop":
    return preprocess.option(config, "resize_size")
  return None  # the image's own shorter side


def dense(image, seed, config):
  del seed
  scales = tuple(config.get("eval_scales", ()))
  return _dense_views(image, int(scales[0]) if scales else _default_scale(config), config)


def multi_scale(image, seed, config):
  """A tuple of dense views, one [2, Q, Q, C] stack per Q of config.eval_scales."""
  del seed
  return tuple(_dense_views(image, int(q), config) for q in config.eval_scales)


def for_config(config):
  """The evaluation's per-example function, bound to the config as pipeline.make_preprocess
  binds a preprocessing."""
  check(config)
  fn = {"center": preprocess.get(config.eval_preprocess), "ten_crop": ten_crop,
        "dense": dense, "multi_scale": multi_scale}[config.eval_protocol]
  return functools.partial(fn, config=config)
