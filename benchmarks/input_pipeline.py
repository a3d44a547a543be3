"""Input pipeline speed, next to the training speed it has to keep up with.

    python benchmarks/input_pipeline.py [--cifar_dir=DIR] [--batches=40] [--steps=3]
        [--models=resnet18,resnet50] [--model_batch=8] [--end_to_end_steps=24]

Prints, one line each:
  1. the pipeline alone (images/s, no model): the CIFAR-10 JPEG folder with `cifar`
     preprocessing, decoded into memory once (the default for data that fits) and decoded
     from the files every epoch;
  2. ImageNet-style JPEG decoding at 224: synthetic 500x375 JPEGs (about ImageNet's average
     size and file size), decoded every epoch, with `inception` and with `vgg` preprocessing;
  3. the training images/s of ResNet-18 and ResNet-50 (224x224, 1000 classes) on one batch
     already on the device, a few steps after compiling;
  4. end to end: ResNet-20 on the CIFAR-10 JPEG folder, steps/s fed by the pipeline (with
     prefetch to the device, as jaxcnn.train.loop does) against the same steps on a batch
     already in memory.
The CIFAR-10 folder is ../shared/data/cifar10-jpeg.tar.gz unpacked into a temporary directory
unless --cifar_dir points at an unpacked copy (the folder holding train/ and test/).
"""
import os
import shutil
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar.gz")

_CIFAR_DIR = flags.DEFINE_string("cifar_dir", None, "An unpacked CIFAR-10 JPEG folder.")
_BATCHES = flags.DEFINE_integer("batches", 40, "Timed batches per pipeline measurement.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed training steps per model after warm-up.")
_MODELS = flags.DEFINE_list("models", ["resnet18", "resnet50"], "ImageNet models to time.")
_MODEL_BATCH = flags.DEFINE_integer("model_batch", 8, "Batch of the ImageNet models.")
_E2E_STEPS = flags.DEFINE_integer("end_to_end_steps", 24,
                                  "Timed steps of each end-to-end run (rounds of 2).")
_JPEGS = flags.DEFINE_integer("synthetic_jpegs", 512, "Synthetic 500x375 JPEG files to make.")


def _config(**fields):
  from configs import default
  config = default.get_config()
  config.update(fields)
  return config


def _unpack(dest: str) -> str:
  with tarfile.open(TARBALL) as tar:
    tar.extractall(dest, filter="data")
  return os.path.join(dest, "cifar10-jpeg")


def _synthetic_jpegs(dest: str, count: int) -> str:
  """count 500x375 JPEGs (quality 90) in 10 class folders: smooth colour fields with noise,
  which compress to roughly ImageNet's 110 kB per file."""
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(0)
  for i in range(count):
    low = rng.uniform(0, 255, (1, 12, 16, 3)).astype(np.float32)
    image = tf.image.resize(low, (375, 500), method="bicubic")[0].numpy()
    image += rng.normal(0, 12, image.shape)
    folder = os.path.join(dest, f"class{i % 10}")
    os.makedirs(folder, exist_ok=True)
    data = tf.io.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90).numpy()
    with open(os.path.join(folder, f"{i:05d}.jpg"), "wb") as f:
      f.write(data)
  return dest


def pipeline_rate(split, preprocess_name: str, config, batch: int, batches: int) -> float:
  """Images/s of pipeline.train_batches alone, after two warm-up batches."""
  from jaxcnn.data import pipeline, preprocess
  fn = pipeline.make_preprocess(preprocess.get(preprocess_name), config)
  it = pipeline.train_batches(split, global_batch_size=batch, seed=0, start_step=0,
                              preprocess=fn, host_trains=True)
  for _ in range(2):
    next(it)
  t = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch / (time.perf_counter() - t)


def _train_setup(name: str, num_classes: int, shape, batch_fn=None):
  import jax
  import optax
  from jaxcnn import models
  from jaxcnn.train import steps
  from jaxcnn.train.parallel import JitParallel
  from jaxcnn.train.state import create_train_state, for_devices
  tx = optax.sgd(0.01, momentum=0.9)
  parallel = JitParallel(jax.devices()[:1])
  model = for_devices(models.create(name, num_classes=num_classes), parallel)
  # Initialised under jit: one compilation instead of one per operation.
  state = parallel.put_state(create_train_state(model, tx, shape, 0))
  return parallel, state, parallel.compile_train_step(steps.train_step)


def model_rate(name: str, batch: int, steps: int) -> tuple[float, float]:
  """(training images/s, compile seconds) on one synthetic batch already on the device."""
  import jax
  import numpy as np
  parallel, state, train = _train_setup(name, 1000, (224, 224, 3))
  rng = np.random.default_rng(0)
  data = parallel.put_batch({"image": rng.normal(size=(batch, 224, 224, 3)).astype(np.float32),
                             "label": rng.integers(0, 1000, batch).astype(np.int32)})
  t = time.perf_counter()
  train = train.lower(state, data).compile()
  compile_secs = time.perf_counter() - t
  state, m = train(state, data)  # warm-up
  jax.block_until_ready(m)
  t = time.perf_counter()
  for _ in range(steps):
    state, m = train(state, data)
  jax.block_until_ready(m)
  return steps * batch / (time.perf_counter() - t), compile_secs


