"""Batch norm: flax's nn.BatchNorm, with a padded batch's statistics counted over the replicas.

`BatchNorm` has nn.BatchNorm's fields, variables and values. Training statistics with a
`mask` (a padded last batch, config.drop_remainder=False: the train step passes it) are
computed here (`_masked_statistics`); everything else is nn.BatchNorm itself.
"""
import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.linen import module as module_lib


def _masked_statistics(x, mask, axis_name):
  """(mean, biased variance) over all axes but the last, of the examples where `mask` [B]
  is True, as flax's fast variance (E[x^2] - E[x]^2, in float32).

  Written here because flax's masked statistics average each replica's masked mean with
  equal weights (`lax.pmean`), which is wrong when the replicas hold different numbers of
  real examples; here sums and counts are added over `axis_name` first. Without `axis_name`
  (one replica's own statistics) a share that is all padding is normalised by its own
  statistics, which no loss sees; the train step leaves them out of the running averages.
  """
  m = mask.reshape(mask.shape[0], *(1,) * (x.ndim - 1)).astype(jnp.float32)
  if axis_name is None:
    m = jnp.where(jnp.any(mask), m, 1.0)
  axes = tuple(range(x.ndim - 1))
  x = x.astype(jnp.float32)
  sums = jnp.stack([jnp.sum(x * m, axes), jnp.sum(jnp.square(x) * m, axes)])
  count = jnp.sum(m) * (x.size // (x.shape[0] * x.shape[-1]))  # positions per example
  if axis_name is not None:
    sums, count = jax.lax.psum((sums, count), axis_name)
  mean, mean2 = sums / jnp.maximum(count, 1.0)
  return mean, jnp.maximum(0.0, mean2 - jnp.square(mean))


class BatchNorm(nn.BatchNorm):
  """nn.BatchNorm whose statistics with a mask are counted over the replicas (module docstring)."""

  @nn.compact
  def __call__(self, x, use_running_average=None, *, mask=None):
    running = module_lib.merge_param("use_running_average", self.use_running_average,
                                     use_running_average)
    if mask is not None and not running and self.axis in (-1, x.ndim - 1):
      return self._masked(x, mask)
    return super().__call__(x, use_running_average, mask=mask)

  def _update_running_averages(self, mean, var):
    """Folds a batch's statistics into nn.BatchNorm's running averages (its variables)."""
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), mean.shape)
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), var.shape)
    if not self.is_initializing():
      ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
      ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var

  def _masked(self, x, mask):
    """Training with a mask over the batch: statistics of the real examples only."""
    features = (x.shape[-1],)
    mean, var = _masked_statistics(x, mask, self.axis_name)
    self._update_running_averages(mean, var)
    # As flax's normalisation: (x - mean) * (rsqrt(var + eps) * scale) + bias.
    y = x.astype(jnp.float32) - mean
    mul = jax.lax.rsqrt(var + self.epsilon)
    if self.use_scale:
      mul = mul * self.param("scale", self.scale_init, features, self.param_dtype)
    y = y * mul
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, features, self.param_dtype)
    return y.astype(self.dtype or x.dtype)
