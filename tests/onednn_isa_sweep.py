"""Every call the models make into oneDNN's binding, checked against XLA at each ISA level.

    python tests/onednn_isa_sweep.py [--levels=SSE41,AVX2,AVX512_CORE,ALL] [--models=NAME,...]
                                     [--cases=FILE]

oneDNN picks its kernels by the CPU's instruction set, so a kernel that is right here may
write out of bounds on another CPU. `ONEDNN_MAX_CPU_ISA` holds oneDNN to a lower level than
the CPU offers, which is how this covers the CPUs we are not running on.

1. Collect: every registered network (at the input CATALOG names) and every recipe's
   network (at the recipe's crop, with its model options) is traced as its training step
   (batch 2: forward, both gradients, batch norm's statistics) and its evaluation (batch 3),
   with the CPU's oneDNN layers (jaxcnn.cpu.for_platform(..., choice="onednn")). Each distinct call to a jaxcnn_onednn_* target (its operand
   shapes and attributes: kernel, strides and padding for a convolution pass, channels and
   map for batch norm) is one case.
2. Check: a child process per level (a level this CPU cannot reach, or one that oneDNN
   reports as the same as a level already run, is skipped) runs every case through the
   binding on random inputs and compares with XLA's convolution (its vjp for the input
   gradient; the kernel gradient by jaxcnn.cpu.conv's XLA matrix-product formulation,
   itself checked against XLA's in tests/test_conv.py, because XLA's own takes seconds
   per 224x224 layer) and with batch norm written in jax.numpy.

Each child runs with ONEDNN_VERBOSE=1; the report names the ISA oneDNN used and the
implementations it ran. Exit 0 when every case matches at every level. Run under
AddressSanitizer by scripts/onednn_asan.sh; in the suite by tests/test_conv.py.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

LEVELS = ("SSE41", "AVX2", "AVX512_CORE", "ALL")
TRAIN_BATCH, EVAL_BATCH = 2, 3
# configs/ is a package at the repository's root, beside jaxcnn/.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PREFIX = "jaxcnn_onednn_"


def _networks(names):
  """(label, model, input shape) for each registered network and each recipe's."""
  import importlib

  import configs
  from jaxcnn import cpu, models
  from jaxcnn.train import state as state_lib

  def with_onednn(model):
    return cpu.for_platform(model, "cpu", choice="onednn")

  for name in models.list_models():
    if not names or name in names:
      yield name, with_onednn(models.create(name, num_classes=10)), models.input_shape(name)
  for recipe in configs.RECIPES:
    config = importlib.import_module(f"configs.{recipe}").get_config()
    if names and config.model not in names:
      continue
    channels = 1 if config.dataset in ("fashion_mnist", "mnist") else 3
    model = with_onednn(state_lib.create_model(config))
    yield f"configs/{recipe}", model, (config.image_size, config.image_size, channels)


def _calls_in(jaxpr, found):
  import jax.extend
  for eqn in jaxpr.eqns:
    target = eqn.params.get("target_name", "")
    if eqn.primitive.name == "ffi_call" and target.startswith(_PREFIX):
      attributes = {k: (v.val.tolist() if hasattr(v, "val") else float(v))
                    for k, v in eqn.params["attributes"]}
      found.append({"target": target[len(_PREFIX):],
                    "operands": [list(v.aval.shape) for v in eqn.invars],
                    "results": [list(a.shape) for a in eqn.params["result_avals"]],
                    "attributes": attributes})
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      _calls_in(sub, found)


def collect(names=()):
  """The distinct binding calls of the networks' training and evaluation steps."""
  import jax
  import jax.numpy as jnp

  cases, seen, sources = [], set(), collections.Counter()
  for label, model, shape in _networks(set(names)):
    x_train = jnp.zeros((TRAIN_BATCH, *shape), jnp.float32)
    x_eval = jnp.zeros((EVAL_BATCH, *shape), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x_eval, train=False))
    params, rest = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def loss(params, rest, x):
      logits, _ = model.apply({"params": params, **rest}, x, train=True,
                              rngs={"dropout": jax.random.PRNGKey(1)},
                              mutable=["batch_stats"])
      logits = logits[0] if isinstance(logits, (tuple, list)) else logits
      return jnp.sum(logits.astype(jnp.float32))

    found = []
    _calls_in(jax.make_jaxpr(jax.grad(loss))(params, rest, x_train).jaxpr, found)
    _calls_in(jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(
        variables, x_eval).jaxpr, found)
    for case in found:
      key = json.dumps(case, sort_keys=True)
      if key not in seen:
        seen.add(key)
        cases.append(case)
        sources[label] += 1
  return cases, sources


