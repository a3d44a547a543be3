"""Model zoo, part B: GoogLeNet, Inception-v2 (seed 003), Inception-v3, Keras ResNet-50 (seed 004).

Shapes and counts come from jax.eval_shape (no compilation); the forward passes and train
steps that compile use the smallest input each network accepts. The Keras networks are
checked output for output against the seeds' code built in Keras (a project dependency).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from jaxcnn import cpu, models
from jaxcnn.train import steps
from jaxcnn.train.state import TrainState, create_train_state

ZOO_B = {  # name: (input shape, classes, params, batch-norm statistics)
    "googlenet": ((224, 224, 3), 1000, 13_004_888, 15_072),
    "inception_v2": ((224, 224, 3), 1000, 11_295_240, 20_032),
    "inception_v3": ((299, 299, 3), 1000, 27_161_264, 36_224),
    "resnet50_keras": ((64, 64, 3), 6, 23_546_886, 53_120),
}


def count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def abstract_variables(model, image_shape):
  x = jnp.zeros((1, *image_shape), jnp.float32)
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))


def run_jit(fn, *args):
  """jax.jit(fn)(*args), compiled with XLA's backend optimisation off: the same program,
  in half the compile time that dominates these tests on a 2-core CPU."""
  compiled = jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})
  return compiled(*args)


def init(model, x, seed=0):
  # Compiled: op-by-op initialisation of these networks takes a minute on two cores.
  return run_jit(lambda x: model.init(jax.random.PRNGKey(seed), x, train=False), x)


def test_registered_with_input_shapes():
  for name, (shape, *_) in ZOO_B.items():
    assert models.input_shape(name) == shape
  assert models.default_image_size("inception_v3") == 299


@pytest.mark.parametrize("name", sorted(ZOO_B))
def test_parameter_counts(name):
  shape, classes, params, stats = ZOO_B[name]
  variables = abstract_variables(models.create(name, num_classes=classes), shape)
  assert count(variables["params"]) == params
  assert count(variables["batch_stats"]) == stats


@pytest.mark.parametrize("name,shape,classes,options,params", [
    # torchvision's counts without the auxiliary heads, and GoogLeNet with the paper's 5x5s
    ("googlenet", (224, 224, 3), 1000, {"aux_logits": False}, 6_624_904),
    ("googlenet", (224, 224, 3), 1000, {"aux_logits": False, "paper_5x5": True}, 7_005_832),
    # the paper's (bvlc_googlenet: conv biases, no batch norm), as its prototxt counts
    ("googlenet", (224, 224, 3), 1000, {"variant": "paper"}, 13_378_280),
    ("googlenet", (224, 224, 3), 1000, {"variant": "paper", "aux_logits": False}, 6_998_552),
    ("inception_v3", (299, 299, 3), 1000, {"aux_logits": False}, 23_834_568),
    # the seed's 17 oxflower classes; Keras adds the 20,032 moving statistics: 10,307,697
    ("inception_v2", (224, 224, 3), 17, {}, 10_287_665),
])
def test_option_parameter_counts(name, shape, classes, options, params):
  variables = abstract_variables(models.create(name, num_classes=classes, **options), shape)
  assert count(variables["params"]) == params


@pytest.mark.parametrize("name,aux", [("googlenet", 2), ("inception_v3", 1),
                                      ("inception_v2", 0), ("resnet50_keras", 0)])
def test_output_shapes_and_auxiliary_heads_only_in_training(name, aux):
  shape, classes, *_ = ZOO_B[name]
  model = models.create(name, num_classes=classes)
  variables = abstract_variables(model, shape)
  x = jnp.zeros((2, *shape))
  logits = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert logits.shape == (2, classes)
  out, _ = jax.eval_shape(
      lambda v: model.apply(v, x, train=True, mutable=["batch_stats"],
                            rngs={"dropout": jax.random.PRNGKey(0)}), variables)
  if aux:
    main, heads = out
    assert main.shape == (2, classes)
    assert isinstance(heads, tuple) and len(heads) == aux
    assert all(h.shape == (2, classes) for h in heads)
    # without the heads: no parameters for them, plain logits in training too
    plain = models.create(name, num_classes=classes, aux_logits=False)
    plain_vars = abstract_variables(plain, shape)
    assert not {"aux1", "aux2", "AuxLogits"} & set(plain_vars["params"])
    out, _ = jax.eval_shape(
        lambda v: plain.apply(v, x, train=True, mutable=["batch_stats"],
                              rngs={"dropout": jax.random.PRNGKey(0)}), plain_vars)
  assert out.shape == (2, classes)


def test_small_inputs_and_their_limits():
  def out_shape(name, size, **options):
    model = models.create(name, num_classes=10, **options)
    variables = abstract_variables(model, (size, size, 3))
    x = jnp.zeros((1, size, size, 3))
    return jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).shape

  assert out_shape("googlenet", 32) == (1, 10)
  # the paper's auxiliary heads pool 5x5 with stride 3: a 5x5 map at inception 4a
  assert out_shape("googlenet", 79, variant="paper") == (1, 10)
  assert out_shape("googlenet", 32, variant="paper", aux_logits=False) == (1, 10)
  with pytest.raises(ValueError, match="79x79"):
    out_shape("googlenet", 78, variant="paper")
  with pytest.raises(ValueError, match="torchvision, paper"):
    out_shape("googlenet", 32, variant="caffe")
  assert out_shape("inception_v3", 75, aux_logits=False) == (1, 10)
  assert out_shape("inception_v2", 193) == (1, 10)
  with pytest.raises(ValueError, match="193x193"):
    out_shape("inception_v2", 192)
  with pytest.raises(ValueError, match="aux_logits=False"):
    out_shape("inception_v3", 224)


def test_ceil_mode_max_pool_matches_pytorchs_sizes():
  from jaxcnn.models.googlenet import max_pool_ceil
  # torchvision's GoogLeNet at 224: 112 -> 56 -> 28 -> 14 -> 7 with ceil_mode=True
  for size, window, stride, pad, out in [(112, 3, 2, 0, 56), (56, 3, 2, 0, 28),
                                         (14, 2, 2, 0, 7), (7, 3, 1, 1, 7), (15, 3, 2, 0, 7),
                                         (6, 3, 2, 1, 4), (5, 2, 2, 0, 3)]:
    x = jnp.arange(size * size, dtype=jnp.float32).reshape(1, size, size, 1)
    y = max_pool_ceil(x, window, stride, pad)
    assert y.shape == (1, out, out, 1), (size, window, stride, pad)
    # the value of a window is the largest in it: its bottom-right cell, clipped to the image
    last = min(size - 1, (out - 1) * stride - pad + window - 1)
    assert float(y[0, -1, -1, 0]) == last * size + last


def test_googlenet_initialisation_as_torchvision():
  # Parts of the network: initialising the whole of it compiles for half a minute here.
  from jaxcnn.models.googlenet import BLOCKS, Inception, InceptionAux
  block = init(Inception(*BLOCKS["inception4e"]), jnp.zeros((1, 4, 4, 528)))
  assert np.std(block["params"]["branch2_1"]["conv"]["kernel"]) == pytest.approx(0.01, rel=0.02)
  bn = block["params"]["branch2_1"]["bn"]
  assert np.all(bn["scale"] == 1) and not np.any(bn["bias"])
  head = init(InceptionAux(1000), jnp.zeros((1, 14, 14, 512)))["params"]
  assert head["fc1"]["kernel"].shape == (2048, 1024)
  assert np.std(head["fc1"]["kernel"]) == pytest.approx(0.01, rel=0.02)
  assert 0.9 / math.sqrt(2048) < np.abs(head["fc1"]["bias"]).max() <= 1 / math.sqrt(2048)


def test_googlenet_paper_variant_as_bvlc_googlenet():
  from jaxcnn.models.googlenet import BLOCKS, Inception, InceptionAux, caffe_lrn
  variables = abstract_variables(models.create("googlenet", num_classes=1000, variant="paper"),
                                 (224, 224, 3))
  assert "batch_stats" not in variables
  flat = traverse_util.flatten_dict(variables["params"], sep="/")
  assert not [k for k in flat if "/bn/" in k]
  assert flat["inception3a/branch3_1/conv/kernel"].shape == (5, 5, 16, 32)
  assert flat["aux1/fc1/kernel"].shape == (4 * 4 * 128, 1024)  # 14x14 pooled 5x5/3 to 4x4
  # Caffe's xavier U(+-sqrt(3 / fan_in)) everywhere; biases 0.2, the classifiers' 0
  block = init(Inception(*BLOCKS["inception4e"], variant="paper"), jnp.zeros((1, 4, 4, 528)))
  conv = block["params"]["branch3_1"]["conv"]
  bound = math.sqrt(3 / (5 * 5 * 32))
  assert 0.95 * bound < np.abs(conv["kernel"]).max() <= bound
  assert np.all(conv["bias"] == np.float32(0.2))
  head = init(InceptionAux(10, variant="paper"), jnp.zeros((1, 14, 14, 512)))["params"]
  assert 0.95 * math.sqrt(3 / 2048) < np.abs(head["fc1"]["kernel"]).max() <= math.sqrt(3 / 2048)
  assert np.all(head["fc1"]["bias"] == np.float32(0.2)) and not np.any(head["fc2"]["bias"])
  # Caffe's LRN: k = 1, alpha divided by the window of 5 channels
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3, 7)) * 30
  y = caffe_lrn("norm").apply({}, x)
  xs = np.asarray(x)
  expected = np.empty_like(xs)
  for c in range(7):
    window = xs[..., max(0, c - 2):c + 3]
    expected[..., c] = xs[..., c] / (1 + 1e-4 / 5 * np.sum(window ** 2, -1)) ** 0.75
  np.testing.assert_allclose(y, expected, rtol=1e-6)


def random_variables(model, image_shape, seed=0):
  """Variables of the model's structure filled from numpy: kernels N(0, 1/fan_in), random
  batch-norm scales, biases and running statistics; no compiled initialisation."""
  abstract = traverse_util.flatten_dict(abstract_variables(model, image_shape))
  rng = np.random.default_rng(seed)
  flat = {}
  for key, leaf in abstract.items():
    shape = leaf.shape
    if key[-1] in ("scale", "var"):
      value = rng.uniform(0.5, 1.5, shape)
    elif key[-1] == "mean" or (key[-1] == "bias" and "bn" in key[-2]):
      value = rng.normal(0, 0.1, shape)
    elif key[-1] == "bias":
      value = rng.normal(0, 0.01, shape)
    else:
      value = rng.normal(0, 1 / math.sqrt(math.prod(shape[:-1])), shape)
    flat[key] = value.astype(np.float32)
  return traverse_util.unflatten_dict(flat)


def test_bfloat16_forward_keeps_float32_params():
  # Computed for GoogLeNet at 64x64 against the float32 network; traced only (the dtypes are
  # what is checked, in training with the auxiliary heads) for all four at their sizes.
  model = models.create("googlenet", num_classes=10, dtype=jnp.bfloat16)
  variables = random_variables(model, (64, 64, 3))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 64, 3))
  logits = run_jit(lambda v: model.apply(v, x, train=False), variables)
  assert logits.dtype == jnp.bfloat16
  reference = run_jit(lambda v: models.create("googlenet", num_classes=10).apply(
      v, x, train=False), variables)
  np.testing.assert_allclose(np.asarray(logits, np.float32), reference,
                             atol=0.1 * float(jnp.abs(reference).max()) + 1e-2)
  for name in ZOO_B:
    shape, classes, *_ = ZOO_B[name]
    model = models.create(name, num_classes=classes, dtype=jnp.bfloat16)
    variables = abstract_variables(model, shape)
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    out, _ = jax.eval_shape(
        lambda v: model.apply(v, jnp.zeros((1, *shape)), train=True, mutable=["batch_stats"],
                              rngs={"dropout": jax.random.PRNGKey(0)}), variables)
    assert {leaf.dtype for leaf in jax.tree.leaves(out)} == {jnp.dtype(jnp.bfloat16)}


def _train_step(name, image_shape, num_classes=10, batch_size=2, real_init=False,
                cpu_layers=False, **options):
  """One jaxcnn.train.steps.train_step; the state from create_train_state with real_init,
  else from random_variables (initialisation compiles for longer than the step). With
  `cpu_layers`, the network a CPU run trains (jaxcnn.cpu.for_platform), whose custom calls
  XLA compiles in about half the time of flax's layers."""
  model = models.create(name, num_classes=num_classes, **options)
  if cpu_layers:
    model = cpu.for_platform(model, "cpu")
  if real_init:
    state = create_train_state(model, optax.sgd(0.01), image_shape, 0)  # compiled in one program
  else:
    variables = random_variables(model, image_shape)
    state = TrainState.create(apply_fn=model.apply, params=variables["params"],
                              tx=optax.sgd(0.01), batch_stats=variables.get("batch_stats", {}),
                              rng=jax.random.PRNGKey(0))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(batch_size, *image_shape)), jnp.float32),
           "label": jnp.asarray(np.arange(batch_size) % num_classes, jnp.int32)}
  new_state, metrics = run_jit(steps.train_step, state, batch)
  assert int(new_state.step) == 1
  assert np.isfinite(float(metrics.compute()["loss"]))
  assert int(metrics.nonfinite_steps.count) == 0
  moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.batch_stats,
                       new_state.batch_stats)
  assert all(jax.tree.leaves(moved))
  return state, new_state


