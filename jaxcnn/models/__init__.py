"""Model registry: every network is a flax.linen module created by name.

    model = jaxcnn.models.create("lenet5", num_classes=10)
    jaxcnn.models.list_models()
"""
from typing import Any, Callable

import flax.linen as nn

from jaxcnn.errors import UserError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str, **defaults: Any):
  """Registers a module class (or factory) under `name`, with preset keyword options."""

  def wrap(cls):
    if name in _REGISTRY:
      raise ValueError(f"Model {name!r} is registered twice.")
    _REGISTRY[name] = lambda **kw: cls(**{**defaults, **kw})
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


# Importing the family modules fills the registry.
from jaxcnn.models import lenet  # noqa: E402,F401
