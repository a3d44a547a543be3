"""Batching: deterministic training order, host shards, and padded, masked evaluation.

Training order is a function of (seed, epoch) only, and a batch's place in it of the step:
a run resumed at any step reads exactly the batches an uninterrupted run would. Each host
takes its contiguous slice of every global batch, so the union over hosts is the global
batch a single process would see. Each example's augmentation is seeded by (seed, epoch,
position in the epoch), so a resumed run also sees the same augmentations.

Splits whose images are random-access (arrays, encoded files, synthetic) are permuted
exactly; a `TfdsStream` (ImageNet through tfds) is read with its files shuffled and a
shuffle buffer, both seeded by (seed, epoch), and each host still takes its slice of every
global batch (so every host reads, but decodes only its share of, the records).

Speed: images held in memory whose preprocessing has a NumPy twin (to_float, normalize,
cifar: `in_numpy` in jaxcnn/data/preprocess.py) are preprocessed with it, a whole batch (or
group of batches) at a time, without TensorFlow, which such runs then never import. Encoded
images are decoded and preprocessed one by one in tf.data's parallel map; other
preprocessings of images in memory run in tf.data a batch at a time where they can (resize).
`prefetch_to_device` then keeps the next batches' host-to-device copies in flight while a
step runs.
"""
import collections
import functools
from typing import Callable, Iterable, Iterator

import numpy as np

from jaxcnn.data import sources
from jaxcnn.data.lazy_tf import as_written
from jaxcnn.data.lazy_tf import tf as _tf
from jaxcnn.data.sources import Split
from jaxcnn.errors import UserError

Batch = dict[str, np.ndarray]

# Images held in a TfdsStream's shuffle buffer (encoded, about 110 kB each for ImageNet).
STREAM_SHUFFLE_BUFFER = 16_384


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _epoch_seed(seed: int, epoch: int) -> int:
  return seed * 1_000_003 + epoch


def _example_seeds(seed: int, epoch: int, positions: np.ndarray) -> np.ndarray:
  """One stateless-random seed pair per example, from (seed, epoch, position in epoch)."""
  return np.stack([np.full_like(positions, _epoch_seed(seed, epoch)), positions], axis=1)


def _options(host_trains: bool):
  """tf.data's options; `host_trains`: the host's cores also run the training step (the
  platform is the CPU), so tf.data keeps to fewer threads than its defaults."""
  tf = _tf()
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_optimization.map_parallelization = True
  if host_trains:
    # Parallel over elements only: a multi-threaded op would spin threads that the training
    # step needs. No autotuning (AUTOTUNE parallelism then means one call per core): its
    # optimisation thread made deleting an exhausted iterator (every epoch's end) block the
    # training loop for seconds while the step kept the cores busy (docs/speed.md).
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
  return options


def _images(split: Split, indices: np.ndarray):
  """uint8 images at `indices` (tf.data), decoded in parallel where the split holds them encoded."""
  tf = _tf()
  if isinstance(split.images, np.ndarray):
    return tf.data.Dataset.from_tensor_slices(split.images[indices])
  return split.images.dataset(indices)


def _batched(preprocess) -> bool:
  """Whether the preprocessing also takes whole batches (preprocess.cifar and the like)."""
  return getattr(getattr(preprocess, "func", preprocess), "batched", False)


def _numpy_twin(split: Split, preprocess) -> Callable | None:
  """The preprocessing's NumPy twin bound as `preprocess` is, where the split's images are an
  array in memory and the preprocessing has one; else None (tf.data then does the work)."""
  twin = getattr(getattr(preprocess, "func", preprocess), "in_numpy", None)
  if twin is None or not isinstance(split.images, np.ndarray):
    return None
  if isinstance(preprocess, functools.partial):
    return functools.partial(twin, *preprocess.args, **preprocess.keywords)
  return twin


def example_shape(split: Split, preprocess) -> tuple[int, ...]:
  """The shape of one preprocessed example of `split` (its first)."""
  seeds = np.zeros((1, 2), np.int64)
  if (twin := _numpy_twin(split, preprocess)) is not None:
    return tuple(int(d) for d in twin(split.images[:1], seeds).shape[1:])
  return tuple(int(d) for d in preprocess(split.images[0], seeds[0]).shape)


