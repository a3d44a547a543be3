"""Compiling the pure steps for the devices: jax.jit over a Mesh, or jax.pmap.

Both wrap the same `train_step` / `eval_step`; the step takes `axis_name` (None under plain
jit, where XLA inserts the collectives itself).

- "jit", sync_batch_norm=True: jit with the batch sharded on the `data` axis of a Mesh and the
  state replicated. Batch norm sees the global batch, i.e. it is synchronised.
- "jit", sync_batch_norm=False: the step runs per device inside `jax.shard_map` over the same
  Mesh, so batch norm normalises each device's share (the papers' per-replica behaviour);
  gradients are averaged with `lax.pmean`.
- "pmap": `jax.pmap` over the local devices with axis `batch`; gradients and metrics are
  averaged across all devices of all hosts. With sync_batch_norm the model's BatchNorm layers
  get `axis_name` and average their batch statistics over the replicas.

Per-replica batch norm keeps one well-defined state: the step averages the replicas' running
statistics (`lax.pmean`) after every update. Because the running statistics are an
exponential moving average, a linear function of the batch statistics, this equals averaging
the replicas' running statistics before evaluation or checkpointing, as Flax's ImageNet
example does, and the state stays identical on every replica, so what is evaluated and saved
is the same whatever the path.

Checkpoints always hold the state as globally replicated arrays on the Mesh, so a checkpoint
written by one path restores into the other.
"""
import functools
import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxcnn.errors import UserError

DATA_AXIS = "data"
PMAP_AXIS = "batch"


def replicate_on_mesh(tree, sharding: NamedSharding):
  """Host values (identical on every process) -> globally replicated jax.Arrays."""

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

  return jax.tree.map(put, tree)


class _Parallel:
  """What the loop needs from a parallel path; see JitParallel and PmapParallel."""
  name: str
  axis_name: str | None = None  # collectives inside the step
  bn_axis_name: str | None = None  # the model's BatchNorm averages over this axis

  def __init__(self, devices=None):
    self.devices = list(devices or jax.devices())
    self.mesh = Mesh(np.array(self.devices), (DATA_AXIS,))
    self.batch_sharding = NamedSharding(self.mesh, P(DATA_AXIS))
    self.group_sharding = NamedSharding(self.mesh, P(None, DATA_AXIS))  # [steps, batch, ...]
    self.replicated = NamedSharding(self.mesh, P())

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  @property
  def platform(self) -> str:
    """The platform the steps run on: "cpu", "gpu" or "tpu"."""
    return self.devices[0].platform

  @property
  def partitioned(self) -> bool:
    """Whether GSPMD partitions the train step over the devices (jit over the Mesh)."""
    return False

  @property
  def host_trains(self) -> bool:
    """Whether the steps run on this host's CPU cores, which the input pipeline shares."""
    return self.platform == "cpu"

  def check_batch_size(self, global_batch_size: int, what: str = "batch_size") -> None:
    multiple = self.num_devices  # jax.devices() spans every process
    if global_batch_size % multiple:
      raise UserError(f"config.{what}={global_batch_size} does not divide evenly over "
                      f"{multiple} devices; use a multiple of {multiple}.")

  def host_state(self, state):
    """A numpy copy of a replicated state (or of host values), the same on every process."""
    return jax.tree.map(
        lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x),
        state)

  def checkpointable(self, state):
    """The state as globally replicated arrays on the Mesh (the checkpoint layout)."""
    raise NotImplementedError

  def compile_train_step(self, step_fn, running_metrics: bool = False, grouped: bool = False):
    """`step_fn(state, batch) -> (state, metrics)` compiled for the devices, the state donated.

    With `running_metrics`, `step_fn` is in `steps.accumulating`'s form, `(state,
    running_metrics, batch) -> (state, running_metrics)`, and the running metrics (put on the
    devices with `put_state`) are donated too. With `grouped` its batch is a group of batches
    (`steps.scanned`), put on the devices with `put_batch(..., grouped=True)`.
    """
    raise NotImplementedError

  def put_batch(self, local_batch, grouped: bool = False):
    """This process's share of a global batch (or with `grouped`, of a [steps, batch, ...]
    group of them) -> the step's input on the devices."""
    raise NotImplementedError

  def metrics(self, step_metrics):
    """One host-readable copy of the metrics a compiled step returned."""
    raise NotImplementedError

  def abstract_checkpoint(self, host_state):
    """ShapeDtypeStructs of the checkpoint layout, the target for restoring."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype, sharding=self.replicated),
        host_state)


class JitParallel(_Parallel):
  """jax.jit over a 1-D Mesh of all devices; see the module docstring."""
  name = "jit"

  def __init__(self, devices=None, per_replica_batch_norm: bool = False):
    super().__init__(devices)
    self.per_replica = per_replica_batch_norm
    self.axis_name = DATA_AXIS if per_replica_batch_norm else None

  @property
  def partitioned(self) -> bool:
    return not self.per_replica and self.num_devices > 1

  def _shard_mapped(self, fn, out_specs, num_replicated_args=1, batch_spec=P(DATA_AXIS)):
    # The outputs are replicated by construction (pmean, all_gather), which shard_map's
    # replication check cannot see through clu's gather-and-reduce of the metrics.
    return jax.shard_map(functools.partial(fn, axis_name=DATA_AXIS), mesh=self.mesh,
                         in_specs=(P(),) * num_replicated_args + (batch_spec,),
                         out_specs=out_specs, check_vma=False)

  def compile_train_step(self, step_fn, running_metrics: bool = False, grouped: bool = False):
    carried = 2 if running_metrics else 1
    batch_sharding = self.group_sharding if grouped else self.batch_sharding
    if self.per_replica:
      step_fn = self._shard_mapped(step_fn, out_specs=(P(), P()), num_replicated_args=carried,
                                   batch_spec=batch_sharding.spec)
    return jax.jit(step_fn, in_shardings=(self.replicated,) * carried + (batch_sharding,),
                   out_shardings=(self.replicated, self.replicated),
                   donate_argnums=tuple(range(carried)))

  def compile_eval_step(self, step_fn):
    if self.per_replica:
      step_fn = self._shard_mapped(step_fn, out_specs=P())
    return jax.jit(step_fn, in_shardings=(self.replicated, self.batch_sharding),
                   out_shardings=self.replicated)

  def put_state(self, state):
    if all(isinstance(x, jax.Array) and x.sharding == self.replicated
           for x in jax.tree.leaves(state)):
      return state
    return replicate_on_mesh(self.host_state(state), self.replicated)

  def put_batch(self, local_batch, grouped: bool = False):
    """This process's share -> one global array sharded on `data` (the batch axis)."""
    sharding = self.group_sharding if grouped else self.batch_sharding
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                        local_batch)

  def metrics(self, step_metrics):
    return step_metrics

  def checkpointable(self, state):
    return state