def _all_changed(old, new) -> bool:
  return all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), old, new)))


# The auxiliary heads' train steps. The paper's GoogLeNet takes its step with flax's layers
# (the network GPUs and TPUs run); torchvision's GoogLeNet and Inception-v3 take theirs
# with the CPU's, as a CPU run trains them. test_cpu.py lowers their plain networks' steps
# (Inception-v3's without the auxiliary head, at 75 pixels); test_cpu.py and test_conv.py
# check that the CPU's layers compute what flax's compute.
def test_googlenet_train_step_trains_the_auxiliary_heads():
  # The heads' parameters get gradients only through the 0.3-weighted auxiliary losses:
  # that they change shows the step used (logits, (aux1, aux2)).
  state, new_state = _train_step("googlenet", (64, 64, 3), cpu_layers=True)
  for head in ("aux1", "aux2", "fc"):
    assert _all_changed(state.params[head], new_state.params[head])


def test_googlenet_paper_train_step_trains_the_auxiliary_heads():
  # At 79x79, the smallest input the paper's auxiliary heads accept (5x5 at inception 4a).
  state, new_state = _train_step("googlenet", (79, 79, 3), variant="paper")
  for head in ("aux1", "aux2", "fc"):
    assert _all_changed(state.params[head], new_state.params[head])


