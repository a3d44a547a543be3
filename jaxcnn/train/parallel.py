"""Compiling the pure steps for the devices: jax.jit over a data-parallel Mesh.

The batch is sharded along the `data` axis and the train state replicated, so XLA
inserts the gradient all-reduce; batch norm then normalises over the global batch.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn.errors import UserError

DATA_AXIS = "data"


class JitParallel:
  """Places state and batches on a 1-D device mesh and jit-compiles steps for it."""

  def __init__(self, devices=None):
    self.devices = list(devices or jax.devices())
    self.mesh = Mesh(np.array(self.devices), (DATA_AXIS,))
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    self.replicated = NamedSharding(self.mesh, P())

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def check_batch_size(self, global_batch_size: int, what: str = "batch_size") -> None:
    if global_batch_size % self.num_devices:
      raise UserError(f"config.{what}={global_batch_size} does not divide evenly over "
                      f"{self.num_devices} devices; use a multiple of {self.num_devices}.")

  def compile_train_step(self, step_fn):
    return jax.jit(step_fn, in_shardings=(self.replicated, self.batch_sharding),
                   out_shardings=(self.replicated, self.replicated), donate_argnums=0)

  def compile_eval_step(self, step_fn):
    return jax.jit(step_fn, in_shardings=(self.replicated, self.batch_sharding),
                   out_shardings=self.replicated)

  def put_state(self, state):
    return jax.device_put(state, self.replicated)

  def put_batch(self, local_batch):
    """This process's share of a global batch -> one global array sharded on `data`."""
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(self.batch_sharding, x), local_batch)
