"""Command line for the model zoo.

    python -m jaxcnn.models list
    python -m jaxcnn.models summary resnet50
    python -m jaxcnn.models summary vgg16 --num_classes 10 --image_size 32 --option head=cifar
    python -m jaxcnn.models summary lenet5 --params      # clu's per-parameter table too
"""
import argparse
import ast
import sys

from jaxcnn import models
from jaxcnn.errors import UserError


def _option(text: str):
  key, sep, value = text.partition("=")
  if not sep:
    raise argparse.ArgumentTypeError(f"options are KEY=VALUE, not {text!r}")
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value  # a bare word: a string option such as head=cifar


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxcnn.models", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest="command", required=True)
  commands.add_parser("list", help="the registered model names and their input shapes")
  s = commands.add_parser("summary", help="layers, output shapes and parameter counts")
  s.add_argument("name")
  s.add_argument("--num_classes", type=int, default=None,
                 help="default: 10 for 28x28 and 32x32 networks, 1000 otherwise")
  s.add_argument("--image_size", type=int, default=None,
                 help="default: the size the network is meant for")
  s.add_argument("--channels", type=int, default=None)
  s.add_argument("--depth", type=int, default=None, help="nesting levels to show")
  s.add_argument("--option", type=_option, action="append", default=[],
                 help="a model option KEY=VALUE (repeatable), e.g. batch_norm=True")
  s.add_argument("--params", action="store_true", help="also print every parameter's shape")
  args = parser.parse_args(argv)
  try:
    if args.command == "list":
      for name in models.list_models():
        print(f"{name:20s} {models.input_shape(name)}")
      return 0
    from jaxcnn.models.overview import parameter_table, summarize  # flax, JAX: not for `list`
    height, width, channels = models.input_shape(args.name)
    size = args.image_size or height
    shape = (size, size if args.image_size else width, args.channels or channels)
    num_classes = args.num_classes or (10 if height <= 32 else 1000)
    model = models.create(args.name, num_classes=num_classes, **dict(args.option))
    print(summarize(model, shape, depth=args.depth))
    if args.params:
      print(parameter_table(model, shape))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
