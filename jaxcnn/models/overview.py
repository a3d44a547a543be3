"""A Keras-like summary of a network: its layers in call order, output shapes, parameters.

Shapes come from `jax.eval_shape`, so even the 140M-parameter VGGs cost no memory or time.
Layers are the flax submodules (convs, batch norms, dense, dropout, LRN, blocks); pooling
and activations are functions in these networks and take no row.
"""
import math

import jax
import jax.numpy as jnp
from clu import parameter_overview
from flax import linen as nn
from flax import traverse_util


def _shape(tree) -> str:
  shapes = [tuple(x.shape) for x in jax.tree.leaves(tree)]
  return ", ".join(str(s) for s in shapes)


def summarize(model: nn.Module, image_shape: tuple[int, ...], batch_size: int = 1,
              depth: int | None = None) -> str:
  """The table as text; `depth` limits nesting (1: only the model's direct submodules)."""
  image = jnp.zeros((batch_size, *image_shape), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, train=False))
  calls: dict[tuple[str, ...], tuple[str, str]] = {}  # path -> (class, output shapes)

  def record(next_fun, args, kwargs, context):  # wraps every module method while tracing
    if context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    path = tuple(context.module.path)
    calls.setdefault(path, (type(context.module).__name__, ""))  # entered: call order
    out = next_fun(*args, **kwargs)
    calls[path] = (calls[path][0], _shape(out))
    return out

  with nn.intercept_methods(record):
    output = jax.eval_shape(lambda v: model.apply(v, image, train=False), variables)
  params = variables["params"]
  sizes: dict[tuple[str, ...], int] = {}
  for path, leaf in traverse_util.flatten_dict(params).items():
    for i in range(1, len(path)):
      sizes[path[:i]] = sizes.get(path[:i], 0) + math.prod(leaf.shape)
  rows = [("  " * (len(path) - 1) + path[-1], kind, shape, f"{sizes.get(path, 0):,}")
          for path, (kind, shape) in calls.items()
          if path and (depth is None or len(path) <= depth)]
  header = ("Layer", "Type", "Output shape", "Param #")
  widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
  line = lambda r: "  ".join(  # noqa: E731
      c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
  rule = "=" * len(line(header))
  total = parameter_overview.count_parameters(params)
  stats = sum(math.prod(x.shape) for x in jax.tree.leaves(variables.get("batch_stats", {})))
  lines = [f"{type(model).__name__}, input {tuple(image.shape)}", rule, line(header), rule,
           *(line(r) for r in rows), rule,
           f"Output: {_shape(output)}",
           f"Total params: {total:,} ({total * 4 / 2**20:,.1f} MiB as float32)"]
  if stats:
    lines.append(f"Batch-norm statistics (not trained): {stats:,}")
  return "\n".join(lines)


def parameter_table(model: nn.Module, image_shape: tuple[int, ...]) -> str:
  """clu's per-parameter table (name, shape, size) for the same model."""
  image = jnp.zeros((1, *image_shape), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), image, train=False))
  return parameter_overview.get_parameter_overview(variables["params"], include_stats=False)
