"""Top-5 classes of image files with a trained checkpoint.

    python -m jaxcnn.predict --workdir=DIR [--step=best|latest|N] IMAGE...

The config that trained the checkpoint (saved with it) gives the model and the
preprocessing; each image is decoded with the dataset's number of channels, brought to the
training input size when the preprocessing does not resize by itself, and preprocessed as
at evaluation.
"""
import json
import os
import sys

from absl import app, flags

from jaxcnn.errors import EXIT_USAGE, UserError

_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.")
_STEP = flags.DEFINE_string("step", "best", "Checkpoint: best, latest or a step number.")


def load_config(workdir: str):
  import ml_collections
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise UserError(f"{path} does not exist: --workdir must be a training run's directory.")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load_images(paths, image_shape, config):
  """Decoded, preprocessed float32 images [N, H, W, C] ready for the network."""
  import numpy as np
  from jaxcnn.data import pipeline, preprocess
  from jaxcnn.data.lazy_tf import tf as tensorflow
  tf = tensorflow()
  fn = pipeline.make_preprocess(preprocess.get(config.eval_preprocess), config)
  images = []
  for path in paths:
    if not os.path.isfile(path):
      raise UserError(f"Cannot read the image {path}: no such file.")
    try:
      raw = tf.io.decode_image(tf.io.read_file(path), channels=image_shape[-1],
                               expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      raise UserError(f"Cannot read the image {path}: {e.message.splitlines()[0]}") from None
    image = fn(raw, tf.zeros(2, tf.int64))
    if tuple(image.shape) != tuple(image_shape):  # e.g. 28x28 networks given other sizes
      raw = tf.cast(tf.image.resize(raw, image_shape[:2], antialias=True), tf.uint8)
      image = fn(raw, tf.zeros(2, tf.int64))
    images.append(np.asarray(image, np.float32))
  return np.stack(images)


def predict(workdir: str, paths, step: str = "best", k: int = 5):
  """[(path, [(class name, probability), ... k best])] for each image."""
  import jax
  import numpy as np
  from jaxcnn import evaluate
  from jaxcnn.train.parallel import JitParallel
  parallel = JitParallel(jax.devices()[:1])
  state, record = evaluate.restore_for_inference(load_config(workdir), workdir, step, parallel)
  config = evaluate.trained_config(record, workdir, load_config(workdir))
  images = load_images(paths, record["image_shape"], config)
  logits = state.apply_fn({"params": state.eval_params(), "batch_stats": state.batch_stats},
                          images, train=False)
  probs = np.asarray(jax.nn.softmax(logits.astype(np.float32)))
  names = record.get("class_names") or [str(i) for i in range(config.num_classes)]
  k = min(k, probs.shape[-1])
  results = []
  for path, p in zip(paths, probs):
    best = np.argsort(-p)[:k]
    results.append((path, [(names[i], float(p[i])) for i in best]))
  return results


def main(argv):
  paths = argv[1:]
  if not _WORKDIR.value or not paths:
    print("error: usage: python -m jaxcnn.predict --workdir=DIR IMAGE...", file=sys.stderr)
    sys.exit(EXIT_USAGE)
  try:
    from jaxcnn import compile_cache
    compile_cache.enable(load_config(_WORKDIR.value).get("compilation_cache", ""))
    for path, top in predict(_WORKDIR.value, paths, _STEP.value):
      print(path)
      for name, prob in top:
        print(f"  {prob:7.2%}  {name}")
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


if __name__ == "__main__":
  app.run(main)