# Every registered model takes a train step in the suite: resnet50_keras and inception_v2
# through their recipes (resnet50_signs, inception_v2_flowers17 and _imagenet in
# test_configs.py), the others here.
TRAIN_STEP = {"googlenet", "inception_v3"}


def test_inception_v3_train_step_trains_the_auxiliary_head():
  # At 299x299: the auxiliary head's 5x5/3 pool and 5x5 conv need inception 6e's 17x17 map.
  state, new_state = _train_step("inception_v3", (299, 299, 3), cpu_layers=True)
  assert _all_changed(state.params["AuxLogits"], new_state.params["AuxLogits"])


def test_inception_v3_without_its_auxiliary_head_runs_in_train_mode_from_75_pixels():
  # Traced, not compiled: the train-mode forward pass of the smallest input has no auxiliary
  # output and no head parameters.
  model = models.create("inception_v3", num_classes=10, aux_logits=False)
  variables = abstract_variables(model, (75, 75, 3))
  assert "AuxLogits" not in variables["params"]
  x = jnp.zeros((2, 75, 75, 3))
  logits, _ = jax.eval_shape(lambda v: model.apply(
      v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(0)}),
      variables)
  assert logits.shape == (2, 10)


# ---------------------------------------------------------------------------------------
# The seeds' Keras networks, built as their code builds them, with our weights.


