"""The CPU's convolution: XLA's, with faster passes where XLA's CPU backend is slow.

`module(formulation, partitioned)` is flax's nn.Conv (same parameters, same names, same
forward values) with its `conv_general_dilated` replaced by the one below, which

- with formulation "onednn", in float32, runs the forward pass, the input gradient and the
  kernel gradient as oneDNN's convolutions (onednn.py: one XLA custom call each; 2-10x
  faster than XLA's passes here), except over feature maps of at most four positions, where
  the matrix products below win, and layers outside the configurations the binding is
  verified for (`onednn.verified`, checked at every ISA level by tests/onednn_isa_sweep.py),
  which take XLA's convolution;
- otherwise (formulation "matmul", bfloat16), computes the kernel's gradient as matrix
  products over chunks of the batch. XLA's CPU backend runs the weight-gradient convolution
  of a 3x3 layer at 2-14 GFLOP/s on feature maps of 16x16 and larger (13x its forward pass
  for 128x32x32x64 -> 64); the same sums as the kernel's taps (shifted copies of the input,
  stacked tap by tap and gathered in one pass) times the output gradient, a few images at a
  time so the taps stay in cache, run many times faster (benchmarks/layers.py). The forward
  pass stays XLA's own, and so does the input gradient except for inputs of fewer than eight
  channels (LeNet's second layer), where XLA's is 2-4x slower than a matrix product and
  col2im;
- runs convolutions over feature maps of at most four positions (VGG's last block on
  32x32 inputs) as one im2col matrix product: XLA's convolution takes seconds there.

`partitioned` is for a step that GSPMD partitions over several devices (jit over a Mesh
with the batch sharded): GSPMD cannot partition a custom call (it would gather the whole
batch onto every device), and it partitions the chunked kernel gradient's gather with
collectives inside the chunk loop, which XLA's CPU runtime once ran in different orders on
different devices and hung; so such a step takes neither, and XLA's own kernel gradient,
which GSPMD partitions as data-parallel (one all-reduce).

XLA offers no switch for any of them (its oneDNN/XNNPACK/YNNPACK convolution flags were tried
here and leave the weight gradient as slow), hence this file.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import linen as nn
from jax import lax

from jaxcnn.cpu import onednn

# Feature maps with at most this many positions take the im2col forward pass.
SMALL_MAP_POSITIONS = 4
# Rows (output positions) of the patch matrix per chunk of the weight gradient: small enough
# for the chunk's patches to stay in cache, large enough for an efficient matrix product
# (1-4k measured best on 8x8 to 32x32 maps, at 16 to 512 channels).
WEIGHT_GRADIENT_ROWS = 2048
# Rows narrower than a 3x3 kernel's taps over 16 channels (LeNet's and ResNet's first layers:
# 25 and 27 values) get proportionally more of them, up to 8x: the same bytes a chunk, fewer
# trips through the loop.
NARROW_ROW_VALUES = 3 * 3 * 16

# Inputs with fewer channels than this (a vector register of float32) take the col2im input
# gradient.
FEW_INPUT_CHANNELS = 8

_NHWC = ("NHWC", "HWIO", "NHWC")

FORMULATIONS = ("onednn", "matmul")


def _is_nhwc_hwio(dimension_numbers) -> bool:
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, tuple) and all(isinstance(s, str) for s in dimension_numbers):
    return dimension_numbers == _NHWC
  return (tuple(dimension_numbers.lhs_spec) == (0, 3, 1, 2)
          and tuple(dimension_numbers.rhs_spec) == (3, 2, 0, 1)
          and tuple(dimension_numbers.out_spec) == (0, 3, 1, 2))


def _unit(dilation) -> bool:
  return dilation is None or all(d == 1 for d in dilation)


def _patches(x, kernel_hw, strides, out_hw):
  """im2col of an already padded NHWC batch: (n, out_h, out_w, kh*kw*c) in the kernel's HWI order."""
  (kh, kw), (sh, sw), (oh, ow) = kernel_hw, strides, out_hw
  n, _, _, c = x.shape
  taps = [lax.slice(x, (0, i, j, 0), (n, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, c),
                    (1, sh, sw, 1)) for i in range(kh) for j in range(kw)]
  return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


def _pad(x, padding):
  (top, bottom), (left, right) = padding
  return lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (top, bottom, 0), (left, right, 0), (0, 0, 0)))


