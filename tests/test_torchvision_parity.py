"""The zoo's ImageNet networks are torchvision's, proven output for output.

For each architecture: a torchvision model with random weights, random batch-norm affine
parameters and running statistics (measured on a random batch, then perturbed), converted
with jaxcnn.convert.from_torchvision. On a random input our eval-mode float32 logits must
equal torchvision's within 1e-4 of the logit scale: max |ours - theirs| <= 1e-4 *
max(1, max |theirs|). (The deep networks' logits reach 50-190, where float32 summation
order alone moves the last digits: an absolute 1e-4 would test the scale, not the network.)

torchvision is never a dependency of the project: these tests are skipped where it is not
installed. To run them (docs/models.md records the measured differences):
    python -m venv tv-venv && tv-venv/bin/pip install torch torchvision -e '.[test]'
    tv-venv/bin/python -m pytest tests/test_torchvision_parity.py -s
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from jaxcnn import convert, models  # noqa: E402

TOLERANCE = 1e-4

NETWORKS = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn",
            "vgg19_bn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
            "googlenet", "inception_v3"]


def _torchvision_model(name: str, **options):
  builder = getattr(torchvision.models, name)
  if name in ("googlenet", "inception_v3"):
    # aux_logits=True: the auxiliary heads' weights convert too (they do not change the
    # eval-mode output); init_weights silences torchvision's warning about its default.
    options = {"aux_logits": True, "init_weights": True, **options}
  return builder(weights=None, **options)


def _randomise_batch_norm(model, generator, images) -> None:
  """Random BN affine parameters and running statistics that keep activations near unit scale.

  Raw random statistics let activations grow layer by layer (Inception-v3's logits reach
  1e13), which hides errors under the scale. So the running statistics are first measured on
  a random batch (one train-mode forward pass, cumulative averages), then perturbed: every BN
  still matters, and the logits stay of order one.
  """
  norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  for module in norms:
    n = module.num_features
    module.weight.data = torch.rand(n, generator=generator) + 0.5
    module.bias.data = torch.randn(n, generator=generator) * 0.1
    module.reset_running_stats()
    module.momentum = None  # cumulative average: one batch sets the statistics exactly
  model.train()
  with torch.no_grad():
    model(images)
  for module in norms:
    n = module.num_features
    std = module.running_var.sqrt()
    module.running_mean += 0.1 * std * torch.randn(n, generator=generator)
    module.running_var *= torch.rand(n, generator=generator) * 0.4 + 0.8
    module.momentum = 0.1


def max_differences(name: str, batch: int = 2, seed: int = 0, **options):
  """(max |ours - torchvision's|, max |torchvision's logits|) on a random batch."""
  torch.manual_seed(seed)
  generator = torch.Generator().manual_seed(seed)
  model = _torchvision_model(name, **options)
  height, width, channels = models.input_shape(name)
  images = torch.randn(batch, channels, height, width, generator=generator)
  _randomise_batch_norm(model, generator,
                        torch.randn(batch, channels, height, width, generator=generator))
  model.eval()
  with torch.no_grad():
    theirs = model(images).numpy()

  variables = convert.from_torchvision(name, model.state_dict())
  ours_model = models.create(name, num_classes=theirs.shape[-1], **options)
  nhwc = jnp.asarray(images.numpy().transpose(0, 2, 3, 1))
  ours = np.asarray(jax.jit(lambda v, x: ours_model.apply(v, x, train=False))(variables, nhwc))
  assert ours.shape == theirs.shape
  return float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())


@pytest.mark.parametrize("name,options", [(n, {}) for n in NETWORKS] +
                         [("googlenet", {"transform_input": True})])
def test_logits_equal_torchvisions(name, options):
  diff, scale = max_differences(name, **options)
  print(f"\n{name} {options or ''}: max |diff| {diff:.2e}, max |logit| {scale:.2e}, "
        f"relative {diff / max(1.0, scale):.2e}")
  assert diff <= TOLERANCE * max(1.0, scale)


def test_converted_googlenet_without_aux_heads():
  # torchvision's pretrained GoogLeNet drops its auxiliary heads: the converted variables
  # then fit the model created with aux_logits=False, and the logits still agree.
  torch.manual_seed(1)
  model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).eval()
  variables = convert.from_torchvision("googlenet", model.state_dict())
  assert "aux1" not in variables["params"]
  images = torch.randn(1, 3, 96, 96)
  with torch.no_grad():
    theirs = model(images).numpy()
  ours = models.create("googlenet", num_classes=1000, aux_logits=False).apply(
      variables, jnp.asarray(images.numpy().transpose(0, 2, 3, 1)), train=False)
  np.testing.assert_allclose(ours, theirs, atol=TOLERANCE * max(1.0, np.abs(theirs).max()))


def test_mismatched_state_dict_is_refused():
  from jaxcnn.errors import UserError
  state_dict = torchvision.models.resnet18(weights=None).state_dict()
  with pytest.raises(UserError):
    convert.from_torchvision("resnet34", state_dict)
  with pytest.raises(UserError):
    convert.from_torchvision("googlenet", state_dict)
