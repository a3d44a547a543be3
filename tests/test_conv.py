"""jaxcnn.cpu.conv: the CPU formulations compute what XLA's convolution computes, and are used."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jaxcnn.cpu import conv, onednn

ONEDNN_MISSING = None if onednn.available() else "oneDNN's binding does not build here"

# (batch, size, in, out, kernel, stride, padding): the shapes the model families use, small.
CASES = [
    (4, 8, 3, 8, 3, 1, ((1, 1), (1, 1))),    # ResNet/VGG 3x3
    (4, 9, 8, 16, 3, 2, ((1, 1), (1, 1))),   # strided 3x3 on an odd map
    (4, 8, 8, 16, 1, 2, ((0, 0), (0, 0))),   # ResNet projection shortcut
    (3, 12, 1, 6, 5, 1, "VALID"),            # LeNet
    (2, 23, 3, 8, 7, 2, "VALID"),            # Keras ResNet-50 stem
    (2, 10, 4, 8, 3, 1, "SAME"),
    (3, 2, 16, 24, 3, 1, ((1, 1), (1, 1))),  # tiny map: im2col forward (VGG on CIFAR)
    (3, 1, 16, 24, 3, 1, "SAME"),
    (3, 11, 3, 8, 11, 4, ((2, 2), (2, 2))),  # AlexNet stem
    (2, 10, 4, 8, 3, 1, ((1, -1), (0, 1))),  # negative padding (a crop): lax's own
]
# Several chunks of the kernel gradient (WEIGHT_GRADIENT_ROWS output positions each).
SEVERAL_CHUNKS = [
    (6, 24, 16, 8, 3, 1, ((1, 1), (1, 1))),  # 3 images of 24x24 a chunk, 2 chunks
    (6, 50, 16, 4, 3, 2, ((1, 1), (1, 1))),  # strided: 3 images of 25x25 a chunk
]
CASES += SEVERAL_CHUNKS


def _grads(module, variables, x):
  loss = lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))  # noqa: E731
  return jax.grad(loss, argnums=(0, 1))(variables, x)


@pytest.mark.parametrize("mode", [
    pytest.param("onednn", marks=pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))),
    "matmul"])
@pytest.mark.parametrize("batch,size,cin,cout,kernel,stride,padding", CASES)
def test_conv_matches_xla_forward_and_gradients(batch, size, cin, cout, kernel, stride, padding,
                                                mode):
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  x = jax.random.normal(keys[0], (batch, size, size, cin))
  reference = nn.Conv(cout, (kernel, kernel), strides=(stride, stride), padding=padding)
  ours = conv.module(mode)(cout, (kernel, kernel), strides=(stride, stride), padding=padding)
  variables = reference.init(keys[1], x)
  assert jax.tree.structure(ours.init(keys[1], x)) == jax.tree.structure(variables)
  np.testing.assert_allclose(ours.apply(variables, x), reference.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(_grads(ours, variables, x)),
                  jax.tree.leaves(_grads(reference, variables, x))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_weight_gradient_is_the_chunked_matmul_on_cpu():
  """The formulation is really taken (a scan of matmuls in the gradient) for bfloat16, which
  oneDNN's binding does not take, and not where GSPMD partitions the step; in bfloat16 the
  gradient keeps the kernel's dtype."""
  x = jnp.ones((8, 16, 16, 4), jnp.bfloat16)

  def jaxpr_of_gradient(module):
    variables = module.init(jax.random.PRNGKey(0), x)
    return str(jax.make_jaxpr(jax.grad(
        lambda v: jnp.sum(module.apply(v, x).astype(jnp.float32))))(variables))

  ours = conv.module("onednn")(8, (3, 3), padding="SAME", dtype=jnp.bfloat16)
  assert "scan" in jaxpr_of_gradient(ours)
  variables = ours.init(jax.random.PRNGKey(0), x)
  grad = jax.grad(lambda v: jnp.sum(ours.apply(v, x).astype(jnp.float32)))(variables)
  assert grad["params"]["kernel"].dtype == jnp.float32  # the parameter's dtype
  partitioned = conv.module("matmul", partitioned=True)(8, (3, 3), padding="SAME",
                                                        dtype=jnp.bfloat16)
  assert "scan" not in jaxpr_of_gradient(partitioned)
  assert "scan" not in jaxpr_of_gradient(nn.Conv(8, (3, 3), padding="SAME", dtype=jnp.bfloat16))
  with pytest.raises(ValueError, match="formulation must be one of"):
    conv.module("fast")


