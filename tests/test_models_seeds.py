"""The seed documents' own networks (issue 27) and the plain counterparts of the ResNets.

alexnet_keras (seed 003), resnet18_blog (seed 001), resnet_blog_small and resnet18_keras
(seed 000), plain18/34/20/56. Counts and shapes from jax.eval_shape; the Keras networks are
checked output for output against the seeds' code built in Keras, the PyTorch ones (no
torch here) by their blocks' wiring; one train step each at a small input.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxcnn import models
from jaxcnn.models.resnet import BasicBlock
from tests.test_models_zoo_b import (_load_into_keras, _train_step, abstract_variables, count,
                                     random_variables, run_jit)

SEED_NETS = {  # name: (input shape, classes, params, batch-norm statistics)
    # convs 34,944 + 614,656 + 885,120 + 1,327,488 + 884,992; dense 12,544 * 4,096 + 4,096,
    # 4,096 * 4,096 + 4,096, 4,096 * 17 + 17
    "alexnet_keras": ((224, 224, 3), 17, 71_982_481, 0),
    # stem 1,792 + BN 128; blocks (two 3x3 convs, a 1x1 projection, three BNs) 78,400,
    # 230,528, 919,808, 3,674,624; dense 512 * 10 + 10
    "resnet18_blog": ((32, 32, 3), 10, 4_910_410, 5_888),
    # stem 448 + 32; blk1 2 * (2,320 + 32); blk2 4,640 + 9,248 + 544 + 3 * 64;
    # dense 32 * 32 * 32 * 10 + 10
    "resnet_blog_small": ((32, 32, 3), 10, 347_498, 288),
    # torchvision's resnet18 (11,689,512) + the biases of its 17 convs (3,904) and of the
    # three 1x1 projections (896), - the projections' BNs (1,792)
    "resnet18_keras": ((224, 224, 3), 1000, 11_692_520, 7_808),
    # resnet18/34 - the three projections: (64 + 2) * 128 + (128 + 2) * 256 + (256 + 2) * 512
    "plain18": ((224, 224, 3), 1000, 11_689_512 - 173_824, 7_808),
    "plain34": ((224, 224, 3), 1000, 21_797_672 - 173_824, 15_232),
    # resnet20/56: option-A shortcuts have no parameters
    "plain20": ((32, 32, 3), 10, 269_722, 1_376),
    "plain56": ((32, 32, 3), 10, 853_018, 4_064),
}


def test_registered_with_input_shapes_and_listed(capsys):
  from jaxcnn.models.__main__ import main as models_cli
  assert models_cli(["list"]) == 0
  listed = capsys.readouterr().out
  for name, (shape, *_) in SEED_NETS.items():
    assert models.input_shape(name) == shape
    assert f"{name:20s} {shape}" in listed


@pytest.mark.parametrize("name", sorted(SEED_NETS))
def test_parameter_counts_and_output_shapes(name):
  shape, classes, params, stats = SEED_NETS[name]
  model = models.create(name, num_classes=classes)
  variables = abstract_variables(model, shape)
  assert count(variables["params"]) == params
  assert count(variables.get("batch_stats", {})) == stats
  x = jnp.zeros((2, *shape))
  assert jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).shape == (2, classes)


def test_parameter_counts_for_other_classes():
  def params(name, classes, **options):
    model = models.create(name, num_classes=classes, **options)
    return count(abstract_variables(model, models.input_shape(name))["params"])

  assert params("alexnet_keras", 1000) == 71_982_481 - 4097 * 17 + 4097 * 1000
  # the seed's code as written (no stride after the max-pool): the same layers
  assert params("resnet18_keras", 1000, downsample=False) == 11_692_520


def _map_sizes(name, shape, blocks, **options):
  """The side of each named block's output, from a traced forward pass."""
  model = models.create(name, num_classes=10, **options)
  variables = abstract_variables(model, shape)
  _, state = jax.eval_shape(
      lambda v: model.apply(v, jnp.zeros((1, *shape)), train=False,
                            capture_intermediates=True, mutable=["intermediates"]), variables)
  inter = state["intermediates"]
  return [inter[b]["__call__"][0].shape[1] for b in blocks]


