"""Config options of the training loop: half precision, profiling, pre-initialisation."""
import glob

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from jaxcnn.errors import UserError
from jaxcnn.models import vgg
from jaxcnn.train import loop, pretrained
from jaxcnn.train.state import create_train_state


def _synthetic(model, *, shape=(32, 32, 3), steps=2, **fields):
  c = default.get_config()
  c.model = model
  c.dataset = "synthetic"
  c.synthetic_image_shape = shape
  c.synthetic_train_examples = 32
  c.synthetic_test_examples = 16
  c.image_size = shape[0]
  c.batch_size = 16
  c.eval_batch_size = 16
  c.num_train_steps = steps
  c.progress_every_secs = 3600.0
  c.update(fields)
  return c


def test_half_precision_computes_in_bfloat16_with_float32_parameters(tmp_path, one_device):
  config = _synthetic("resnet20", half_precision=True)
  run = loop.prepare(config)
  assert run.model.dtype == jnp.bfloat16
  variables = run.model.init(jax.random.PRNGKey(0), jnp.zeros((2, 32, 32, 3)), train=False)
  assert {x.dtype for x in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  assert run.model.apply(variables, jnp.zeros((2, 32, 32, 3)), train=False).dtype == jnp.bfloat16
  summary = loop.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(summary["loss"])


def test_profile_steps_write_a_tensorboard_trace(tmp_path, one_device):
  # Steps far shorter than clu's default 3 s minimum: the window closes after 2 steps.
  within, past_the_end = tmp_path / "within", tmp_path / "past_the_end"
  loop.train_and_evaluate(_synthetic("lenet5", shape=(28, 28, 1), steps=4, profile_steps=2,
                                     profile_first_step=1), str(within))
  assert glob.glob(str(within / "plugins" / "profile" / "*" / "*.xplane.pb"))
  # A window reaching past the last step is closed and written when training ends.
  loop.train_and_evaluate(_synthetic("lenet5", shape=(28, 28, 1), steps=4, profile_steps=5,
                                     profile_first_step=3), str(past_the_end))
  assert glob.glob(str(past_the_end / "plugins" / "profile" / "*" / "*.xplane.pb"))


def test_vgg_pre_initialisation_takes_the_papers_layers_from_configuration_a(tmp_path, one_device):
  options = {"head": "cifar"}
  source_dir, target_dir = tmp_path / "vgg11", tmp_path / "vgg16"
  loop.train_and_evaluate(_synthetic("vgg11", model_options=options), str(source_dir))
  source = pretrained.load_variables(str(source_dir))["params"]
  layers = vgg.paper_pre_init_layers("D")[:4] + ("fc=fc",)  # the cifar head: one dense layer
  config = _synthetic("vgg16", model_options=options, init_from=str(source_dir),
                      init_from_layers=layers, num_train_steps=1, learning_rate=0.0)
  loop.train_and_evaluate(config, str(target_dir))
  target = pretrained.load_variables(str(target_dir))["params"]
  # A zero learning rate keeps what was copied: A's conv1, conv2, conv3, conv4 sit at D's
  # conv1, conv3, conv5, conv6 (the same shapes), and the dense layer is the same.
  for pair in layers:
    to, frm = pair.split("=")
    np.testing.assert_array_equal(target[to]["kernel"], source[frm]["kernel"])
  # The other layers keep their fresh initialisation.
  run = loop.prepare(config)
  fresh = create_train_state(run.model, run.tx, run.image_shape, config.seed).params
  for name in ("conv2", "conv4", "conv13"):
    np.testing.assert_array_equal(target[name]["kernel"], fresh[name]["kernel"])
  assert not np.array_equal(target["conv1"]["kernel"], fresh["conv1"]["kernel"])


def test_pre_initialisation_refuses_layers_that_do_not_fit(tmp_path):
  source = {"params": {"conv1": {"kernel": np.zeros((3, 3, 3, 64))}}, "batch_stats": {}}
  target = {"params": {"conv1": {"kernel": np.zeros((3, 3, 3, 32))}}, "batch_stats": {}}
  with pytest.raises(UserError, match="does not fit layer 'conv1'"):
    pretrained.copy_layers(target, source, ())
  with pytest.raises(UserError, match="which this model does not have"):
    pretrained.copy_layers(target, source, ("conv9=conv1",))
  with pytest.raises(UserError, match="holds no checkpoint"):
    pretrained.load_variables(str(tmp_path))