def zeros_batch(split: Split, preprocess, batch_size: int):
  """Zeros shaped as `batch_size` preprocessed examples of `split` (to compile a step for
  them): an array, or the tuple of arrays of a preprocessing that returns several."""
  if _numpy_twin(split, preprocess) is not None:
    return np.zeros((batch_size, *example_shape(split, preprocess)), np.float32)
  example = preprocess(split.images[0], np.zeros(2, np.int64))
  return _tf().nest.map_structure(
      lambda x: np.zeros((batch_size, *x.shape), np.float32), example)


def _numpy_elements(split: Split, indices, seeds, preprocess, batch_size: int, group_size: int = 1,
                    offset: int = 0, mask=None) -> Iterator[Batch]:
  """What `_preprocessed_batches` (and `_grouped`) make of whole batches of `indices`, from
  images in memory with the preprocessing's NumPy twin: a group of batches is preprocessed
  in one call and split along a new leading axis."""
  num_batches = len(indices) // batch_size
  if group_size == 1:
    spans = [(b, 1) for b in range(num_batches)]
  else:  # `_grouped`'s groups: the rest of the resumed group first, the last one short
    head = -offset % group_size
    starts = ([0] if head else []) + list(range(head, num_batches, group_size))
    ends = starts[1:] + [num_batches]
    spans = [(a, e - a) for a, e in zip(starts, ends) if e > a]
  for first, count in spans:
    at = slice(first * batch_size, (first + count) * batch_size)
    shape = (count, batch_size) if group_size > 1 else (batch_size,)
    chosen = indices[at]
    batch = {"image": preprocess(split.images[chosen], seeds[at]), "label": split.labels[chosen]}
    if mask is not None:
      batch["mask"] = mask[at]
    yield {k: v.reshape(*shape, *v.shape[1:]) for k, v in batch.items()}