def _keras_conv_bn(keras, x, filters, kernel, stride, name):
  """Seed 003's Conv2D_BN: conv (bias, ReLU), then batch norm."""
  x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu",
                          name=f"{name}.conv")(x)
  return keras.layers.BatchNormalization(name=f"{name}.bn")(x)


def _keras_inception_v2(keras, num_classes):
  from jaxcnn.models.inception import V2_LAYOUT
  inputs = keras.Input(shape=(224, 224, 3))
  x = _keras_conv_bn(keras, inputs, 64, 7, 2, "conv1")
  x = keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
  x = _keras_conv_bn(keras, x, 64, 1, 1, "conv2")
  x = _keras_conv_bn(keras, x, 192, 3, 1, "conv3")
  x = keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
  for block, kind, channels in V2_LAYOUT:
    n = f"inception{block}"
    if kind == "reduce":
      red, c3, dred, dbl = channels
      b1 = _keras_conv_bn(keras, x, red, 1, 1, f"{n}.branch3x3_1")
      b1 = _keras_conv_bn(keras, b1, c3, 3, 2, f"{n}.branch3x3_2")
      b2 = _keras_conv_bn(keras, x, dred, 1, 1, f"{n}.branch3x3dbl_1")
      b2 = _keras_conv_bn(keras, b2, dbl, 3, 1, f"{n}.branch3x3dbl_2")
      b2 = _keras_conv_bn(keras, b2, dbl, 3, 2, f"{n}.branch3x3dbl_3")
      b3 = keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
      x = keras.layers.concatenate([b1, b2, b3])
      continue
    c1, red, c3, dred, dbl, proj = channels
    b1 = _keras_conv_bn(keras, x, c1, 1, 1, f"{n}.branch1x1")
    b2 = _keras_conv_bn(keras, x, red, 1, 1, f"{n}.branch3x3_1")
    b2 = _keras_conv_bn(keras, b2, c3, 3, 1, f"{n}.branch3x3_2")
    b3 = _keras_conv_bn(keras, x, dred, 1, 1, f"{n}.branch3x3dbl_1")
    b3 = _keras_conv_bn(keras, b3, dbl, 3, 1, f"{n}.branch3x3dbl_2")
    b3 = _keras_conv_bn(keras, b3, dbl, 3, 1, f"{n}.branch3x3dbl_3")
    pool = keras.layers.AveragePooling2D if kind == "block" else keras.layers.MaxPool2D
    b4 = pool(3, strides=1, padding="same")(x)
    b4 = _keras_conv_bn(keras, b4, proj, 1, 1, f"{n}.branch_pool")
    x = keras.layers.concatenate([b1, b2, b3, b4])
  x = keras.layers.AveragePooling2D(7, strides=1)(x)
  x = keras.layers.Flatten()(x)
  # The seed's dense layer has a softmax; the logits are compared here.
  x = keras.layers.Dense(num_classes, name="fc")(x)
  return keras.Model(inputs, x)


