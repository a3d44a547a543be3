"""Model zoo, part A: LeNet-5 (classic), AlexNet, VGG, ResNet."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from jaxcnn import cpu, models
from jaxcnn.errors import UserError
from jaxcnn.models import layers
from jaxcnn.models.__main__ import main as models_cli
from jaxcnn.train import steps
from jaxcnn.train.state import create_train_state
from tests.test_models_zoo_b import init  # one compiled program, not op by op

IMAGENET_COUNTS = {  # torchvision's, for 1000 classes
    "alexnet": 61_100_840,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
    "resnet101": 44_549_160, "resnet152": 60_192_808,
    # no torchvision counterpart: LRN has no parameters; C adds three 1x1 convs to B
    "vgg11_lrn": 132_863_336, "vgg16c": 133_638_952,
}
TEN_CLASS_COUNTS = {
    "lenet5_classic": 60_850,
    "alexnet_d2l": 46_764_746,
    # the paper's table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet18_cifar": 11_173_962,
}
ZOO_A = sorted([*IMAGENET_COUNTS, *TEN_CLASS_COUNTS])


def param_count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def abstract_variables(model, image_shape, batch=1):
  x = jnp.zeros((batch, *image_shape), jnp.float32)
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))


def test_every_zoo_model_is_registered_with_an_input_shape():
  assert set(ZOO_A) <= set(models.list_models())
  assert models.input_shape("resnet50") == (224, 224, 3)
  assert models.input_shape("alexnet_d2l") == (224, 224, 1)
  assert models.input_shape("resnet20") == (32, 32, 3)
  assert models.input_shape("lenet5_classic") == (28, 28, 1)
  assert models.default_image_size("vgg16") == 224
  assert models.default_image_size("resnet18_cifar") == 32
  assert models.default_image_size("lenet5") == 28
  with pytest.raises(UserError, match="Unknown model"):
    models.input_shape("vgg17")


@pytest.mark.parametrize("name", sorted(IMAGENET_COUNTS))
def test_imagenet_parameter_counts_and_output_shapes(name):
  model = models.create(name, num_classes=1000)
  variables = abstract_variables(model, (224, 224, 3))
  assert param_count(variables["params"]) == IMAGENET_COUNTS[name]
  x = jnp.zeros((2, 224, 224, 3))
  assert jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).shape == (2, 1000)


@pytest.mark.parametrize("name", sorted(TEN_CLASS_COUNTS))
def test_small_net_parameter_counts_and_output_shapes(name):
  model = models.create(name, num_classes=10)
  shape = models.input_shape(name)
  variables = abstract_variables(model, shape)
  assert param_count(variables["params"]) == TEN_CLASS_COUNTS[name]
  x = jnp.zeros((3, *shape))
  assert jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).shape == (3, 10)


def test_option_variants_change_parameters_as_expected():
  def count(name, shape=(32, 32, 3), **options):
    return param_count(abstract_variables(models.create(name, num_classes=10, **options),
                                          shape)["params"])

  # projection shortcuts at the two stage changes: 1x1 conv + BN each
  assert count("resnet20", shortcut="B") == 269_722 + (16 * 32 + 64) + (32 * 64 + 128)
  # the cifar head is one dense layer on 1x1x512
  assert count("vgg16", head="cifar") == 14_714_688 + 512 * 10 + 10
  assert count("vgg16", head="cifar", batch_norm=True) == 14_714_688 + 2 * 4224 + 5130
  assert count("lenet5_classic", (32, 32, 1), sparse_c3=False) == 60_850 - 1516 + 2416
  for bad in [dict(init="he"), dict(head="tiny"), dict(shortcut="C")]:
    name = "resnet20" if "shortcut" in bad else "vgg11"
    with pytest.raises((UserError, ValueError)):
      count(name, **bad)


def _state(name, image_shape, seed=0, cpu_layers=False, **options):
  model = models.create(name, num_classes=options.pop("num_classes", 10), **options)
  if cpu_layers:
    model = cpu.for_platform(model, "cpu")  # jaxcnn.cpu's layers, as a CPU run trains it
  return create_train_state(model, optax.sgd(0.01), image_shape, seed)


# Small inputs keep the step cheap: the adaptive pools make any size from 32 work for the
# ImageNet ResNets and VGGs, AlexNet needs at least 63 pixels and alexnet_d2l 67.
TRAIN_INPUT = {"alexnet": (64, 64, 3), "alexnet_d2l": (96, 96, 1),
               "lenet5_classic": (28, 28, 1)}


# Every registered model takes a train step in the suite: those a recipe trains (resnet34-152,
# resnet18_cifar, resnet32-110, vgg13-19) through its recipe's two steps in test_configs.py,
# on the CPU's kernels; the others here, with flax's own layers (the network GPUs and TPUs
# run), and one per family and block type at least (resnet18 for the basic block).
# test_configs.test_every_registered_model_takes_a_train_step checks the two lists cover all.
TRAIN_STEP = {"lenet5_classic", "alexnet", "alexnet_d2l", "vgg11", "vgg11_bn", "vgg13_bn",
              "vgg16_bn", "vgg19_bn", "vgg11_lrn", "vgg16c", "resnet18", "resnet50", "resnet20"}
# The deeper batch-norm VGGs take theirs with the CPU's layers, as a CPU run trains them (XLA
# compiles their custom calls in about half the time): vgg11_bn has the same modules on
# flax's layers, and test_cpu.py checks that the two kinds of layers compute the same.
CPU_LAYERS = {"vgg13_bn", "vgg16_bn", "vgg19_bn"}


@pytest.mark.parametrize("name", sorted(TRAIN_STEP))
def test_one_train_step(name):
  image_shape = TRAIN_INPUT.get(name, (32, 32, 3))
  # The 120M parameters of VGG's ImageNet head would dominate: the VGGs take the step with the
  # cifar head (the convolutional part is the same). The ImageNet head (adaptive pool and
  # dense layers, the same modules on every platform) trains in the VGG recipes' steps.
  options = {"head": "cifar"} if name.startswith("vgg") else {}
  if name == "resnet50":
    # Its bottleneck blocks, one a stage (a ResNet-14): the 16 blocks of the real depth
    # compile several times longer here, and train in the three ResNet-50 recipes' steps.
    options = {"stage_sizes": (1, 1, 1, 1)}
  state = _state(name, image_shape, cpu_layers=name in CPU_LAYERS, **options)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.normal(size=(4, *image_shape)), jnp.float32),
           "label": jnp.asarray([0, 1, 2, 3], jnp.int32)}
  new_state, metrics = jax.jit(steps.train_step)(state, batch)
  assert int(new_state.step) == 1
  assert np.isfinite(float(metrics.compute()["loss"]))
  assert int(metrics.nonfinite_steps.count) == 0
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.params, new_state.params)
  assert any(jax.tree.leaves(changed))
  if state.batch_stats:
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.batch_stats,
                         new_state.batch_stats)
    assert all(jax.tree.leaves(moved))


def test_batch_norm_statistics_move_only_in_train_mode():
  model = models.create("resnet20", num_classes=10)
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
  variables = init(model, x)
  logits, updates = jax.jit(functools.partial(
      model.apply, train=True, capture_intermediates=True,
      mutable=["batch_stats", "intermediates"]))(variables, x)
  assert logits.shape == (4, 10)
  stats = traverse_util.flatten_dict(variables["batch_stats"])
  new = traverse_util.flatten_dict(updates["batch_stats"])
  assert stats.keys() == new.keys()
  assert all(not np.allclose(stats[k], new[k]) for k in stats)
  # momentum 0.9 (PyTorch's 0.1): from 0, the stem's running mean moves to 0.1 x batch mean
  stem = updates["intermediates"]["conv1"]["__call__"][0]
  np.testing.assert_allclose(new[("bn1", "mean")], 0.1 * stem.mean(axis=(0, 1, 2)),
                             rtol=1e-4, atol=1e-7)
  _, eval_updates = jax.jit(functools.partial(model.apply, train=False,
                                              mutable=["batch_stats"]))(variables, x)
  for k, v in traverse_util.flatten_dict(eval_updates["batch_stats"]).items():
    np.testing.assert_array_equal(v, stats[k])


@pytest.mark.parametrize("name,shape,options", [
    ("resnet20", (32, 32, 3), {}), ("vgg11_bn", (32, 32, 3), {"head": "cifar"}),
    ("alexnet", (64, 64, 3), {"lrn": True}), ("lenet5_classic", (28, 28, 1), {})])
def test_bfloat16_forward_keeps_float32_params(name, shape, options):
  model = models.create(name, num_classes=10, dtype=jnp.bfloat16, **options)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, *shape))
  variables = init(model, x)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  logits = jax.jit(functools.partial(model.apply, train=False))(variables, x)
  assert logits.dtype == jnp.bfloat16
  reference = jax.jit(functools.partial(models.create(name, num_classes=10, **options).apply,
                                        train=False))(variables, x)
  np.testing.assert_allclose(np.asarray(logits, np.float32), reference,
                             atol=0.1 * float(jnp.abs(reference).max()) + 1e-2)


def test_init_is_deterministic_per_seed():
  model = models.create("resnet20", num_classes=10)
  x = jnp.zeros((1, 32, 32, 3))
  a, b, c = (model.init(jax.random.PRNGKey(s), x, train=False)["params"] for s in (3, 3, 4))
  assert all(jax.tree.leaves(jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), a, b)))
  assert not np.array_equal(a["conv1"]["kernel"], c["conv1"]["kernel"])


def test_vgg_initialisers():
  x = jnp.zeros((1, 32, 32, 3))

  def params(init):
    return models.create("vgg11", num_classes=10, head="cifar", init=init).init(
        jax.random.PRNGKey(0), x, train=False)["params"]

  torchvision, xavier, paper = params("torchvision"), params("xavier"), params("paper")
  kernel = torchvision["conv8"]["kernel"]  # 3x3x512x512: fan-out 9 * 512
  assert np.std(kernel) == pytest.approx(math.sqrt(2 / (9 * 512)), rel=0.02)
  assert np.std(torchvision["fc"]["kernel"]) == pytest.approx(0.01, rel=0.05)
  bound = math.sqrt(6 / (9 * 512 + 9 * 512))
  assert np.abs(xavier["conv8"]["kernel"]).max() <= bound
  assert np.abs(xavier["conv8"]["kernel"]).max() > 0.99 * bound
  assert np.std(paper["conv8"]["kernel"]) == pytest.approx(0.01, rel=0.02)
  for tree in (torchvision, xavier, paper):
    assert not any(np.any(v) for k, v in traverse_util.flatten_dict(tree).items()
                   if k[-1] == "bias")


def test_alexnet_paper_initialisation():
  model = models.create("alexnet", num_classes=10, init="paper")
  params = init(model, jnp.zeros((1, 64, 64, 3)))["params"]
  flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(params).items()}
  for name in ("conv2", "conv4", "conv5", "classifier/fc1", "classifier/fc2"):
    assert np.all(flat[f"{name}/bias"] == 1)
  for name in ("conv1", "conv3", "classifier/fc3"):
    assert not np.any(flat[f"{name}/bias"])
  assert np.std(flat["classifier/fc1/kernel"]) == pytest.approx(0.01, rel=0.02)


def test_resnet_zero_init_residual_and_he_init():
  x = jnp.zeros((1, 32, 32, 3))
  params = models.create("resnet50", num_classes=10, zero_init_residual=True).init(
      jax.random.PRNGKey(0), x, train=False)["params"]
  for name, block in params.items():
    if name.startswith("layer"):
      assert not np.any(block["bn3"]["scale"]) and np.all(block["bn2"]["scale"] == 1)
  kernel = params["layer4_0"]["conv2"]["kernel"]  # 3x3x512x512
  assert np.std(kernel) == pytest.approx(math.sqrt(2 / (9 * 512)), rel=0.02)
  basic = models.create("resnet18", num_classes=10, zero_init_residual=True).init(
      jax.random.PRNGKey(0), x, train=False)["params"]
  assert not np.any(basic["layer1_0"]["bn2"]["scale"])


def test_cifar_resnet_option_a_shortcut_pads_channels():
  # With zero-initialised last BNs every block is the identity plus its shortcut, so the
  # stage-2 block's output is relu(subsampled input, zero-padded to 32 channels).
  model = models.create("resnet20", num_classes=10, zero_init_residual=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 32, 32, 3))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  _, inter = model.apply(variables, x, train=False, capture_intermediates=True,
                         mutable=["intermediates"])
  before = inter["intermediates"]["layer1_2"]["__call__"][0]
  after = inter["intermediates"]["layer2_0"]["__call__"][0]
  assert after.shape == (2, 16, 16, 32)
  np.testing.assert_allclose(after[..., :16], before[:, ::2, ::2, :], rtol=1e-6)
  assert not np.any(after[..., 16:])


def test_lenet5_classic_pads_28_to_32():
  model = models.create("lenet5_classic", num_classes=10)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 28, 28, 1))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  padded = jnp.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  np.testing.assert_allclose(model.apply(variables, x), model.apply(variables, padded))
  # appendix C's initialisation: U(-2.4/F, 2.4/F)
  kernel = variables["params"]["c5"]["kernel"]  # F = 5 * 5 * 16
  assert np.abs(kernel).max() <= 2.4 / 400 and np.abs(kernel).max() > 0.95 * 2.4 / 400


def test_local_response_norm_formula():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3, 7))
  y = layers.LocalResponseNorm().apply({}, x)
  xs = np.asarray(x)
  expected = np.empty_like(xs)
  for c in range(7):
    window = xs[..., max(0, c - 2):c + 3]
    expected[..., c] = xs[..., c] / (2 + 1e-4 / 5 * np.sum(window ** 2, -1)) ** 0.75
  np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("size,out", [(10, 7), (1, 6), (14, 7), (7, 7), (5, 3)])
def test_adaptive_avg_pool_uses_pytorchs_bins(size, out):
  x = np.arange(2 * size * size * 3, dtype=np.float32).reshape(2, size, size, 3)
  y = layers.adaptive_avg_pool(jnp.asarray(x), (out, out))
  expected = np.empty((2, out, out, 3), np.float32)
  for i in range(out):
    for j in range(out):
      rows = slice(i * size // out, -(-(i + 1) * size // out))
      cols = slice(j * size // out, -(-(j + 1) * size // out))
      expected[:, i, j] = x[:, rows, cols].mean(axis=(1, 2))
  np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_summary_table_and_cli(capsys):
  text = models.summary(models.create("resnet18", num_classes=1000), (224, 224, 3))
  assert "Total params: 11,689,512" in text
  assert "(1, 112, 112, 64)" in text and "layer4_1" in text and "BasicBlock" in text
  lines = text.splitlines()
  assert lines.index(next(l for l in lines if l.startswith("conv1"))) < lines.index(
      next(l for l in lines if l.startswith("fc")))  # call order, not alphabetical
  assert models_cli(["summary", "vgg16", "--num_classes", "10", "--image_size", "32",
                     "--option", "head=cifar", "--params"]) == 0
  out = capsys.readouterr().out
  assert "Total params: 14,719,818" in out and "conv13/kernel" in out
  assert models_cli(["summary", "vgg17"]) == 2