def test_feature_map_sizes():
  # seed 001: the 3x3/3 unpadded stem, then four stride-2 blocks
  assert _map_sizes("resnet18_blog", (32, 32, 3), ["conv1", "blk1", "blk2", "blk3", "blk4"]) == [
      10, 5, 3, 2, 1]
  assert _map_sizes("resnet_blog_small", (32, 32, 3), ["blk1", "blk2"]) == [32, 32]
  stages = ["conv1", "stage2_1", "stage3_1", "stage4_1", "stage5_1"]
  assert _map_sizes("resnet18_keras", (224, 224, 3), stages) == [112, 56, 28, 14, 7]
  assert _map_sizes("resnet18_keras", (224, 224, 3), stages, downsample=False) == [
      112, 56, 56, 56, 56]
  assert _map_sizes("plain18", (224, 224, 3), ["layer1_1", "layer4_1"]) == [56, 7]


def test_alexnet_keras_smallest_input():
  def out(size):
    model = models.create("alexnet_keras", num_classes=17)
    x = jnp.zeros((1, size, size, 3))
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    return variables["params"]["classifier"]["fc1"]["kernel"].shape

  assert out(224) == (7 * 7 * 256, 4096)
  assert out(29) == (256, 4096)  # 8 -> 4 -> 2 -> 1 after conv1 and the three pools
  with pytest.raises(ValueError, match="at least 29x29"):
    out(28)


def test_plain_nets_are_the_resnets_without_shortcuts():
  def shapes(name, shape):
    variables = abstract_variables(models.create(name, num_classes=10), shape)
    return {k: v.shape for k, v in traverse_util.flatten_dict(variables, sep="/").items()}

  for plain, resnet in [("plain18", "resnet18"), ("plain34", "resnet34"),
                        ("plain20", "resnet20"), ("plain56", "resnet56")]:
    shape = models.input_shape(plain)
    theirs = shapes(resnet, shape)
    assert shapes(plain, shape) == {k: v for k, v in theirs.items() if "downsample" not in k}
  with pytest.raises(ValueError, match="zero_init_residual"):
    abstract_variables(models.create("plain20", num_classes=10, zero_init_residual=True),
                       (32, 32, 3))


def test_plain_block_drops_only_the_shortcut():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 6, 8))
  variables = random_variables(BasicBlock(8), x.shape[1:])
  for shortcut in ("B", "none"):
    _, state = BasicBlock(8, shortcut=shortcut).apply(
        variables, x, False, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]
    residual = inter["bn2"]["__call__"][0]
    expected = jax.nn.relu(residual + x) if shortcut == "B" else jax.nn.relu(residual)
    np.testing.assert_allclose(inter["__call__"][0], expected, rtol=1e-6, atol=1e-6)


def _intermediates(model, variables, x):
  _, state = model.apply(variables, x, train=False, capture_intermediates=True,
                         mutable=["intermediates"])
  return state["intermediates"]


def test_blog_blocks_wiring():
  # seed 001: out = relu(extra(x) + bn2(...)), extra a 1x1 conv + BN in every block;
  # seed 000: out = extra(x) + bn2(...), extra the identity where the shape is kept.
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
  for name in ("resnet18_blog", "resnet_blog_small"):
    model = models.create(name, num_classes=10)
    variables = random_variables(model, (32, 32, 3))
    inter = _intermediates(model, variables, x)
    block_input = jax.nn.relu(inter["bn1"]["__call__"][0])  # the stem's output
    for i in range(1, 5 if name == "resnet18_blog" else 3):
      blk = inter[f"blk{i}"]
      out = blk["__call__"][0]
      residual = blk["bn2"]["__call__"][0]
      if "extra_bn" in blk:
        shortcut = blk["extra_bn"]["__call__"][0]
      else:
        assert name == "resnet_blog_small" and i == 1
        shortcut = block_input
      if name == "resnet18_blog":
        np.testing.assert_allclose(out, jax.nn.relu(shortcut + residual), rtol=1e-5, atol=1e-5)
      else:
        np.testing.assert_allclose(out, shortcut + residual, rtol=1e-5, atol=1e-5)
        assert float(out.min()) < 0  # no ReLU after the add
      block_input = out
  assert "extra_conv" not in variables["params"]["blk1"]
  assert variables["params"]["blk2"]["extra_conv"]["kernel"].shape == (1, 1, 16, 32)