def _keras_resnet50(keras, num_classes):
  layers = keras.layers

  def block(x, features, strides, projection, name):
    shortcut = x
    y = layers.Conv2D(features, 1, strides=strides, name=f"{name}.conv1")(x)
    y = layers.Activation("relu")(layers.BatchNormalization(axis=3, name=f"{name}.bn1")(y))
    y = layers.Conv2D(features, 3, padding="same", name=f"{name}.conv2")(y)
    y = layers.Activation("relu")(layers.BatchNormalization(axis=3, name=f"{name}.bn2")(y))
    y = layers.Conv2D(4 * features, 1, name=f"{name}.conv3")(y)
    y = layers.BatchNormalization(axis=3, name=f"{name}.bn3")(y)
    if projection:
      shortcut = layers.Conv2D(4 * features, 1, strides=strides,
                               name=f"{name}.shortcut_conv")(x)
      shortcut = layers.BatchNormalization(axis=3, name=f"{name}.shortcut_bn")(shortcut)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))

  inputs = keras.Input(shape=(64, 64, 3))
  x = layers.ZeroPadding2D((3, 3))(inputs)
  x = layers.Conv2D(64, 7, strides=2, name="conv1")(x)
  x = layers.Activation("relu")(layers.BatchNormalization(axis=3, name="bn1")(x))
  x = layers.MaxPooling2D(3, strides=2)(x)
  for i, (size, features) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512))):
    for j in range(size):
      x = block(x, features, 2 if i > 0 and j == 0 else 1, j == 0, f"stage{i + 2}_{j}")
  x = layers.AveragePooling2D(2)(x)
  x = layers.Dense(num_classes, name="fc")(layers.Flatten()(x))
  return keras.Model(inputs, x)