def end_to_end(split, batch: int, steps: int) -> tuple[float, float]:
  """(steps/s fed by the pipeline, steps/s on one batch in memory) for ResNet-20 on `split`."""
  import jax
  from jaxcnn.data import pipeline, preprocess
  parallel, state, train = _train_setup("resnet20", 10, (32, 32, 3))
  fn = pipeline.make_preprocess(preprocess.cifar, _config(train_preprocess="cifar",
                                                          image_size=32))
  batches = pipeline.prefetch_to_device(
      pipeline.train_batches(split, global_batch_size=batch, seed=0, start_step=0,
                             preprocess=fn, host_trains=parallel.host_trains),
      parallel.put_batch)
  fixed = next(batches)
  train = train.lower(state, fixed).compile()

  def run(next_batch, n):
    nonlocal state
    t = time.perf_counter()
    for _ in range(n):
      state, m = train(state, next_batch())
    jax.block_until_ready(m)
    return time.perf_counter() - t

  run(lambda: fixed, 2)
  run(lambda: next(batches), 3)  # warm-up: the pipeline's buffers fill
  # Short alternating rounds, so that a change in the machine's load affects both alike.
  rounds = max(steps // 2, 1)
  real = memory = 0.0
  for _ in range(rounds):
    memory += run(lambda: fixed, 2)
    real += run(lambda: next(batches), 2)
  return 2 * rounds / real, 2 * rounds / memory


def main(argv):
  del argv
  import jax
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind} x {jax.device_count()}, "
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}", flush=True)
  tmp = tempfile.mkdtemp(prefix="jaxcnn_bench_")
  try:
    _run(tmp)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def _run(tmp: str):
  import numpy as np
  from jaxcnn.data import sources
  cifar_dir = _CIFAR_DIR.value
  if cifar_dir is None:
    t = time.perf_counter()
    cifar_dir = _unpack(tmp)
    print(f"unpacked the CIFAR-10 JPEG copy in {time.perf_counter() - t:.1f} s", flush=True)

  # 1. The CIFAR-10 JPEG folder alone.
  config = _config(train_preprocess="cifar", image_size=32)
  t = time.perf_counter()
  cached = sources.load("imagefolder", "train", data_dir=cifar_dir, config=config)
  load_secs = time.perf_counter() - t
  assert isinstance(cached.images, np.ndarray)
  rate = pipeline_rate(cached, "cifar", config, 256, _BATCHES.value)
  print(f"pipeline  CIFAR-10 JPEG folder, cifar preprocessing, decoded into memory once "
        f"({cached.num_examples} images in {load_secs:.1f} s = "
        f"{cached.num_examples / load_secs:,.0f} img/s): {rate:,.0f} img/s", flush=True)
  streamed = sources.load("imagefolder", "train", data_dir=cifar_dir,
                          config=_config(cache_decoded_mb=0))
  rate = pipeline_rate(streamed, "cifar", config, 256, _BATCHES.value)
  print(f"pipeline  CIFAR-10 JPEG folder, cifar preprocessing, decoded from the files every "
        f"epoch: {rate:,.0f} img/s", flush=True)

  # 2. ImageNet-style JPEGs at 224.
  folder = _synthetic_jpegs(os.path.join(tmp, "imagenet_like"), _JPEGS.value)
  sizes = [os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs]
  split = sources.load("imagefolder", "train", data_dir=folder,
                       config=_config(cache_decoded_mb=0, holdout_fraction=0.01))
  for name in ("inception", "vgg"):
    rate = pipeline_rate(split, name, _config(train_preprocess=name, image_size=224), 64,
                         max(_BATCHES.value // 4, 5))
    print(f"pipeline  ImageNet-style JPEGs (500x375, mean {np.mean(sizes) / 1e3:.0f} kB), "
          f"{name} preprocessing at 224: {rate:,.0f} img/s", flush=True)

  # 3. What the pipeline has to keep up with.
  for name in _MODELS.value:
    rate, compile_secs = model_rate(name, _MODEL_BATCH.value, _STEPS.value)
    print(f"training  {name}, 224x224, batch {_MODEL_BATCH.value}, data on the device: "
          f"{rate:,.1f} img/s (compiled in {compile_secs:.0f} s)", flush=True)

  # 4. End to end.
  for label, split in (("decoded into memory once", cached), ("decoded every epoch", streamed)):
    real, memory = end_to_end(split, 128, _E2E_STEPS.value)
    print(f"end-to-end  ResNet-20, CIFAR-10 JPEG folder ({label}), batch 128: "
          f"{real:.2f} steps/s with the pipeline, {memory:.2f} steps/s on a batch in memory "
          f"({real / memory:.1%})", flush=True)


if __name__ == "__main__":
  app.run(main)
