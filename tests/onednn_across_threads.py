"""Runs a model's convolutions through oneDNN's binding from several threads, against XLA's.

    python tests/onednn_across_threads.py [MODEL [SIDE [TRAIN_BATCH [EVAL_BATCH]]]]

Takes every distinct convolution of the registered model (default: the recipe's AlexNet with
LRN and the paper's initialiser, on 224x224 crops), as the model traces them, at a small
training batch and, as a run's first evaluation does, at another batch size: the evaluation
forward pass and the training step's three passes (forward, input gradient, kernel
gradient). Each runs first on the main thread, which creates oneDNN's primitives, then on
two other threads, as XLA's worker threads call the binding; every result is compared with
XLA's own convolution. Exit 0 when all match. tests/test_conv.py runs it in a child process,
so that a fault fails the test with its signal instead of killing the test worker.
"""
import sys
import threading

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcnn import models
from jaxcnn.cpu import onednn

_NHWC = ("NHWC", "HWIO", "NHWC")


def convolutions_of(model, x):
  """The distinct (kernel shape, strides, padding) of the plain model's convolutions (lax's,
  visible in its jaxpr) on input x."""
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
  jaxpr = jax.make_jaxpr(lambda v: model.apply(v, x, train=False))(variables)
  found = []

  def visit(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        lhs, rhs = (v.aval.shape for v in eqn.invars)
        layer = (tuple(lhs[1:]), tuple(rhs), tuple(eqn.params["window_strides"]),
                 tuple(tuple(p) for p in eqn.params["padding"]))
        if layer not in found:
          found.append(layer)
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        visit(sub)

  visit(jaxpr.jaxpr)
  return found


# Training: forward, input gradient, kernel gradient; evaluation: the forward pass alone.
@jax.jit(static_argnums=(3, 4, 5))
def _xla_passes(x, kernel, g, strides, padding, training):
  y, vjp = jax.vjp(lambda x, k: lax.conv_general_dilated(
      x, k, strides, padding, dimension_numbers=_NHWC), x, kernel)
  return (y, *vjp(g)) if training else (y,)


@jax.jit(static_argnums=(3, 4, 5))
def _onednn_passes(x, kernel, g, strides, padding, training):
  y = onednn.forward(x, kernel, strides, padding)
  if not training:
    return (y,)
  return (y, onednn.input_gradient(g, kernel, x.shape, strides, padding),
          onednn.kernel_gradient(x, g, kernel.shape, strides, padding))


def _close(ours, reference, what):
  for name, a, b in zip(("forward", "input gradient", "kernel gradient"), ours, reference):
    scale = float(np.max(np.abs(b))) or 1.0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale, err_msg=f"{what}: {name}")


def main(name="alexnet", side="224", train_batch="2", eval_batch="3"):
  side, train_batch, eval_batch = int(side), int(train_batch), int(eval_batch)
  options = {"lrn": True, "init": "paper"} if name == "alexnet" else {}
  model = models.create(name, num_classes=10, **options)
  channels = models.input_shape(name)[-1]
  layers = convolutions_of(model, jnp.zeros((train_batch, side, side, channels)))
  cases = []  # (what, arguments, XLA's results)
  for batch, training in ((train_batch, True), (eval_batch, False)):
    for i, (x_shape, kernel_shape, strides, padding) in enumerate(layers):
      keys = jax.random.split(jax.random.PRNGKey(i), 3)
      x = jax.random.normal(keys[0], (batch, *x_shape))
      kernel = jax.random.normal(keys[1], kernel_shape) * 0.1
      y = jax.eval_shape(lambda: lax.conv_general_dilated(x, kernel, strides, padding,
                                                          dimension_numbers=_NHWC))
      g = jax.random.normal(keys[2], y.shape)
      args = (x, kernel, g, strides, padding, training)
      what = f"{'training' if training else 'evaluation'}, batch {batch}, {x_shape} * {kernel_shape} stride {strides} pad {padding}"
      cases.append((what, args, _xla_passes(*args)))
  failures = []

  def check(where):
    for what, args, reference in cases:
      try:
        _close(_onednn_passes(*args), reference, f"{what}, on {where}")
      except AssertionError as error:
        failures.append(str(error))

  check("the main thread")  # creates the primitives
  for i in range(2):
    thread = threading.Thread(target=check, args=(f"thread {i + 1}",))
    thread.start()
    thread.join()
  for failure in failures:
    print(failure, file=sys.stderr)
  print(f"{name} at {side}x{side}: {len(layers)} convolutions, batches {train_batch} and "
        f"{eval_batch}, on 3 threads: {len(failures)} mismatches")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main(*sys.argv[1:]))