def _kernel_shape(case):
  return case["results"][0] if case["target"] == "conv_kernel_gradient" else case["operands"][1]


def _pairs(padding):
  top, bottom, left, right = padding
  return ((top, bottom), (left, right))


def _inputs(case, key):
  """Random operands for a case; batch norm's statistics are the batch's own."""
  import jax
  import jax.numpy as jnp
  keys = jax.random.split(key, len(case["operands"]))
  ops = [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, case["operands"])]
  if case["target"] in ("conv_forward", "conv_input_gradient"):  # (x or g, kernel)
    return [ops[0], 0.1 * ops[1]]  # a kernel of the scale an initialiser gives
  if case["target"] == "conv_kernel_gradient":
    return ops
  x = ops[0]
  if case["target"] == "batch_norm_forward":
    return [x, 1.0 + 0.1 * ops[1], 0.1 * ops[2]]
  # backward: x, dy, mean, var, scale
  axes = tuple(range(x.ndim - 1))
  return [x, ops[1], jnp.mean(x, axes), jnp.var(x, axes), 1.0 + 0.1 * ops[4]]


def _reference(case, ops):
  """XLA's result for a case's operands (module docstring)."""
  import jax
  import jax.numpy as jnp
  from jax import lax

  from jaxcnn.cpu import conv
  target, attrs = case["target"], case["attributes"]
  if target.startswith("conv"):
    strides, padding, dims = tuple(attrs["strides"]), _pairs(attrs["padding"]), conv._NHWC
    if target == "conv_forward":
      x, kernel = ops
      return (lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=dims),)
    if target == "conv_input_gradient":
      g, kernel = ops
      x = jnp.zeros(case["results"][0], jnp.float32)
      _, vjp = jax.vjp(lambda x: lax.conv_general_dilated(x, kernel, strides, padding,
                                                         dimension_numbers=dims), x)
      return vjp(g)
    x, g = ops
    return (conv._weight_gradient(x, g, tuple(case["results"][0]), strides, padding, None),)
  epsilon = attrs["epsilon"]
  axes = tuple(range(ops[0].ndim - 1))

  def normalise(x, scale, shift):
    mean, var = jnp.mean(x, axes), jnp.var(x, axes)
    return (x - mean) * lax.rsqrt(var + epsilon) * scale + shift, mean, var

  if target == "batch_norm_forward":
    return normalise(*ops)
  x, dy, _, _, scale = ops
  _, vjp = jax.vjp(lambda x, s, b: normalise(x, s, b)[0], x, scale, jnp.zeros_like(scale))
  return vjp(dy)


def _binding(case, ops):
  import jax
  import numpy as np
  results = tuple(jax.ShapeDtypeStruct(tuple(s), np.float32) for s in case["results"])
  attrs = {k: (np.float32(v) if isinstance(v, float) else np.asarray(v, np.int64))
           for k, v in case["attributes"].items()}
  return jax.ffi.ffi_call(_PREFIX + case["target"], results)(*ops, **attrs)


def check(cases):
  """Mismatch messages of every case (the binding against XLA), in this process's ISA."""
  import jax
  import numpy as np

  from jaxcnn.cpu import onednn
  onednn.load()
  failures = []
  for i, case in enumerate(cases):
    ops = _inputs(case, jax.random.PRNGKey(i))
    ours = jax.jit(lambda *ops: _binding(case, ops))(*ops)
    reference = jax.jit(lambda *ops: _reference(case, ops))(*ops)
    for j, (a, b) in enumerate(zip(ours, reference)):
      a, b = np.asarray(a), np.asarray(b)
      scale = float(np.max(np.abs(b))) or 1.0
      error = float(np.max(np.abs(a - b))) / scale
      # Relative to the largest value: a kernel gradient sums up to 10^5 products.
      if not np.all(np.isfinite(a)) or error > 1e-4:
        failures.append(f"{case['target']} {case['operands']} {case['attributes']}: "
                        f"result {j} differs from XLA's by {error:.2e} of its largest value")
  return failures


