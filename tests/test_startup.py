"""A run starts in seconds: compiled programs come from JAX's persistent cache in a second
run, and what a command does not need is not imported (TensorFlow for data in memory, JAX
for `python -m jaxcnn.models list` and `launch.py --help`, the training loop for predict)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxcnn import compile_cache
from jaxcnn.train import events
from tests import launcher
from tests.conftest import needs_fashion_mnist


def _modules_after(code: str) -> set[str]:
  """The top-level packages a fresh interpreter has imported after running `code`."""
  probe = (f"{code}\nimport sys\nprint('MODULES', ' '.join(sorted({{m.split('.')[0] for m in "
           f"sys.modules}})))")
  p = subprocess.run([sys.executable, "-c", probe], cwd=launcher.ROOT, capture_output=True,
                     text=True, env=launcher.environment(), timeout=120)
  line = [x for x in p.stdout.splitlines() if x.startswith("MODULES ")]
  assert line, p.stdout + p.stderr
  return set(line[-1].split()[1:])


def test_models_list_imports_neither_jax_nor_tensorflow():
  found = _modules_after("import sys\nfrom jaxcnn.models.__main__ import main\n"
                         "assert main(['list']) == 0")
  assert not found & {"jax", "flax", "tensorflow", "matplotlib"}


def test_launch_help_imports_no_jax():
  found = _modules_after("import runpy, sys\nsys.argv = ['launch.py', '--help']\n"
                         "try:\n  runpy.run_path('launch.py', run_name='__main__')\n"
                         "except SystemExit:\n  pass")
  assert not found & {"jax", "tensorflow", "orbax"}


def test_importing_predict_imports_nothing_heavy():
  found = _modules_after("import jaxcnn.predict")
  assert not found & {"jax", "flax", "tensorflow", "orbax", "matplotlib", "clu"}


def test_the_cache_directory_comes_from_the_config_then_the_environment(monkeypatch, tmp_path):
  for name in (compile_cache.ENV, "JAX_COMPILATION_CACHE_DIR"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert compile_cache.directory() == str(tmp_path / "jaxcnn" / "jax")
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/jax/own")
  assert compile_cache.directory() == "/jax/own"
  monkeypatch.setenv(compile_cache.ENV, "/from/env")
  assert compile_cache.directory() == "/from/env"
  assert compile_cache.directory("/from/config") == "/from/config"
  assert compile_cache.directory("off") is None
  monkeypatch.setenv(compile_cache.ENV, "off")
  assert compile_cache.directory() is None
  assert compile_cache.directory("/from/config") == "/from/config"


def test_the_cache_can_be_turned_off(tmp_path):
  """JAXCNN_COMPILATION_CACHE=off: nothing is looked up or written (a fresh process)."""
  code = ("import jax, jax.numpy as jnp\nfrom jaxcnn import compile_cache\n"
          "assert compile_cache.enable() is None\n"
          "jax.jit(lambda x: x * 3 + 1)(jnp.ones(7)).block_until_ready()\n"
          "t = compile_cache.tally()\nprint('TALLY', t.requests, t.hits)\n"
          "print(compile_cache.describe(compile_cache.Tally(), t))")
  env = dict(launcher.environment(), JAXCNN_COMPILATION_CACHE="off",
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax"))
  p = subprocess.run([sys.executable, "-c", code], cwd=launcher.ROOT, env=env,
                     capture_output=True, text=True, timeout=120)
  assert p.returncode == 0, p.stderr
  assert "TALLY 0 0" in p.stdout and "(no compilation cache)" in p.stdout
  assert not (tmp_path / "jax").exists()


def test_a_cache_directory_that_cannot_be_made_is_a_usage_error(tmp_path):
  (tmp_path / "file").write_text("")
  code, _, err = launcher.run(str(tmp_path / "run"),
                              f"--config.compilation_cache={tmp_path / 'file' / 'cache'}")
  assert code == 2
  last = err.strip().splitlines()[-1]
  assert last.startswith("error: Cannot create the compilation cache directory")
  assert "--config.compilation_cache=off" in last


def test_scalars_are_written_as_tensorboard_reads_them(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator
  assert events.crc32c(b"123456789") == 0xE3069283  # CRC-32C's check value
  writer = events.ScalarWriter(str(tmp_path))
  writer.write_scalars(3, {"train_loss": 1.25, "test_accuracy": 0.5})
  writer.write_scalars(7, {"train_loss": 0.75})
  writer.close()
  acc = event_accumulator.EventAccumulator(str(tmp_path))
  acc.Reload()
  assert [(e.step, e.value) for e in acc.Scalars("train_loss")] == [(3, 1.25), (7, 0.75)]
  assert [(e.step, e.value) for e in acc.Scalars("test_accuracy")] == [(3, 0.5)]


def _launch(workdir, cache_dir):
  """A 2-step LeNet run through launch.py, with every import logged (-X importtime)."""
  env = dict(launcher.environment(), PYTHONPROFILEIMPORTTIME="1")
  env.pop(compile_cache.ENV, None)
  p = subprocess.run(launcher.launch_args(workdir, "--config.num_train_steps=2",
                                          f"--config.compilation_cache={cache_dir}"),
                     cwd=launcher.ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-3000:]
  imported = {line.split("|")[-1].strip().split(".")[0] for line in p.stderr.splitlines()
              if line.startswith("import time:")}
  compilation = [line for line in p.stdout.splitlines() if line.startswith("Compilation:")]
  return imported, compilation, p.stdout


@pytest.fixture(scope="module")
def cold_and_warm(tmp_path_factory):
  """The same config twice, in fresh processes, the second with the cache the first filled."""
  root = tmp_path_factory.mktemp("cache")
  cache = str(root / "jax")
  cold = _launch(str(root / "cold"), cache)
  warm = _launch(str(root / "warm"), cache)
  return str(root), cache, cold, warm


@needs_fashion_mnist
def test_a_second_run_loads_its_programs_from_the_cache(cold_and_warm):
  _, cache, (_, cold, _), (_, warm, _) = cold_and_warm
  assert len(cold) == 1 and "compiled and saved to the compilation cache" in cold[0], cold
  assert len(warm) == 1 and "programs from the compilation cache" in warm[0], warm
  assert warm[0].split("Compilation: ")[1].startswith(tuple("0123456789"))
  assert "all " in warm[0] and cache in warm[0]
  assert any(name.startswith("jit_step-") for name in os.listdir(cache))


@needs_fashion_mnist
def test_cached_programs_with_onednn_custom_calls_train_the_same(cold_and_warm):
  """LeNet's step calls oneDNN's convolutions (FFI custom calls) on this CPU: loaded from the
  cache in a fresh process, it finds them and computes what the compiled one did."""
  root, *_ = cold_and_warm
  rows = {run: [json.loads(line) for line in open(os.path.join(root, run, "metrics.jsonl"))]
          for run in ("cold", "warm")}
  timing = ("seconds", "images_per_sec")
  assert ([{k: v for k, v in r.items() if k not in timing} for r in rows["cold"]]
          == [{k: v for k, v in r.items() if k not in timing} for r in rows["warm"]])
  cold, warm = (launcher.saved_state(os.path.join(root, run)) for run in ("cold", "warm"))
  assert cold.keys() == warm.keys()
  for key in cold:
    np.testing.assert_array_equal(cold[key], warm[key], err_msg=key)


@needs_fashion_mnist
def test_a_run_on_data_in_memory_never_imports_tensorflow(cold_and_warm):
  _, _, (cold_imports, _, _), (warm_imports, _, _) = cold_and_warm
  for imported in (cold_imports, warm_imports):
    assert "jax" in imported and "matplotlib" in imported  # the log is complete
    assert not imported & {"tensorflow", "tensorflow_datasets", "keras"}


@needs_fashion_mnist
def test_predict_does_not_import_the_training_loop(cold_and_warm, tmp_path):
  from PIL import Image
  root, *_ = cold_and_warm
  image = tmp_path / "shirt.png"
  Image.fromarray(np.full((28, 28), 200, np.uint8)).save(image)
  found = _modules_after(
      "import sys\nfrom jaxcnn import predict\n"
      f"top = predict.predict({os.path.join(root, 'warm')!r}, [{str(image)!r}])\n"
      "assert len(top[0][1]) == 5\n"
      "assert not {'jaxcnn.train.loop', 'clu.periodic_actions', 'clu.metric_writers'} & "
      "set(sys.modules), sorted(m for m in sys.modules if m.startswith(('jaxcnn', 'clu')))")
  assert "jax" in found  # (and TensorFlow, which decodes the image, with its Keras)