class PmapParallel(_Parallel):
  """jax.pmap over this process's devices, collectives across all processes' devices."""
  name = "pmap"
  axis_name = PMAP_AXIS

  def __init__(self, devices=None, sync_batch_norm: bool = False):
    super().__init__(devices)
    self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
    self.local_mesh = Mesh(np.array(self.local_devices), (PMAP_AXIS,))
    self.bn_axis_name = PMAP_AXIS if sync_batch_norm else None

  @property
  def _pmap_devices(self):
    # With several processes pmap must span every process's devices, which is its default;
    # naming the local ones would make the collectives local.
    return self.local_devices if jax.process_count() == 1 else None

  def compile_train_step(self, step_fn, running_metrics: bool = False, grouped: bool = False):
    del grouped  # put_batch gives each device its [steps, batch, ...] share
    return jax.pmap(functools.partial(step_fn, axis_name=PMAP_AXIS), axis_name=PMAP_AXIS,
                    devices=self._pmap_devices,
                    donate_argnums=(0, 1) if running_metrics else (0,))

  def compile_eval_step(self, step_fn):
    return jax.pmap(functools.partial(step_fn, axis_name=PMAP_AXIS), axis_name=PMAP_AXIS,
                    devices=self._pmap_devices)

  def host_state(self, state):
    """The first replica's copy; pmapped arrays carry a leading device axis."""
    def first(x):
      if isinstance(x, jax.Array) and not x.is_fully_replicated:
        return np.asarray(x.addressable_data(0)).reshape(x.shape[1:])
      return super(PmapParallel, self).host_state(x)
    return jax.tree.map(first, state)

  def put_state(self, state):
    host = super().host_state(state)  # from host values or the Mesh layout of a checkpoint
    n = len(self.local_devices)
    sharding = NamedSharding(self.local_mesh, P(PMAP_AXIS))
    return jax.tree.map(
        lambda x: jax.device_put(np.broadcast_to(np.asarray(x), (n, *np.shape(x))), sharding),
        host)

  def put_batch(self, local_batch, grouped: bool = False):
    """This process's share -> [local devices, per-device batch, ...], one slice per device
    (grouped: [local devices, steps, per-device batch, ...])."""
    n = len(self.local_devices)
    sharding = NamedSharding(self.local_mesh, P(PMAP_AXIS))

    def per_device(x):
      if grouped:
        steps, batch = x.shape[:2]
        return np.swapaxes(x.reshape(steps, n, batch // n, *x.shape[2:]), 0, 1)
      return x.reshape(n, x.shape[0] // n, *x.shape[1:])

    return jax.tree.map(lambda x: jax.device_put(per_device(x), sharding), local_batch)

  def metrics(self, step_metrics):
    """Metrics are reduced over all devices inside the step: take the first replica's copy."""
    return step_metrics.unreplicate()

  def checkpointable(self, state):
    return replicate_on_mesh(self.host_state(state), self.replicated)


def step_flops(parallel: _Parallel, step_fn, state, batch, model) -> float:
  """XLA's count of the FLOPs of one program of `step_fn(state, batch)` compiled by `parallel`,
  traced with `model`, the plain network (jaxcnn.models.create's) in place of the state's:
  XLA's cost analysis cannot see inside the custom calls of the CPU's kernels. Only
  traced, never compiled.
  """
  lowered = parallel.compile_train_step(step_fn).lower(state.replace(apply_fn=model.apply), batch)
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get("flops", 0.0))


def create(config: ml_collections.ConfigDict, devices=None) -> _Parallel:
  name = config.get("parallelism", "jit")
  sync = config.get("sync_batch_norm", True)
  if name == "jit":
    return JitParallel(devices, per_replica_batch_norm=not sync)
  if name == "pmap":
    return PmapParallel(devices, sync_batch_norm=sync)
  raise UserError(f"Unknown parallelism {name!r}; valid values are: jit, pmap.")