def _run_level(level, cases_file):
  """Runs `check` in a child held to `level`: (exit code, ISA line, implementations, output)."""
  # Each case compiles two small programs that run once: XLA's optimisations would take most
  # of the child's time and change nothing that is checked (oneDNN's kernels are its own).
  env = dict(os.environ, ONEDNN_VERBOSE="1", JAXCNN_CONV="onednn",
             JAX_DISABLE_MOST_OPTIMIZATIONS="1")
  if level != "ALL":
    env["ONEDNN_MAX_CPU_ISA"] = level
  else:
    env.pop("ONEDNN_MAX_CPU_ISA", None)
  child = subprocess.run([sys.executable, __file__, "--check", cases_file],
                         capture_output=True, text=True, env=env)
  isa = next((line.split("isa:", 1)[1].strip() for line in child.stdout.splitlines()
              if ",info,cpu,isa:" in line), "unknown")
  implementations = collections.Counter()
  for line in child.stdout.splitlines():
    # onednn_verbose,exec,cpu,<primitive>,<implementation>,<propagation>,...
    fields = line.split(",")
    if fields[0] == "onednn_verbose" and "exec" in fields[1:3]:
      at = fields.index("exec")
      if len(fields) > at + 4 and fields[at + 2] in ("convolution", "batch_normalization"):
        implementations[f"{fields[at + 2]} {fields[at + 4]}: {fields[at + 3]}"] += 1
  report = "\n".join(line for line in child.stdout.splitlines()
                     if not line.startswith("onednn_verbose"))
  return child.returncode, isa, implementations, report + child.stderr[-4000:]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--levels", default=",".join(LEVELS))
  parser.add_argument("--models", default="", help="comma-separated model names; default all")
  parser.add_argument("--cases", default="", help="write the collected cases to this JSON file")
  parser.add_argument("--check", default="", help=argparse.SUPPRESS)  # the child's entry
  args = parser.parse_args(argv)
  if args.check:
    with open(args.check) as f:
      failures = check(json.load(f))
    for failure in failures:
      print(failure)
    print(f"{len(failures)} mismatches")
    return 1 if failures else 0

  cases, sources = collect([n for n in args.models.split(",") if n])
  from jaxcnn.cpu import onednn
  outside = [case for case in cases if case["target"].startswith("conv")
             and not onednn.verified(_kernel_shape(case), case["attributes"]["strides"],
                                     _pairs(case["attributes"]["padding"]))]
  if outside:  # the tracing routes these to XLA: the envelope no longer covers the networks
    print(f"{len(outside)} convolutions of the networks lie outside onednn.verified's "
          f"envelope and take XLA's convolution: {outside[:3]}")
  kinds = collections.Counter(case["target"] for case in cases)
  print(f"{len(cases)} distinct binding calls from {len(sources)} networks and recipes: "
        + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())), flush=True)
  with tempfile.TemporaryDirectory() as scratch:
    cases_file = args.cases or os.path.join(scratch, "cases.json")
    with open(cases_file, "w") as f:
      json.dump(cases, f)
    failed, isas = False, {}
    for level in args.levels.split(","):
      code, isa, implementations, report = _run_level(level, cases_file)
      if isa in isas:
        print(f"{level}: oneDNN runs {isa!r} here, as at {isas[isa]}: the same kernels",
              flush=True)
      isas.setdefault(isa, level)
      used = "".join(f"\n  {name} (x{n})" for name, n in sorted(implementations.items()))
      verdict = ("all match" if code == 0 else
                 f"FAILED ({'signal ' + str(-code) if code < 0 else 'exit ' + str(code)})")
      print(f"{level}: isa {isa}: {verdict}; implementations: {used}", flush=True)
      if code != 0:
        failed = True
        print(re.sub(r"(?m)^", "  ", report), flush=True)
  return 1 if failed or outside else 0


if __name__ == "__main__":
  sys.exit(main())