def test_input_gradient_of_few_channels_is_col2im_on_cpu():
  """Inputs of fewer than eight channels get their gradient from a matrix product, not a
  second convolution; wider inputs keep XLA's input-gradient convolution (matmul mode)."""
  def convolutions_in_input_gradient(cin, module_def=conv.module("matmul")):
    x = jnp.ones((2, 12, 12, cin))
    module = module_def(16, (5, 5), padding="VALID")
    variables = module.init(jax.random.PRNGKey(0), x)
    jaxpr = jax.make_jaxpr(jax.grad(lambda x: jnp.sum(module.apply(variables, x))))(x)
    return str(jaxpr).count("conv_general_dilated")

  assert convolutions_in_input_gradient(conv.FEW_INPUT_CHANNELS - 2) == 1  # the forward only
  assert convolutions_in_input_gradient(conv.FEW_INPUT_CHANNELS) > 1
  assert convolutions_in_input_gradient(conv.FEW_INPUT_CHANNELS - 2, nn.Conv) > 1


@pytest.mark.parametrize("batch,positions,row_values,images", [
    (128, 1024, 144, 2), (128, 64, 576, 32), (128, 4, 4608, 128), (6, 1024, 144, 2),
    (7, 1024, 144, 1), (16, 3136, 1152, 1),
    (256, 576, 25, 16),    # LeNet's first layer: 5x the rows of narrow taps
    (128, 1024, 27, 8),    # ResNet-20's stem (3 channels)
    (32, 2916, 121, 1)])   # AlexNet-d2l's stem: 121 values are not narrow
def test_weight_gradient_chunks_divide_the_batch(batch, positions, row_values, images):
  assert conv._images_per_chunk(batch, positions, row_values) == images


@pytest.mark.parametrize("batch,size,cin,cout,kernel,stride,padding", SEVERAL_CHUNKS)
def test_several_chunks_cases_have_several_chunks(batch, size, cin, cout, kernel, stride, padding):
  out = (size + sum(padding[0]) - kernel) // stride + 1
  assert conv._images_per_chunk(batch, out * out, kernel * kernel * cin) < batch


def test_bfloat16_gradients_close_to_float32():
  x = jax.random.normal(jax.random.PRNGKey(2), (8, 8, 8, 16))
  f32 = conv.module("matmul")(16, (3, 3), padding="SAME")
  variables = f32.init(jax.random.PRNGKey(3), x)
  bf16 = conv.module("matmul")(16, (3, 3), padding="SAME", dtype=jnp.bfloat16)
  g32 = _grads(f32, variables, x)[0]["params"]["kernel"]
  g16 = _grads(bf16, variables, x)[0]["params"]["kernel"]
  assert g16.dtype == jnp.float32
  np.testing.assert_allclose(g16, g32, rtol=0.05, atol=0.05 * float(jnp.max(jnp.abs(g32))))


def _custom_calls_and_convolutions(module, x):
  variables = module.init(jax.random.PRNGKey(0), x)
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda v, x: jnp.sum(module.apply(v, x)), (0, 1)))(
      variables, x))
  return ({target: jaxpr.count(target) for target in onednn.CONV_TARGETS},
          jaxpr.count("conv_general_dilated"))


@pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))
def test_float32_takes_onednn_for_all_three_passes():
  x = jnp.ones((2, 8, 8, 4))
  calls, convolutions = _custom_calls_and_convolutions(
      conv.module("onednn")(8, (3, 3), padding="SAME"), x)
  assert calls == {target: 1 for target in onednn.CONV_TARGETS} and convolutions == 0
  calls, convolutions = _custom_calls_and_convolutions(
      conv.module("matmul")(8, (3, 3), padding="SAME"), x)
  assert sum(calls.values()) == 0 and convolutions > 0
  # For a step GSPMD partitions (jit over several devices): no custom call, which GSPMD
  # would replicate.
  calls, _ = _custom_calls_and_convolutions(
      conv.module("onednn", partitioned=True)(8, (3, 3), padding="SAME"), x)
  assert sum(calls.values()) == 0


def test_modules_of_one_choice_are_one_object():
  """A model built twice with the same choice compares equal (jit's caches, apply_fn)."""
  assert conv.module("onednn") is conv.module("onednn")
  assert conv.module("onednn") is not conv.module("onednn", partitioned=True)


