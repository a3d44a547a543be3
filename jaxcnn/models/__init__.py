"""Model registry: every network is a flax.linen module created by name.

    model = jaxcnn.models.create("lenet5", num_classes=10)
    jaxcnn.models.list_models()
    jaxcnn.models.input_shape("resnet50")   # (224, 224, 3): the size the network is meant for
    print(jaxcnn.models.summary(model, (28, 28, 1)))
"""
from typing import Any, Callable

import flax.linen as nn

from jaxcnn.errors import UserError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_INPUT_SHAPES: dict[str, tuple[int, int, int]] = {}


def register(name: str, input_shape: tuple[int, int, int] | None = None, **defaults: Any):
  """Registers a module class (or factory) under `name`, with preset keyword options.

  `input_shape` (H, W, C) records the input the network is meant for (summaries, tests,
  weight conversion); it is metadata only and not passed to the module.
  """

  def wrap(cls):
    if name in _REGISTRY:
      raise ValueError(f"Model {name!r} is registered twice.")
    _REGISTRY[name] = lambda **kw: cls(**{**defaults, **kw})
    if input_shape is not None:
      _INPUT_SHAPES[name] = tuple(input_shape)
    return cls

  return wrap


def list_models() -> list[str]:
  return sorted(_REGISTRY)


def create(name: str, *, num_classes: int, **options: Any) -> nn.Module:
  """Builds the registered network `name` with `num_classes` outputs."""
  if name not in _REGISTRY:
    raise UserError(
        f"Unknown model {name!r}; valid names are: {', '.join(list_models())}.")
  try:
    return _REGISTRY[name](num_classes=num_classes, **options)
  except TypeError as e:
    raise UserError(f"Bad options {sorted(options)} for model {name!r}: {e}.") from e


def input_shape(name: str) -> tuple[int, int, int]:
  """The (H, W, C) input `name` is meant for; (28, 28, 1) when none was registered."""
  if name not in _REGISTRY:
    raise UserError(
        f"Unknown model {name!r}; valid names are: {', '.join(list_models())}.")
  return _INPUT_SHAPES.get(name, (28, 28, 1))


def default_image_size(name: str) -> int:
  """The side of the square input `name` is meant for: 224 ImageNet nets, 32 CIFAR, 28 LeNet."""
  return input_shape(name)[0]


def summary(model: nn.Module, image_shape: tuple[int, ...]) -> str:
  """A Keras-like table of `model`'s layers, output shapes and parameter counts."""
  from jaxcnn.models.overview import summarize  # keeps clu's import off the registry's path
  return summarize(model, image_shape)


# Importing the family modules fills the registry.
from jaxcnn.models import lenet  # noqa: E402,F401
from jaxcnn.models import alexnet  # noqa: E402,F401
from jaxcnn.models import vgg  # noqa: E402,F401
from jaxcnn.models import resnet  # noqa: E402,F401
from jaxcnn.models import googlenet  # noqa: E402,F401
from jaxcnn.models import inception  # noqa: E402,F401