def _load_into_keras(keras, keras_model, variables):
  params = traverse_util.flatten_dict(variables["params"], sep=".")
  stats = traverse_util.flatten_dict(variables["batch_stats"], sep=".")
  used = set()
  for layer in keras_model.layers:
    if not layer.weights:
      continue
    if isinstance(layer, keras.layers.BatchNormalization):  # gamma, beta, moving mean, var
      layer.set_weights([params[f"{layer.name}.scale"], params[f"{layer.name}.bias"],
                         stats[f"{layer.name}.mean"], stats[f"{layer.name}.var"]])
      used.update({f"{layer.name}.scale", f"{layer.name}.bias"})
    else:  # Conv2D, Dense: the same (H, W, in, out) / (in, out) layouts as flax
      names = [f"{layer.name}.kernel", f"{layer.name}.bias"]
      layer.set_weights([params[k] for k in names])
      used.update(names)
  assert used == set(params)  # every parameter went somewhere


# name, classes, builder, Keras's trainable and non-trainable counts (the seeds' summaries)
@pytest.mark.parametrize("name,classes,build,trainable,non_trainable", [
    ("inception_v2", 17, _keras_inception_v2, 10_287_665, 20_032),
    ("resnet50_keras", 6, _keras_resnet50, 23_546_886, 53_120)])
def test_equals_the_seeds_keras_network(name, classes, build, trainable, non_trainable):
  keras = pytest.importorskip("keras")
  shape = models.input_shape(name)
  model = models.create(name, num_classes=classes)
  variables = random_variables(model, shape)
  keras_model = build(keras, classes)
  assert sum(math.prod(w.shape) for w in keras_model.trainable_weights) == trainable
  assert sum(math.prod(w.shape) for w in keras_model.non_trainable_weights) == non_trainable
  assert count(variables["params"]) == trainable
  _load_into_keras(keras, keras_model, variables)
  x = np.random.default_rng(1).normal(size=(2, *shape)).astype(np.float32)
  theirs = np.asarray(keras_model(x, training=False))
  ours = np.asarray(run_jit(lambda v: model.apply(v, x, train=False), variables))
  scale = max(1.0, float(np.abs(theirs).max()))
  print(f"\n{name}: max |ours - keras| {np.abs(ours - theirs).max():.2e}, "
        f"max |logit| {scale:.2e}")
  assert np.abs(ours - theirs).max() <= 1e-4 * scale
