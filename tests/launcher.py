"""Runs launch.py in a subprocess for the end-to-end tests, and reads what it leaves behind."""
import os
import re
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRESS = re.compile(r"\((\d+)/\d+\)")  # clu ReportProgress: "... 45.1% (211/468), ETA ..."


def launch_args(workdir, *overrides, config="configs/lenet_fashion_mnist.py"):
  return [sys.executable, os.path.join(ROOT, "launch.py"), f"--config={config}",
          f"--workdir={workdir}", *overrides]


def environment(devices: int = 1) -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  # The suite's flags (tests/conftest.py) with this run's number of devices, and XLA's
  # default optimisation (conftest.py turns most of it off in-process only; a level set in
  # XLA_FLAGS is dropped here): these runs train tens of real steps, which unoptimised code
  # makes 2-3x slower. The compilation cache's directory comes with the environment.
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if not f.startswith(("--xla_force_host_platform_device_count",
                                "--xla_backend_optimization_level"))]
  env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
  env.pop("NPROC", None)  # launch.py sizes XLA's thread pool for its own number of devices
  return env


def run(workdir, *overrides, devices=1, timeout=300, **kw):
  """Runs to the end; returns (exit code, stdout, stderr)."""
  p = subprocess.run(launch_args(workdir, *overrides, **kw), cwd=ROOT, env=environment(devices),
                     capture_output=True, text=True, timeout=timeout)
  return p.returncode, p.stdout, p.stderr


def run_until(workdir, *overrides, at_step: int, sig=signal.SIGKILL, timeout=300, **kw):
  """Starts a run, sends `sig` once it reports step >= at_step; returns (code, stdout, stderr, step)."""
  p = subprocess.Popen(launch_args(workdir, "--config.progress_every_secs=0", *overrides, **kw),
                       cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
  seen = {"step": None}
  err_lines = []

  def watch():
    for line in p.stderr:
      err_lines.append(line)
      m = PROGRESS.search(line)
      if m and seen["step"] is None and int(m.group(1)) >= at_step:
        seen["step"] = int(m.group(1))
        p.send_signal(sig)

  t = threading.Thread(target=watch, daemon=True)
  t.start()
  out = p.stdout.read()
  code = p.wait(timeout=timeout)
  t.join(timeout=10)
  return code, out, "".join(err_lines), seen["step"]


def checkpoint_steps(workdir) -> list[int]:
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def saved_state(workdir, step=None) -> dict:
  """The saved train state as a flat {path: numpy array}."""
  step = step if step is not None else checkpoint_steps(workdir)[-1]
  path = os.path.join(workdir, "checkpoints", str(step), "state")
  checkpointer = ocp.StandardCheckpointer()
  # A target on this process's first device, whatever topology wrote the checkpoint.
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                        checkpointer.metadata(path).item_metadata.tree)
  tree = checkpointer.restore(path, target)
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_leaves_with_path(tree)}