def _preprocessed_batches(split: Split, indices, seeds, preprocess, batch_size: int,
                          mask=None, drop_remainder=False):
  """Batches {image, label[, mask]} of the examples at `indices`, each example preprocessed
  with its seed.

  Same-size images in memory with a batch-capable preprocessing are preprocessed a batch
  at a time (per-example work would cost more than a 32x32 crop); the rest one by one, in
  parallel (decoding included). A tf.data dataset.
  """
  tf = _tf()
  extra = () if mask is None else (mask,)

  def example(x, rest):
    return {"image": preprocess(x, rest[1]), "label": rest[0],
            **({"mask": rest[2]} if mask is not None else {})}

  if (isinstance(split.images, np.ndarray) and _batched(preprocess) and
      (drop_remainder or len(indices) % batch_size == 0)):
    # Sliced into whole batches here: tf.data then handles one element per batch.
    n = len(indices) // batch_size
    whole = lambda a: a[:n * batch_size].reshape(n, batch_size, *a.shape[1:])  # noqa: E731
    ds = tf.data.Dataset.from_tensor_slices(
        (whole(split.images[indices]), tuple(whole(a) for a in
                                             (split.labels[indices], seeds, *extra))))
    return ds.map(as_written(example), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  labels_seeds = tf.data.Dataset.from_tensor_slices((split.labels[indices], seeds, *extra))
  ds = tf.data.Dataset.zip(_images(split, indices), labels_seeds)
  ds = ds.map(as_written(example), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size, drop_remainder=drop_remainder)


def _read(ds, split: Split, indices: np.ndarray | None, examples_per_element: int,
          host_trains: bool) -> Iterator[Batch]:
  """Yields ds's elements; a file that cannot be decoded stops it with its name (UserError)."""
  tf = _tf()
  it = ds.with_options(_options(host_trains)).as_numpy_iterator()
  done = 0  # examples read
  while True:
    try:
      batch = next(it)
    except StopIteration:
      return
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
      # tf's error does not say which file. The order is deterministic, so the culprit is in
      # the batch being made (fused map-and-batch may run a little ahead): decode those files.
      if isinstance(split.images, sources.EncodedImages) and indices is not None:
        found = split.images.first_unreadable(
            indices[done:done + 4 * examples_per_element])
        if found:
          raise UserError(found) from None
      raise
    done += batch["label"].size
    yield batch


def _grouped(ds, group_size: int, offset: int):
  """Groups of `group_size` consecutive batches (a leading axis), aligned to the epoch's first
  step: a run resumed `offset` steps into the epoch starts with the rest of its group, and
  the epoch's last group may be short."""
  if group_size == 1:
    return ds
  head = -offset % group_size
  grouped = ds.skip(head).batch(group_size)
  return ds.take(head).batch(head).concatenate(grouped) if head else grouped


def steps_per_epoch(num_examples: int, global_batch_size: int, drop_remainder: bool = True) -> int:
  """Training steps in an epoch: whole batches only, or with the last partial batch too (as
  PyTorch's DataLoader and Keras' fit, drop_remainder=False)."""
  if drop_remainder:
    return num_examples // global_batch_size
  return -(-num_examples // global_batch_size)


def train_batches(split: Split, *, global_batch_size: int, seed: int, start_step: int,
                  preprocess: Callable, process_index: int = 0, process_count: int = 1,
                  prefetch: int = 2, group_size: int = 1, drop_remainder: bool = True,
                  host_trains: bool = False) -> Iterator[Batch]:
  """Endless iterator of this host's share of the global batches, from `start_step` on.

  With `group_size` > 1 each element holds up to that many consecutive batches along a new
  leading axis (see `_grouped`), for a compiled step that runs several steps per call; the
  host then handles one element per group.

  With `drop_remainder` False every example of an epoch is trained: the epoch's last batch
  holds the examples left, padded to the batch's shape, and every batch carries `mask` (True
  for real examples), which the train step uses to leave padding out of the loss, the
  gradient and the batch-norm statistics.

  `host_trains`: this host's cores also run the training step (the CPU platform); tf.data
  then keeps to fewer threads (`_options`).
  """
  if global_batch_size % process_count:
    raise ValueError("The global batch must divide over the processes.")
  local = global_batch_size // process_count
  epoch_steps = steps_per_epoch(split.num_examples, global_batch_size, drop_remainder)
  if epoch_steps == 0:
    raise UserError(f"The global batch size {global_batch_size} is larger than the "
                    f"{split.num_examples} training examples.")
  if isinstance(split.images, sources.TfdsStream):
    if not drop_remainder:
      raise UserError("config.drop_remainder=False is not supported for datasets streamed "
                      "from tfds (ImageNet): set --config.drop_remainder=True.")
    yield from _stream_train_batches(split, global_batch_size, seed, start_step, preprocess,
                                     process_index, process_count, prefetch, group_size,
                                     host_trains)
    return
  epoch, offset = divmod(start_step, epoch_steps)
  while True:
    order = epoch_permutation(split.num_examples, seed, epoch)
    positions = np.arange(epoch_steps * global_batch_size)
    # [steps, processes, local] -> this host's columns, from the resume offset on.
    grid = positions.reshape(epoch_steps, process_count, local)[offset:, process_index]
    mine = grid.reshape(-1)
    mask = None if drop_remainder else mine < split.num_examples
    # Padding repeats the epoch's first example (never trained on: its mask is False).
    indices = order[mine] if drop_remainder else order[np.where(mask, mine, 0)]
    seeds = _example_seeds(seed, epoch, mine)
    if (twin := _numpy_twin(split, preprocess)) is not None:
      yield from _numpy_elements(split, indices, seeds, twin, local, group_size, offset, mask)
    else:
      ds = _preprocessed_batches(split, indices, seeds, preprocess, local, mask=mask,
                                 drop_remainder=True)
      ds = _grouped(ds, group_size, offset).prefetch(prefetch)
      yield from _read(ds, split, indices, local * group_size, host_trains)
    epoch, offset = epoch + 1, 0


def _host_slice(batch, process_index: int, local: int):
  tf = _tf()
  return tf.nest.map_structure(lambda x: x[process_index * local:(process_index + 1) * local],
                               batch)


def _decode_and_preprocess(stream: sources.TfdsStream, preprocess, seed_of):
  tf = _tf()

  def fn(position, example):
    image = sources.decode(example["image"], stream.channels)
    return {"image": preprocess(image, seed_of(position)),
            "label": tf.cast(example["label"], tf.int32)}
  return fn


def _stream_train_batches(split, global_batch_size, seed, start_step, preprocess,
                          process_index, process_count, prefetch, group_size, host_trains):
  tf = _tf()
  stream = split.images
  local = global_batch_size // process_count
  steps_per_epoch = split.num_examples // global_batch_size
  epoch, offset = divmod(start_step, steps_per_epoch)
  while True:
    epoch_seed = _epoch_seed(seed, epoch)
    ds = stream.as_dataset(shuffle_seed=epoch_seed % 2**31)
    ds = ds.shuffle(STREAM_SHUFFLE_BUFFER, seed=epoch_seed, reshuffle_each_iteration=False)
    ds = ds.take(steps_per_epoch * global_batch_size).enumerate()
    # Global batches of still-encoded records; skipping them to resume decodes nothing.
    ds = ds.batch(global_batch_size, drop_remainder=True).skip(offset)
    ds = ds.map(as_written(lambda p, ex: _host_slice((p, ex), process_index, local))).unbatch()
    seed_of = lambda p: tf.stack([tf.constant(epoch_seed, tf.int64), p])  # noqa: E731
    ds = ds.map(as_written(_decode_and_preprocess(stream, preprocess, seed_of)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = _grouped(ds.batch(local, drop_remainder=True), group_size, offset).prefetch(prefetch)
    yield from _read(ds, split, None, local * group_size, host_trains)
    epoch, offset = epoch + 1, 0


def num_eval_batches(num_examples: int, global_batch_size: int) -> int:
  return -(-num_examples // global_batch_size)


def eval_batches(split: Split, *, global_batch_size: int, preprocess: Callable,
                 process_index: int = 0, process_count: int = 1,
                 prefetch: int = 2, host_trains: bool = False) -> Iterator[Batch]:
  """This host's share of every evaluation batch, the last one padded; `mask` marks real examples.

  Every example appears exactly once over all hosts and batches; padding has mask False.
  `host_trains` as for train_batches.
  """
  local = global_batch_size // process_count
  num_batches = num_eval_batches(split.num_examples, global_batch_size)
  if isinstance(split.images, sources.TfdsStream):
    yield from _stream_eval_batches(split, global_batch_size, preprocess, process_index,
                                    process_count, prefetch, host_trains)
    return
  positions = np.arange(num_batches * global_batch_size)
  mine = positions.reshape(num_batches, process_count, local)[:, process_index].reshape(-1)
  mask = mine < split.num_examples
  indices, seeds = np.where(mask, mine, 0), _example_seeds(0, 0, mine)
  if (twin := _numpy_twin(split, preprocess)) is not None:
    yield from _numpy_elements(split, indices, seeds, twin, local, mask=mask)
    return
  ds = _preprocessed_batches(split, indices, seeds, preprocess, local,
                             mask=mask).prefetch(prefetch)
  yield from _read(ds, split, indices, local, host_trains)


def _stream_eval_batches(split, global_batch_size, preprocess, process_index, process_count,
                         prefetch, host_trains):
  tf = _tf()
  stream = split.images
  local = global_batch_size // process_count
  total = num_eval_batches(split.num_examples, global_batch_size) * global_batch_size
  real = stream.as_dataset().map(as_written(lambda ex: (ex, True)))
  padding = stream.as_dataset().take(1).map(as_written(lambda ex: (ex, False))).repeat(
      total - split.num_examples)
  ds = real.concatenate(padding).enumerate().batch(global_batch_size)
  ds = ds.map(as_written(lambda p, ex: _host_slice((p, ex), process_index, local))).unbatch()
  decode = _decode_and_preprocess(stream, preprocess,
                                  lambda p: tf.stack([tf.constant(0, tf.int64), p]))
  ds = ds.map(as_written(lambda p, ex: {**decode(p, ex[0]), "mask": ex[1]}),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  yield from _read(ds.batch(local).prefetch(prefetch), split, None, local, host_trains)


def make_preprocess(fn, config):
  """Binds the config to a preprocessing function from jaxcnn.data.preprocess."""
  return functools.partial(fn, config=config)


def prefetch_to_device(batches: Iterable[Batch], put: Callable, size: int = 2) -> Iterator:
  """Keeps `size` batches already handed to `put` (e.g. JitParallel.put_batch) ahead of use.

  JAX's transfers are asynchronous, so the next batches' host-to-device copies overlap the
  current step (as flax.jax_utils.prefetch_to_device does for pmap layouts).
  """
  queue = collections.deque()
  batches = iter(batches)

  def enqueue(n):
    for batch in batches:
      queue.append(put(batch))
      n -= 1
      if n == 0:
        return

  enqueue(size)
  while queue:
    yield queue.popleft()
    enqueue(1)