def test_binding_build_failures_are_reported(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXCNN_NATIVE_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", "no-such-compiler-jaxcnn")
  with pytest.raises(onednn.Unavailable, match="no C\\+\\+ compiler"):
    onednn._build()
  if onednn.platform.machine() == "x86_64" and onednn.sys.platform == "linux":
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
    with pytest.raises(onednn.Unavailable, match="building the oneDNN binding failed"):
      onednn._build()
    assert list(tmp_path.iterdir()) == []  # no partial library left for the next process


@pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))
def test_binding_builds_into_an_empty_cache_once(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXCNN_NATIVE_CACHE", str(tmp_path))
  built = onednn._build()
  assert built.parent == tmp_path and built.suffix == ".so"
  assert [p.name for p in tmp_path.iterdir()] == [built.name]  # no partial file left
  modified = built.stat().st_mtime_ns
  assert onednn._build() == built and built.stat().st_mtime_ns == modified  # not rebuilt


@pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))
def test_alexnet_convolutions_match_xla_on_every_thread():
  """The recipe's AlexNet convolutions (224x224, training and evaluation batches) through the
  binding, each pass run on the thread that created its primitive and on two others, equal
  XLA's. A child process, so that a fault fails here with its signal: primitives created on
  one thread once ran on another thread's oneDNN scratchpad and wrote out of bounds."""
  tests = os.path.dirname(os.path.abspath(__file__))
  result = subprocess.run(
      [sys.executable, os.path.join(tests, "onednn_across_threads.py"), "alexnet", "224", "2", "3"],
      capture_output=True, text=True, timeout=600,
      # The suite's XLA setting (conftest.py): programs compiled to run once.
      env=dict(os.environ, PYTHONPATH=os.path.dirname(tests), JAX_DISABLE_MOST_OPTIMIZATIONS="1"))
  how = f"signal {-result.returncode}" if result.returncode < 0 else f"exit {result.returncode}"
  assert result.returncode == 0, f"{how}:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
  assert "5 convolutions" in result.stdout and "0 mismatches" in result.stdout


def _isa_sweep(*args):
  tests = os.path.dirname(os.path.abspath(__file__))
  result = subprocess.run([sys.executable, os.path.join(tests, "onednn_isa_sweep.py"), *args],
                          capture_output=True, text=True, timeout=1800)
  how = f"signal {-result.returncode}" if result.returncode < 0 else f"exit {result.returncode}"
  assert result.returncode == 0, f"{how}:\n{result.stdout[-6000:]}{result.stderr[-4000:]}"
  return result.stdout


@pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))
def test_binding_calls_match_xla_at_each_instruction_set_level():
  """LeNet's, ResNet-20's and AlexNet's binding calls (their training and evaluation steps:
  every convolution pass and batch norm) equal XLA's with oneDNN held to SSE4.1 (its im2col
  + GEMM kernels) and free (the CPU's own: AVX2 on a Zen 3, AVX-512 on a Zen 5 or a Xeon).
  The whole zoo at four levels is the slow test below and scripts/onednn_asan.sh."""
  out = _isa_sweep("--models=lenet5,resnet20,alexnet", "--levels=SSE41,ALL")
  assert out.count(": all match;") == 2, out
  assert "convolution backward_weights" in out and "batch_normalization backward" in out


@pytest.mark.slow
@pytest.mark.timeout(3600)  # about 5 minutes a level on 2 cores
@pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))
def test_every_networks_binding_calls_match_xla_at_each_instruction_set_level():
  out = _isa_sweep()
  assert out.count(": all match;") == 4, out


def test_a_convolution_outside_the_verified_configurations_is_xlas():
  """oneDNN's binding takes only layers like those the ISA sweep checks; a 3x3 kernel padded
  by 2 on each side (beyond every network's) traces to XLA's convolution and agrees."""
  assert onednn.verified((3, 3, 16, 16), (1, 1), ((1, 1), (1, 1)))
  assert onednn.verified((11, 11, 3, 64), (4, 4), ((2, 2), (2, 2)))
  assert not onednn.verified((3, 3, 16, 16), (1, 1), ((2, 2), (2, 2)))
  assert not onednn.verified((13, 13, 3, 8), (1, 1), ((0, 0), (0, 0)))
  assert not onednn.verified((3, 3, 16, 16), (5, 5), ((1, 1), (1, 1)))
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 9, 16))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 16, 16)) * 0.1
  pads = ((2, 2), (2, 2))

  def loss(x, w):
    return jnp.sum(conv.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=conv._NHWC,
                                             formulation="onednn") ** 2)

  jaxpr = str(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(x, w))
  grads = jax.grad(loss, argnums=(0, 1))(x, w)
  assert "ffi_call" not in jaxpr and "conv_general_dilated" in jaxpr
  expected = jax.grad(lambda x, w: jnp.sum(conv._xla_conv(x, w, (1, 1), pads, None) ** 2),
                      argnums=(0, 1))(x, w)
  for a, b in zip(grads, expected):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