def test_pytorch_and_keras_default_initialisation():
  model = models.create("resnet18_blog", num_classes=10)
  params = run_jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                                      train=False))["params"]
  for leaf, fan_in in [(params["conv1"]["kernel"], 27), (params["conv1"]["bias"], 27),
                       (params["blk4"]["conv2"]["kernel"], 9 * 512),
                       (params["blk4"]["extra_conv"]["bias"], 256),
                       (params["outlayer"]["bias"], 512)]:
    bound = 1 / math.sqrt(fan_in)
    assert 0.8 * bound < float(jnp.abs(leaf).max()) <= bound
  model = models.create("resnet18_keras", num_classes=10)
  params = run_jit(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                                      train=False))["params"]
  kernel = params["stage5_0"]["shortcut_conv"]["kernel"]  # Glorot: sqrt(6 / (256 + 512))
  assert 0.95 * math.sqrt(6 / 768) < float(jnp.abs(kernel).max()) <= math.sqrt(6 / 768)
  assert not np.any(params["stage5_0"]["shortcut_conv"]["bias"])
  assert not np.any(params["conv1"]["conv"]["bias"])


# ---------------------------------------------------------------------------------------
# The seeds' Keras code, with our weights.


def _keras_alexnet(keras, input_shape, num_classes):
  """Seed 003's Sequential AlexNet, layer for layer (the final softmax left out)."""
  layers = keras.layers
  inputs = keras.Input(shape=input_shape)
  x = layers.Conv2D(96, (11, 11), strides=4, padding="same", activation="relu",
                    name="conv1")(inputs)
  x = layers.Conv2D(256, (5, 5), strides=1, padding="same", activation="relu", name="conv2")(x)
  x = layers.MaxPool2D(pool_size=(2, 2), strides=2)(x)
  x = layers.Conv2D(384, (3, 3), strides=1, padding="same", activation="relu", name="conv3")(x)
  x = layers.MaxPool2D(pool_size=(2, 2), strides=2)(x)
  x = layers.Conv2D(384, (3, 3), strides=1, padding="same", activation="relu", name="conv4")(x)
  x = layers.Conv2D(256, (3, 3), strides=1, padding="same", activation="relu", name="conv5")(x)
  x = layers.MaxPool2D(pool_size=(2, 2), strides=2)(x)
  x = layers.Flatten()(x)
  x = layers.Dense(4096, activation="relu", name="classifier.fc1")(x)
  x = layers.Dropout(0.5)(x)
  x = layers.Dense(4096, activation="relu", name="classifier.fc2")(x)
  x = layers.Dropout(0.5)(x)
  x = layers.Dense(num_classes, name="classifier.fc3")(x)
  return keras.Model(inputs, x)


def _keras_resnet18(keras, input_shape, num_classes, as_coded):
  """Seed 000's resnet_18: as_coded is_first_layer=True on every stage (its code), else only
  on the first (its text: the paper's conv2_x ... conv5_x)."""
  layers, l2 = keras.layers, keras.regularizers.l2

  def conv2d_bn(x, nb_filter, kernel_size, strides, name):
    x = layers.Conv2D(nb_filter, kernel_size=kernel_size, strides=strides, padding="same",
                      kernel_regularizer=l2(0.0001), name=f"{name}.conv")(x)
    x = layers.BatchNormalization(name=f"{name}.bn")(x)
    return layers.Activation("relu")(x)

  def shortcut(input, residual, name):
    stride_height = int(round(input.shape[1] / residual.shape[1]))
    stride_width = int(round(input.shape[2] / residual.shape[2]))
    identity = input
    if stride_width > 1 or stride_height > 1 or input.shape[3] != residual.shape[3]:
      identity = layers.Conv2D(residual.shape[3], kernel_size=(1, 1),
                               strides=(stride_width, stride_height), padding="valid",
                               kernel_regularizer=l2(0.0001), name=f"{name}.shortcut_conv")(input)
    return layers.add([identity, residual])

  def residual_block(x, nb_filter, repetitions, is_first_layer, stage):
    for i in range(repetitions):
      strides = (2, 2) if i == 0 and not is_first_layer else (1, 1)
      name = f"stage{stage}_{i}"
      conv1 = conv2d_bn(x, nb_filter, (3, 3), strides, f"{name}.conv_bn1")
      x = shortcut(x, conv2d_bn(conv1, nb_filter, (3, 3), (1, 1), f"{name}.conv_bn2"), name)
    return x

  inputs = keras.Input(shape=input_shape)
  x = conv2d_bn(inputs, 64, (7, 7), (2, 2), "conv1")
  x = layers.MaxPool2D(pool_size=(3, 3), strides=(2, 2), padding="same")(x)
  for stage, width in enumerate((64, 128, 256, 512), 2):
    x = residual_block(x, width, 2, as_coded or stage == 2, stage)
  x = layers.GlobalAvgPool2D()(x)
  return keras.Model(inputs, layers.Dense(num_classes, name="fc")(x))


