"""The CPU's batch norm: jaxcnn's BatchNorm, whose training pass is oneDNN's.

Flax's formulation reaches XLA's CPU backend as two reductions for the statistics and three
to five elementwise loops each way, every one a pass over the activations; oneDNN's batch
norm makes two passes each way (onednn.cc). `BatchNorm` has nn.BatchNorm's fields,
variables and values; it takes oneDNN's passes for the usual case: training statistics of
a float32 NHWC batch over its batch, height and width, with scale and bias, without a mask
or synchronisation across devices (`axis_name`). Everything else is
jaxcnn.models.batch_norm.BatchNorm (flax's, with masked statistics over the replicas).
"""
import functools

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.linen import module as module_lib

from jaxcnn.cpu import onednn
from jaxcnn.models import batch_norm


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


class BatchNorm(batch_norm.BatchNorm):
  """jaxcnn's BatchNorm; its training statistics through oneDNN (module docstring)."""

  @nn.compact
  def __call__(self, x, use_running_average=None, *, mask=None):
    running = module_lib.merge_param("use_running_average", self.use_running_average,
                                     use_running_average)
    fast = (not running and mask is None and not self.is_initializing()
            and x.ndim == 4 and self.axis in (-1, 3) and self.axis_name is None
            and self.use_scale and self.use_bias and x.dtype == jnp.float32
            and jnp.dtype(self.dtype or jnp.float32) == jnp.float32
            and jnp.dtype(self.param_dtype) == jnp.float32)
    if not fast:
      return super().__call__(x, use_running_average, mask=mask)
    features = (x.shape[-1],)
    scale = self.param("scale", self.scale_init, features, self.param_dtype)
    bias = self.param("bias", self.bias_init, features, self.param_dtype)
    y, mean, var = _normalise(x, scale, bias, float(self.epsilon))
    self._update_running_averages(mean, var)
    return y