def _images_per_chunk(batch: int, positions: int, row_values: int) -> int:
  """The largest divisor of `batch` whose chunk fits its row budget (at least 1 image).

  The budget is WEIGHT_GRADIENT_ROWS rows of `row_values` (kernel taps x input channels),
  more rows for narrow ones (NARROW_ROW_VALUES).
  """
  rows = WEIGHT_GRADIENT_ROWS * min(8, max(1, NARROW_ROW_VALUES // row_values))
  most = max(1, rows // positions)
  return max(d for d in range(1, min(batch, most) + 1) if batch % d == 0)


def _tap_rows(images, in_hw, kernel_hw, strides, padding, out_hw):
  """Where each tap reads a chunk's flattened images: (kh*kw, images*out_h*out_w) row numbers.

  Tap (i, j) of output position (b, r, c) reads input position (b, sh*r + i - top,
  sw*c + j - left); one that falls in the padding gets the row number one past the chunk's
  last, which the gather fills with zeros, so the padded input is never built. The numbers
  are the same for every chunk: one constant of the compiled step.
  """
  (h, w), (kh, kw), (sh, sw), ((top, _), (left, _)), (oh, ow) = (
      in_hw, kernel_hw, strides, padding, out_hw)
  b, r, c = (a.reshape(-1) for a in np.meshgrid(np.arange(images), np.arange(oh), np.arange(ow),
                                                indexing="ij"))
  taps = []
  for i in range(kh):
    for j in range(kw):
      row, col = sh * r + i - top, sw * c + j - left
      inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
      taps.append(np.where(inside, (b * h + row) * w + col, images * h * w))
  return np.stack(taps).astype(np.int32)


def _weight_gradient(x, g, kernel_shape, strides, padding, precision):
  """d(loss)/d(kernel) = sum over images and positions of taps(x)^T g, chunk by chunk.

  A chunk's taps (the kernel's shifted copies of the input, stacked first: (taps, rows, in))
  are one gather from the chunk's flattened images, zeros where a tap reads the padding.
  XLA fuses it with the transpose its matrix product wants, so the taps are written once
  (a padded copy, slices and a stack would write them four times, more than the products
  cost).
  """
  kh, kw, cin, cout = kernel_shape
  n, oh, ow, _ = g.shape
  images = _images_per_chunk(n, oh * ow, kh * kw * cin)
  chunks = n // images
  rows = images * oh * ow
  tap_rows = _tap_rows(images, x.shape[1:3], (kh, kw), strides, padding, (oh, ow))
  xs = x.reshape((chunks, -1, cin))
  gs = g.reshape((chunks, rows, cout))

  def add_chunk(total, chunk):
    x_chunk, g_chunk = chunk
    taps = x_chunk.at[tap_rows].get(mode="fill", fill_value=0)
    # Contract the rows: (taps, rows, in) x (rows, out) -> (taps, in, out).
    return total + lax.dot_general(taps, g_chunk, (((1,), (0,)), ((), ())), precision=precision,
                                   preferred_element_type=jnp.float32), None

  total, _ = lax.scan(add_chunk, jnp.zeros((kh * kw, cin, cout), jnp.float32), (xs, gs))
  return total.reshape(kernel_shape).astype(x.dtype)


def _input_gradient_col2im(g, w, x_shape, strides, padding, precision):
  """d(loss)/d(input) as columns g @ w^T, each tap's block added back at its offset (col2im).

  For inputs of few channels: XLA's input-gradient convolution then has fewer output
  channels than a vector register holds and runs 2-4x slower than this (LeNet's second layer).
  """
  kh, kw, cin, cout = w.shape
  n, oh, ow, _ = g.shape
  (top, bottom), (left, right) = padding
  sh, sw = strides
  height, width = x_shape[1] + top + bottom, x_shape[2] + left + right
  columns = jnp.dot(g.reshape(-1, cout), w.reshape(-1, cout).T, precision=precision)
  columns = columns.reshape(n, oh, ow, kh, kw, cin)
  zero = jnp.zeros((), g.dtype)
  padded = None
  for i in range(kh):
    for j in range(kw):
      # Tap (i, j) of output (r, c) touches padded input (i + sh*r, j + sw*c): interior
      # padding spaces the rows by the stride, edge padding places them.
      placed = lax.pad(columns[:, :, :, i, j, :], zero,
                       ((0, 0, 0), (i, height - i - sh * (oh - 1) - 1, sh - 1),
                        (j, width - j - sw * (ow - 1) - 1, sw - 1), (0, 0, 0)))
      padded = placed if padded is None else padded + placed
  return padded[:, top:top + x_shape[1], left:left + x_shape[2], :]


def _xla_conv(x, w, strides, padding, precision):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC,
                                  precision=precision)


def _im2col_conv(x, w, strides, padding, precision):
  kh, kw, cin, cout = w.shape
  padded = _pad(x, padding)
  out_hw = tuple((padded.shape[1 + a] - w.shape[a]) // strides[a] + 1 for a in (0, 1))
  p = _patches(padded, (kh, kw), strides, out_hw)
  out = jnp.dot(p.reshape(-1, kh * kw * cin), w.reshape(kh * kw * cin, cout), precision=precision)
  return out.reshape((x.shape[0],) + out_hw + (cout,))


def _output_positions(x_shape, w_shape, strides, padding) -> int:
  positions = 1
  for a in (0, 1):
    positions *= (x_shape[1 + a] + sum(padding[a]) - w_shape[a]) // strides[a] + 1
  return positions


def _forward(x, w, strides, padding, precision):
  if _output_positions(x.shape, w.shape, strides, padding) <= SMALL_MAP_POSITIONS:
    return _im2col_conv(x, w, strides, padding, precision)
  return _xla_conv(x, w, strides, padding, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _matmul_conv(x, w, strides, padding, precision, partitioned):
  return _forward(x, w, strides, padding, precision)


def _matmul_conv_forward(x, w, strides, padding, precision, partitioned):
  return _forward(x, w, strides, padding, precision), (x, w)


def _matmul_conv_backward(strides, padding, precision, partitioned, residuals, g):
  x, w = residuals
  if x.shape[-1] < FEW_INPUT_CHANNELS:
    dx = _input_gradient_col2im(g.astype(x.dtype), w, x.shape, strides, padding, precision)
  else:
    _, input_vjp = jax.vjp(lambda x: _forward(x, w, strides, padding, precision), x)
    (dx,) = input_vjp(g)
  if partitioned:  # XLA's kernel gradient, which GSPMD partitions (module docstring)
    _, kernel_vjp = jax.vjp(lambda w: _xla_conv(x, w, strides, padding, precision), w)
    (dw,) = kernel_vjp(g.astype(x.dtype))
    return dx, dw
  return dx, _weight_gradient(x, g.astype(x.dtype), w.shape, strides, padding, precision)


_matmul_conv.defvjp(_matmul_conv_forward, _matmul_conv_backward)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _onednn_conv(x, w, strides, padding):
  return onednn.forward(x, w, strides, padding)


def _onednn_conv_forward(x, w, strides, padding):
  return onednn.forward(x, w, strides, padding), (x, w)


def _onednn_conv_backward(strides, padding, residuals, g):
  x, w = residuals
  return (onednn.input_gradient(g, w, x.shape, strides, padding),
          onednn.kernel_gradient(x, g, w.shape, strides, padding))


_onednn_conv.defvjp(_onednn_conv_forward, _onednn_conv_backward)


_unverified_logged = set()


def _log_unverified(kernel_shape, strides, padding):
  key = (tuple(kernel_shape), strides, padding)
  if key not in _unverified_logged:
    _unverified_logged.add(key)
    logging.warning("oneDNN's binding is not verified for a %s kernel with strides %s and "
                    "padding %s; that layer takes XLA's convolution",
                    "x".join(map(str, kernel_shape)), strides, padding)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, *, formulation: str = "matmul",
                         partitioned: bool = False, **kwargs):
  """lax.conv_general_dilated, taking the formulations above where they apply.

  They apply to dense (ungrouped, undilated) NHWC x HWIO convolutions with non-negative
  padding (lax's negative padding crops; the formulations pad, never crop); everything else
  is lax.conv_general_dilated itself.
  """
  if isinstance(padding, str) and lhs.ndim == 4 and rhs.ndim == 4:
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  applies = (lhs.ndim == 4 and _is_nhwc_hwio(dimension_numbers) and feature_group_count == 1
             and _unit(lhs_dilation) and _unit(rhs_dilation) and not kwargs
             and lhs.dtype == rhs.dtype and not isinstance(padding, str)
             and all(int(edge) >= 0 for pair in padding for edge in pair))
  if not applies:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
        precision=precision, **kwargs)
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  strides = tuple(int(s) for s in window_strides)
  # oneDNN's binding is float32 only. Maps of at most four positions keep the matrix
  # products (im2col, chunks): oneDNN's passes take 2.5-3x as long there.
  if (formulation == "onednn" and not partitioned and lhs.dtype == jnp.float32
      and _output_positions(lhs.shape, rhs.shape, strides, padding) > SMALL_MAP_POSITIONS):
    if onednn.verified(rhs.shape, strides, padding):
      return _onednn_conv(lhs, rhs, strides, padding)
    # A layer the binding is not verified for (onednn.verified) is XLA's, never a risk.
    _log_unverified(rhs.shape, strides, padding)
    return _xla_conv(lhs, rhs, strides, padding, precision)
  return _matmul_conv(lhs, rhs, strides, padding, precision, partitioned)


def module(formulation: str, partitioned: bool = False):
  """flax's nn.Conv with the convolution above: the same parameters and module names.

  One object per choice, so that models built with the same choice compare equal.
  """
  if formulation not in FORMULATIONS:
    raise ValueError(f"formulation must be one of {', '.join(FORMULATIONS)}, not "
                     f"{formulation!r}")
  return _module(formulation, bool(partitioned))


@functools.cache
def _module(formulation: str, partitioned: bool):
  return functools.partial(nn.Conv, conv_general_dilated=functools.partial(
      conv_general_dilated, formulation=formulation, partitioned=partitioned))