# name, options, input, classes, builder, Keras's trainable and non-trainable counts
@pytest.mark.parametrize("name,options,shape,classes,build,trainable,non_trainable", [
    ("alexnet_keras", {}, (224, 224, 3), 17, _keras_alexnet, 71_982_481, 0),
    ("resnet18_keras", {}, (64, 64, 3), 1000,
     lambda k, s, c: _keras_resnet18(k, s, c, as_coded=False), 11_692_520, 7_808),
    ("resnet18_keras", {"downsample": False}, (64, 64, 3), 1000,
     lambda k, s, c: _keras_resnet18(k, s, c, as_coded=True), 11_692_520, 7_808)],
    ids=["alexnet_keras", "resnet18_keras", "resnet18_keras_as_coded"])
def test_equals_the_seeds_keras_network(name, options, shape, classes, build, trainable,
                                        non_trainable):
  keras = pytest.importorskip("keras")
  model = models.create(name, num_classes=classes, **options)
  variables = random_variables(model, shape)
  variables.setdefault("batch_stats", {})
  keras_model = build(keras, shape, classes)
  assert sum(math.prod(w.shape) for w in keras_model.trainable_weights) == trainable
  assert sum(math.prod(w.shape) for w in keras_model.non_trainable_weights) == non_trainable
  assert count(variables["params"]) == trainable
  _load_into_keras(keras, keras_model, variables)
  x = np.random.default_rng(1).normal(size=(2, *shape)).astype(np.float32)
  theirs = np.asarray(keras_model(x, training=False))
  ours = np.asarray(run_jit(lambda v: model.apply(v, x, train=False), variables))
  scale = max(1.0, float(np.abs(theirs).max()))
  print(f"\n{name} {options}: max |ours - keras| {np.abs(ours - theirs).max():.2e}, "
        f"max |logit| {scale:.2e}")
  assert np.abs(ours - theirs).max() <= 1e-4 * scale


# Small inputs where the network allows: alexnet_keras's dense layer follows the input
# (32x32: a 1x1x256 map), the global pools take any map. resnet_blog_small and plain56 train
# through their recipes' two steps (test_configs.py, on the CPU's kernels); resnet18_blog
# and plain20, the same modules, take the step here with flax's own layers. plain34 takes
# it with the CPU's layers, as a CPU run trains it (XLA compiles their custom calls in about
# half the time): plain18 has its modules on flax's layers.
TRAIN_STEP_INPUTS = [
    ("alexnet_keras", (32, 32, 3), 17),
    ("resnet18_blog", (32, 32, 3), 10),
    ("resnet18_keras", (64, 64, 3), 10),
    ("plain18", (64, 64, 3), 10),
    ("plain34", (64, 64, 3), 10),
    ("plain20", (32, 32, 3), 10)]
TRAIN_STEP = {name for name, _, _ in TRAIN_STEP_INPUTS}


@pytest.mark.parametrize("name,shape,classes", TRAIN_STEP_INPUTS)
def test_one_train_step(name, shape, classes):
  # alexnet_keras has no batch norm: its state comes from the real initialisation
  state, new_state = _train_step(name, shape, num_classes=classes,
                                 real_init=name == "alexnet_keras", cpu_layers=name == "plain34")
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params)
  assert any(jax.tree.leaves(changed))
