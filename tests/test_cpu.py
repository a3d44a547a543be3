"""jaxcnn.cpu: the CPU's layers and process settings are chosen for the CPU alone; the models
are plain flax, and a step for a GPU or TPU is XLA's convolutions with no custom call."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from jaxcnn import cpu, models
from jaxcnn.cpu import batch_norm as cpu_batch_norm
from jaxcnn.cpu import conv, onednn, pooling
from jaxcnn.data import pipeline
from jaxcnn.errors import UserError
from jaxcnn.train import parallel as parallel_lib, state as state_lib, steps

ONEDNN_MISSING = None if onednn.available() else "oneDNN's binding does not build here"

# One network of each family module and of each of its classes with its own layers, at a
# small input the network accepts.
NETWORKS = [("lenet5", (28, 28, 1)), ("lenet5_classic", (28, 28, 1)), ("alexnet", (64, 64, 3)),
            ("alexnet_keras", (64, 64, 3)), ("vgg11_bn", (32, 32, 3)), ("googlenet", (64, 64, 3)),
            ("inception_v2", (193, 193, 3)), ("inception_v3", (75, 75, 3)),
            ("resnet20", (32, 32, 3)), ("resnet50", (32, 32, 3)), ("resnet18_blog", (32, 32, 3)),
            ("resnet50_keras", (64, 64, 3)), ("resnet18_keras", (32, 32, 3))]
OPTIONS = {"inception_v3": {"aux_logits": False}}


def _lowered_train_step(model, shape):
  """The StableHLO text of the network's jitted train step (traced on abstract values)."""
  x = jnp.zeros((2, *shape), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(
      {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, x, train=False))
  tx = optax.sgd(0.1, momentum=0.9)
  abstract = jax.eval_shape(lambda v: state_lib.TrainState.create(
      apply_fn=model.apply, params=v["params"], tx=tx, batch_stats=v.get("batch_stats", {}),
      rng=jax.random.PRNGKey(0)), variables)  # apply_fn and tx: static, kept
  batch = {"image": jax.ShapeDtypeStruct((2, *shape), jnp.float32),
           "label": jax.ShapeDtypeStruct((2,), jnp.int32)}
  return jax.jit(steps.train_step).lower(abstract, batch).as_text()


@pytest.mark.parametrize("name,shape", NETWORKS)
def test_an_accelerator_step_is_xlas_convolutions_without_custom_calls(name, shape):
  plain = models.create(name, num_classes=10, **OPTIONS.get(name, {}))
  # GPUs and TPUs both take the plain network itself, so one lowering checks both.
  for platform in ("gpu", "tpu"):
    assert cpu.for_platform(plain, platform, choice="auto") is plain, platform
  text = _lowered_train_step(plain, shape)
  assert "stablehlo.convolution" in text and "custom_call" not in text


@pytest.mark.skipif(bool(ONEDNN_MISSING), reason=str(ONEDNN_MISSING))
@pytest.mark.parametrize("name,shape", [("lenet5", (28, 28, 1)), ("resnet20", (32, 32, 3)),
                                        ("googlenet", (64, 64, 3))])
def test_a_cpu_step_takes_onednn(name, shape):
  """The control of the test above: the same networks for the CPU call oneDNN's binding,
  through the fields they pass down to their blocks."""
  model = cpu.for_platform(models.create(name, num_classes=10), "cpu", choice="onednn")
  text = _lowered_train_step(model, shape)
  assert "jaxcnn_onednn_conv_kernel_gradient" in text
  if name != "lenet5":
    assert "jaxcnn_onednn_batch_norm_forward" in text


def test_the_layers_for_each_platform_and_choice(monkeypatch):
  assert cpu.layers_for("gpu", choice="onednn") == {} and cpu.layers_for("tpu") == {}
  assert cpu.layers_for("cpu", choice="xla") == {}
  matmul = cpu.layers_for("cpu", choice="matmul")
  assert matmul == {"conv": conv.module("matmul"), "max_pool_2x2": pooling.max_pool_2x2}
  partitioned = cpu.layers_for("cpu", partitioned=True, choice="matmul")
  assert partitioned["conv"] is conv.module("matmul", partitioned=True)
  if not ONEDNN_MISSING:
    assert cpu.layers_for("cpu", choice="onednn")["norm"] is cpu_batch_norm.BatchNorm
    # GSPMD cannot partition oneDNN's custom calls: none for a partitioned step.
    assert "norm" not in cpu.layers_for("cpu", partitioned=True, choice="onednn")
  monkeypatch.setenv("JAXCNN_CONV", "matmul")
  assert cpu.layers_for("cpu") == matmul
  monkeypatch.setenv("JAXCNN_CONV", "fast")
  with pytest.raises(UserError, match="JAXCNN_CONV must be one of auto, onednn, matmul, xla"):
    cpu.layers_for("cpu")


def test_without_onednn_auto_falls_back_and_onednn_says_why(monkeypatch):
  def unavailable():
    raise onednn.Unavailable("no C++ compiler (c++, or $CXX) to build the oneDNN binding")

  monkeypatch.setattr(onednn, "load", unavailable)
  assert cpu.layers_for("cpu", choice="auto")["conv"] is conv.module("matmul")
  assert "norm" not in cpu.layers_for("cpu", choice="auto")
  with pytest.raises(onednn.Unavailable, match="no C\\+\\+ compiler"):
    cpu.layers_for("cpu", choice="onednn")


def test_only_fields_left_at_their_defaults_are_replaced():
  """A network built with a module of the researcher's own keeps it; one without the fields
  (a module of another codebase) is returned as it is."""
  class Mine(nn.Conv):
    pass

  model = models.create("resnet20", num_classes=10, conv=Mine)
  adapted = cpu.for_platform(model, "cpu", choice="matmul")
  assert adapted.conv is Mine and adapted.norm is model.norm
  assert cpu.for_platform(models.create("lenet5", num_classes=10), "cpu",
                          choice="matmul").conv is conv.module("matmul")
  bare = nn.Dense(3)
  assert cpu.for_platform(bare, "cpu", choice="matmul") is bare


def test_the_training_layer_builds_the_model_for_its_devices():
  devices = jax.devices()
  one, mesh = parallel_lib.JitParallel(devices[:1]), parallel_lib.JitParallel(devices)
  plain = models.create("resnet20", num_classes=10)
  assert one.platform == "cpu" and one.host_trains and not one.partitioned and mesh.partitioned
  assert not parallel_lib.JitParallel(devices, per_replica_batch_norm=True).partitioned
  assert not parallel_lib.PmapParallel(devices).partitioned
  assert state_lib.for_devices(plain, one).conv is cpu.layers_for("cpu")["conv"]
  assert state_lib.for_devices(plain, mesh).conv is cpu.layers_for("cpu", partitioned=True)["conv"]


def test_process_settings_only_for_a_cpu_platform():
  # JAX_PLATFORMS decides; without it an installed GPU or TPU plugin means an accelerator host.
  assert cpu.platform_before_start({}, installed=set()) == "cpu"
  assert cpu.platform_before_start({}, installed={"xla_cuda12"}) == "accelerator"
  assert cpu.platform_before_start({"JAX_PLATFORMS": "cpu"}, installed={"libtpu"}) == "cpu"
  assert cpu.platform_before_start({"JAX_PLATFORMS": "tpu,cpu"}, installed=set()) == "accelerator"
  eight = "--xla_force_host_platform_device_count=8"
  for environ, installed in [({"XLA_FLAGS": eight}, {"xla_cuda12"}),
                             ({"XLA_FLAGS": eight, "JAX_PLATFORMS": "cuda"}, set())]:
    before = dict(environ)
    assert cpu.configure_process(environ, installed) == []
    assert environ == before  # no NPROC; malloc left alone
  environ = {"XLA_FLAGS": eight, "JAXCNN_HOST_MEMORY": "release"}
  assert cpu.configure_process(environ, installed=set()) == [f"NPROC={environ['NPROC']}"]


def test_tf_data_keeps_its_defaults_unless_the_host_trains():
  accelerator_host, cpu_host = pipeline._options(False), pipeline._options(True)
  assert accelerator_host.autotune.enabled is not False
  assert accelerator_host.threading.max_intra_op_parallelism is None
  assert cpu_host.autotune.enabled is False and cpu_host.threading.max_intra_op_parallelism == 1


def test_models_import_nothing_cpu_specific():
  """No file of jaxcnn/models/ imports jaxcnn.cpu (read from their import statements)."""
  import ast
  import pathlib
  folder = pathlib.Path(models.__file__).parent
  for path in folder.glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ImportFrom):
        names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
      elif isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      else:
        continue
      assert not any(n == "jaxcnn.cpu" or n.startswith("jaxcnn.cpu.") for n in names), path


def test_plain_and_cpu_networks_agree():
  """The CPU's layers compute what flax's compute: one training step's loss and gradients
  (within float32's rounding, which batch norm over a small batch amplifies)."""
  plain = models.create("resnet20", num_classes=10)
  fast = cpu.for_platform(plain, "cpu", choice="auto")
  x = jax.random.normal(jax.random.PRNGKey(0), (16, 32, 32, 3))
  variables = plain.init(jax.random.PRNGKey(1), x, train=False)

  def loss_and_grads(model):
    def loss(params):
      logits, _ = model.apply({**variables, "params": params}, x, train=True,
                              mutable=["batch_stats"])
      return jnp.sum(jnp.sin(logits))
    return jax.jit(jax.value_and_grad(loss))(variables["params"])

  (a, ga), (b, gb) = loss_and_grads(plain), loss_and_grads(fast)
  np.testing.assert_allclose(a, b, rtol=1e-5)
  scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(ga))
  for p, q in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
    np.testing.assert_allclose(p, q, atol=1e-3 * scale)
