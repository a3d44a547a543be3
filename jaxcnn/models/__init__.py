"""Model registry: every network is a flax.linen module created by name.

    model = jaxcnn.models.create("lenet5", num_classes=10)
    jaxcnn.models.list_models()
    jaxcnn.models.input_shape("resnet50")   # (224, 224, 3): the size the network is meant for
    print(jaxcnn.models.summary(model, (28, 28, 1)))

`CATALOG` names every network with its family's module and its input; a family's module
(and with it flax and JAX) is imported when one of its networks is first created, and
registers its constructors then (`register`). Listing the networks imports none of them.
"""
import importlib
from typing import Any, Callable

from jaxcnn.errors import UserError

# name -> (family module in jaxcnn/models/, the (H, W, C) input the network is meant for:
# summaries, tests, weight conversion; metadata only, never passed to the module).
CATALOG: dict[str, tuple[str, tuple[int, int, int]]] = {
    "lenet5": ("lenet", (28, 28, 1)),
    "lenet5_classic": ("lenet", (28, 28, 1)),
    "alexnet": ("alexnet", (224, 224, 3)),
    "alexnet_d2l": ("alexnet", (224, 224, 1)),
    "alexnet_keras": ("alexnet", (224, 224, 3)),
    **{name: ("vgg", (224, 224, 3)) for name in (
        "vgg11", "vgg11_lrn", "vgg13", "vgg16c", "vgg16", "vgg19",
        "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")},
    **{name: ("resnet", (224, 224, 3)) for name in (
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "plain18", "plain34",
        "resnet18_keras")},
    **{name: ("resnet", (32, 32, 3)) for name in (
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18_cifar",
        "plain20", "plain56", "resnet18_blog", "resnet_blog_small")},
    "resnet50_keras": ("resnet", (64, 64, 3)),
    "googlenet": ("googlenet", (224, 224, 3)),
    "inception_v2": ("inception", (224, 224, 3)),
    "inception_v3": ("inception", (299, 299, 3)),
}

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(name: str, **defaults: Any):
  """Registers a module class (or factory) under `name` (listed in CATALOG), with preset
  keyword options."""

  def wrap(cls):
    if name not in CATALOG:
      raise ValueError(f"Model {name!r} is not in jaxcnn.models.CATALOG: add it there, with "
                       f"its family's module and input shape.")
    if name in _REGISTRY:
      raise ValueError(f"Model {name!r} is registered twice.")
    _REGISTRY[name] = lambda **kw: cls(**{**defaults, **kw})
    return cls

  return wrap


def _check(name: str) -> None:
  if name not in CATALOG:
    raise UserError(
        f"Unknown model {name!r}; valid names are: {', '.join(list_models())}.")


def list_models() -> list[str]:
  return sorted(CATALOG)


def create(name: str, *, num_classes: int, **options: Any):
  """Builds the network `name` (a flax.linen module) with `num_classes` outputs."""
  _check(name)
  importlib.import_module(f"jaxcnn.models.{CATALOG[name][0]}")  # registers its family
  try:
    return _REGISTRY[name](num_classes=num_classes, **options)
  except TypeError as e:
    raise UserError(f"Bad options {sorted(options)} for model {name!r}: {e}.") from e


def input_shape(name: str) -> tuple[int, int, int]:
  """The (H, W, C) input `name` is meant for."""
  _check(name)
  return CATALOG[name][1]


def default_image_size(name: str) -> int:
  """The side of the square input `name` is meant for: 224 ImageNet nets, 32 CIFAR, 28 LeNet."""
  return input_shape(name)[0]


def summary(model, image_shape: tuple[int, ...]) -> str:
  """A Keras-like table of `model`'s layers, output shapes and parameter counts."""
  from jaxcnn.models.overview import summarize  # keeps clu's import off the registry's path
  return summarize(model, image_shape)
