"""TensorFlow, imported on first use.

It is the input pipeline's engine for encoded images, tfds datasets and the preprocessings
without a NumPy twin (jaxcnn/data/preprocess.py); a run on data held in memory with a
preprocessing that has one never pays for its import (docs/speed.md, "Start-up").
"""
import functools


@functools.cache
def tf():
  import tensorflow
  # TensorFlow only feeds the input pipeline: keep it off the accelerators JAX needs. (Before
  # it runs any op: afterwards its devices can no longer be changed.)
  tensorflow.config.set_visible_devices([], "GPU")
  return tensorflow


def as_written(fn):
  """`fn` for tf.data's `map`, traced as written rather than through AutoGraph.

  tf.data rewrites every mapped function's Python source with AutoGraph by default, which
  costs a second or more at each start and buys nothing here: the preprocessing's control
  flow follows the config, never a tensor's value (a tensor used as a Python bool raises at
  tracing, so a function that needed AutoGraph would fail loudly, not silently differ).
  """
  return tf().autograph.experimental.do_not_convert(fn)
