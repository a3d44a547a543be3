"""Batching: deterministic training order, host shards, and padded, masked evaluation.

Training order is a function of (seed, epoch) only, and a batch's place in it of the step:
a run resumed at any step reads exactly the batches an uninterrupted run would. Each host
takes its contiguous slice of every global batch, so the union over hosts is the global
batch a single process would see.
"""
import functools
from typing import Callable, Iterator

import jax
import numpy as np
import tensorflow as tf

from jaxcnn.data.sources import Split

# TensorFlow only feeds the input pipeline: keep it off the accelerators JAX needs.
tf.config.set_visible_devices([], "GPU")

Batch = dict[str, np.ndarray]


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _example_seeds(seed: int, epoch: int, positions: np.ndarray) -> np.ndarray:
  """One stateless-random seed pair per example, from (seed, epoch, position in epoch)."""
  return np.stack([np.full_like(positions, seed * 1_000_003 + epoch), positions], axis=1)


def _map_dataset(images, labels, seeds, preprocess, num_parallel):
  ds = tf.data.Dataset.from_tensor_slices((images, labels, seeds))
  ds = ds.map(lambda x, y, s: {"image": preprocess(x, s), "label": y},
              num_parallel_calls=num_parallel, deterministic=True)
  return ds


def train_batches(split: Split, *, global_batch_size: int, seed: int, start_step: int,
                  preprocess: Callable, process_index: int = 0, process_count: int = 1,
                  prefetch: int = 2) -> Iterator[Batch]:
  """Endless iterator of this host's share of the global batches, from `start_step` on."""
  if global_batch_size % process_count:
    raise ValueError("The global batch must divide over the processes.")
  local = global_batch_size // process_count
  steps_per_epoch = split.num_examples // global_batch_size
  epoch, offset = divmod(start_step, steps_per_epoch)
  while True:
    order = epoch_permutation(split.num_examples, seed, epoch)
    positions = np.arange(steps_per_epoch * global_batch_size)
    # [steps, processes, local] -> this host's columns, from the resume offset on.
    grid = positions.reshape(steps_per_epoch, process_count, local)[offset:, process_index]
    mine = grid.reshape(-1)
    indices = order[mine]
    ds = _map_dataset(split.images[indices], split.labels[indices],
                      _example_seeds(seed, epoch, mine), preprocess, tf.data.AUTOTUNE)
    ds = ds.batch(local, drop_remainder=True).prefetch(prefetch)
    yield from ds.as_numpy_iterator()
    epoch, offset = epoch + 1, 0


def num_eval_batches(num_examples: int, global_batch_size: int) -> int:
  return -(-num_examples // global_batch_size)


def eval_batches(split: Split, *, global_batch_size: int, preprocess: Callable,
                 process_index: int = 0, process_count: int = 1) -> Iterator[Batch]:
  """This host's share of every evaluation batch, the last one padded; `mask` marks real examples.

  Every example appears exactly once over all hosts and batches; padding has mask False.
  """
  local = global_batch_size // process_count
  num_batches = num_eval_batches(split.num_examples, global_batch_size)
  positions = np.arange(num_batches * global_batch_size)
  mine = positions.reshape(num_batches, process_count, local)[:, process_index].reshape(-1)
  mask = mine < split.num_examples
  indices = np.where(mask, mine, 0)
  ds = _map_dataset(split.images[indices], split.labels[indices],
                    _example_seeds(0, 0, mine), preprocess, tf.data.AUTOTUNE)
  ds = tf.data.Dataset.zip(ds, tf.data.Dataset.from_tensor_slices(mask))
  ds = ds.map(lambda ex, m: {**ex, "mask": m}).batch(local).prefetch(2)
  yield from ds.as_numpy_iterator()


def make_preprocess(fn, config):
  """Binds the config to a preprocessing function from jaxcnn.data.preprocess."""
  return functools.partial(fn, config=config)
