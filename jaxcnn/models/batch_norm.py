"""Batch norm: flax's nn.BatchNorm, whose training pass on the CPU is oneDNN's.

Flax's formulation reaches XLA's CPU backend as two reductions for the statistics and three
to five elementwise loops each way, every one a pass over the activations; oneDNN's batch
norm makes two passes each way (onednn.cc): ResNet-20's step 188 -> 173 ms (one A/B run).
`BatchNorm` has nn.BatchNorm's fields, variables and values; it takes oneDNN's passes where
jaxcnn.models.conv takes oneDNN's convolutions (float32 on the CPU, not traced for GSPMD),
for the usual case: training statistics of an NHWC batch over its batch, height and width,
with scale and bias, without a mask or synchronisation across devices (`axis_name`).
Training statistics with a `mask` (a padded last batch, config.drop_remainder=False) are
computed here too: see `_masked_statistics`. Everything else is nn.BatchNorm itself.
"""
import functools

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.linen import module as module_lib

from jaxcnn.models import conv, onednn


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _normalise(x, scale, bias, epsilon):
  """(y, mean, biased variance) of the batch x, normalised over all axes but the last."""
  return onednn.batch_norm(x, scale, bias, epsilon)


def _normalise_forward(x, scale, bias, epsilon):
  x, scale, bias = x.value, scale.value, bias.value  # symbolic_zeros: CustomVJPPrimal
  y, mean, var = onednn.batch_norm(x, scale, bias, epsilon)
  return (y, mean, var), (x, scale, mean, var)


def _normalise_backward(epsilon, residuals, cotangents):
  x, scale, mean, var = residuals
  dy, dmean, dvar = cotangents
  zero = jax.custom_derivatives.SymbolicZero
  dy = jnp.zeros_like(x) if isinstance(dy, zero) else dy
  dx, dscale, dbias = onednn.batch_norm_gradients(x, dy, mean, var, scale, epsilon)
  # The statistics feed only the running averages, which no loss differentiates: their
  # cotangents are symbolic zeros then. Where they are not, their terms are added here.
  count = x.size // x.shape[-1]
  if not isinstance(dmean, zero):
    dx = dx + dmean / count
  if not isinstance(dvar, zero):
    dx = dx + dvar * 2.0 * (x - mean) / count
  return dx, dscale, dbias


_normalise.defvjp(_normalise_forward, _normalise_backward, symbolic_zeros=True)


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
  """nn.BatchNorm; training statistics on the CPU through oneDNN, and with a mask, counted
  over the replicas (module docstring)."""

  @nn.compact
  def __call__(self, x, use_running_average=None, *, mask=None):
    running = module_lib.merge_param("use_running_average", self.use_running_average,
                                     use_running_average)
    if mask is not None and not running and self.axis in (-1, x.ndim - 1):
      return self._masked(x, mask)
    fast = (not running and mask is None and not self.is_initializing()
            and x.ndim == 4 and self.axis in (-1, 3) and self.axis_name is None
            and self.use_scale and self.use_bias and x.dtype == jnp.float32
            and jnp.dtype(self.dtype or jnp.float32) == jnp.float32
            and jnp.dtype(self.param_dtype) == jnp.float32 and conv.onednn_applies())
    if not fast:
      return super().__call__(x, use_running_average, mask=mask)
    features = (x.shape[-1],)
    scale = self.param("scale", self.scale_init, features, self.param_dtype)
    bias = self.param("bias", self.bias_init, features, self.param_dtype)
    y, mean, var = _normalise(x, scale, bias, float(self.epsilon))
    self._update_running_averages(mean, var)
    return y

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
