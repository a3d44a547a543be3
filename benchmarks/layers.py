"""The XLA CPU pathologies that jaxcnn.cpu works around, measured: max-pool's backward pass
(jaxcnn/cpu/pooling.py), the convolutions' weight gradient and convolutions over tiny feature
maps (jaxcnn/cpu/conv.py); and each pass (forward, input gradient, kernel gradient) of
ResNet-20's three 3x3 convolutions alone, with the GFLOP/s each reaches.

    python benchmarks/layers.py

Prints milliseconds (median of 5) for the plain op and for this project's formulation, one
JSON line each; XLA's convolution is flax's nn.Conv, ours is the one jaxcnn.cpu gives a CPU
step (JAXCNN_CONV chooses it, as in training).
"""
import functools
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxcnn import cpu  # noqa: E402

# Before JAX starts its threads, as launch.py does (JAXCNN_HOST_MEMORY=release to compare).
cpu.configure_process()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import linen as nn  # noqa: E402

from jaxcnn.cpu import conv as conv_lib  # noqa: E402
from jaxcnn.models import layers  # noqa: E402

_OURS = cpu.layers_for("cpu")  # {} for JAXCNN_CONV=xla: then "jaxcnn" is flax's own
_OUR_CONV = _OURS.get("conv", nn.Conv)
_OUR_POOL = _OURS.get("max_pool_2x2", layers.max_pool_2x2)
_OUR_CONVOLUTION = (jax.lax.conv_general_dilated if not _OURS else functools.partial(
    conv_lib.conv_general_dilated, formulation=cpu.formulation(cpu.conv_choice())))


def median_ms(fn, *args, runs=5):
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(runs):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return round(1e3 * statistics.median(times), 2)


def main():
  rng = np.random.default_rng(0)
  rows = []
  x = jnp.asarray(rng.normal(size=(128, 32, 32, 64)), jnp.float32)
  for name, pool in [("reduce_window", lambda x: nn.max_pool(x, (2, 2), strides=(2, 2))),
                     ("jaxcnn", _OUR_POOL)]:
    grad = jax.grad(lambda x, pool=pool: jnp.sum(pool(x) ** 2))
    rows.append({"op": "max_pool 2x2 over 128x32x32x64", "impl": name,
                 "forward_ms": median_ms(pool, x), "forward_backward_ms": median_ms(grad, x)})
  # (batch, map size, channels): ResNet-20's three stages, ResNet-18/VGG's first two, VGG's
  # last block at 4x4 and at 2x2 (tiny map).
  for batch, size, channels in [(128, 32, 16), (128, 32, 64), (128, 16, 128), (128, 8, 256),
                                (128, 4, 512), (128, 2, 512)]:
    y = jnp.asarray(rng.normal(size=(batch, size, size, channels)), jnp.float32)
    xla = nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)
    variables = xla.init(jax.random.PRNGKey(0), y)
    ours = _OUR_CONV(channels, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)
    for name, module in [("xla", xla), ("jaxcnn", ours)]:
      grad = jax.grad(lambda v, y, m=module: jnp.sum(m.apply(v, y) ** 2), argnums=(0, 1))
      rows.append({"op": f"conv 3x3 {channels}->{channels} over {batch}x{size}x{size}",
                   "impl": name, "forward_ms": median_ms(module.apply, variables, y),
                   "forward_backward_ms": median_ms(grad, variables, y)})
  # Each pass of ResNet-20's three 3x3 stages alone, so a step's time can be attributed.
  for batch, size, channels in [(128, 32, 16), (128, 16, 32), (128, 8, 64)]:
    rows.extend(conv_passes(rng, batch, size, channels))
  for row in rows:
    print(json.dumps(row))


def conv_passes(rng, batch, size, channels):
  """Forward, input gradient and kernel gradient of one 3x3 convolution, each timed alone."""
  x = jnp.asarray(rng.normal(size=(batch, size, size, channels)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(batch, size, size, channels)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, channels, channels)), jnp.float32)
  gflop = 2 * batch * size * size * 9 * channels * channels / 1e9  # each pass
  rows = []
  for name, conv in [("xla", jax.lax.conv_general_dilated),
                     ("jaxcnn", _OUR_CONVOLUTION)]:
    def forward(x, w, conv=conv):
      return conv(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    passes = {
        "forward_ms": median_ms(forward, x, w),
        "input_gradient_ms": median_ms(lambda x, w, g: jax.vjp(lambda x: forward(x, w), x)[1](g)[0],
                                       x, w, g),
        "kernel_gradient_ms": median_ms(lambda x, w, g: jax.vjp(lambda w: forward(x, w), w)[1](g)[0],
                                        x, w, g),
    }
    rows.append({"op": f"conv 3x3 {channels}->{channels} over {batch}x{size}x{size}, by pass",
                 "impl": name, **passes,
                 **{k.replace("_ms", "_gflop_s"): round(gflop / (v / 1e3), 1) for k, v in passes.items()}})
  return rows


if __name__ == "__main__":
  main()
