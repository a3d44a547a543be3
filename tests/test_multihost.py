"""Two processes on localhost (jax.distributed, CPU collectives) train like one process."""
import socket
import subprocess

import numpy as np
import pytest

from tests import launcher
from tests.conftest import needs_fashion_mnist

pytestmark = needs_fashion_mnist

RUN = ("--config.num_train_steps=6", "--config.batch_size=64", "--config.eval_batch_size=2000")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _two_processes(workdir, *overrides):
  port = _free_port()
  procs = [subprocess.Popen(
      launcher.launch_args(workdir, *RUN, *overrides, f"--coordinator_address=localhost:{port}",
                           "--num_processes=2", f"--process_id={i}"),
      cwd=launcher.ROOT, env=launcher.environment(devices=4), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return [out for out, _ in outs]


@pytest.fixture(scope="module")
def single_process(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("single"))
  code, _, err = launcher.run(workdir, *RUN, devices=8)
  assert code == 0, err[-3000:]
  return launcher.saved_state(workdir)


# A checkpoint every step: the pair killed below resumes from one of them.
PAIR = ("--config.checkpoint_every_steps=1",)


@pytest.fixture(scope="module")
def jit_pair(tmp_path_factory):
  """Two processes' uninterrupted run, under jit; (workdir, both processes' stdout)."""
  workdir = str(tmp_path_factory.mktemp("jit_pair"))
  return workdir, _two_processes(workdir, *PAIR, "--config.parallelism=jit")


@pytest.mark.parametrize("parallelism", ["jit", "pmap"])
def test_two_processes_end_with_the_parameters_of_one(tmp_path, single_process, parallelism,
                                                      request):
  if parallelism == "jit":
    workdir, outs = request.getfixturevalue("jit_pair")
  else:
    workdir = str(tmp_path)
    outs = _two_processes(workdir, *PAIR, f"--config.parallelism={parallelism}")
  assert "epoch 1, step 6" in outs[0] and "epoch" not in outs[1]  # only process 0 reports
  assert len(open(f"{workdir}/metrics.jsonl").readlines()) == 2
  state = launcher.saved_state(workdir)
  assert state.keys() == single_process.keys()
  # Equal up to the order of float32 sums: the cross-process all-reduce and the sharded
  # kernel-gradient chunks (jaxcnn.cpu.conv) add the same terms in another order, and
  # Adam's m / sqrt(v) enlarges such differences on near-zero gradients: after 6 steps of
  # lr 1e-3 they reach a few 1e-6, 1% of one step (measured up to 8e-6).
  for k, v in state.items():
    np.testing.assert_allclose(v, single_process[k], rtol=1e-5, atol=2e-5, err_msg=k)


def test_two_processes_killed_then_resumed_end_as_the_uninterrupted_pair(tmp_path, jit_pair):
  """Both processes killed (SIGKILL) once process 0 reports step 3 of 6, then both rerun:
  they resume from the last checkpoint both finalised and end bitwise as the jit pair that
  was never interrupted (the same two processes, so the same order of every sum)."""
  import signal
  import threading
  workdir = str(tmp_path / "killed")
  port = _free_port()
  procs = [subprocess.Popen(
      launcher.launch_args(workdir, *RUN, *PAIR, "--config.parallelism=jit",
                           "--config.progress_every_secs=0",
                           f"--coordinator_address=localhost:{port}", "--num_processes=2",
                           f"--process_id={i}"),
      cwd=launcher.ROOT, env=launcher.environment(devices=4), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  seen = []

  def watch():
    for line in procs[0].stderr:
      m = launcher.PROGRESS.search(line)
      if m and not seen and int(m.group(1)) >= 3:
        seen.append(int(m.group(1)))
        for p in procs:
          p.send_signal(signal.SIGKILL)

  watcher = threading.Thread(target=watch, daemon=True)
  watcher.start()
  for p in procs:
    p.communicate(timeout=300)
  watcher.join(timeout=10)
  assert seen and all(p.returncode == -signal.SIGKILL for p in procs)
  saved = launcher.checkpoint_steps(workdir)
  assert saved and saved[-1] <= seen[0]
  print(f"killed at step {seen[0]}; resuming from the checkpoint at step {saved[-1]}")
  outs = _two_processes(workdir, *PAIR, "--config.parallelism=jit")
  assert f"Resuming from the checkpoint at step {saved[-1]}" in outs[0]
  want, got = launcher.saved_state(jit_pair[0]), launcher.saved_state(workdir)
  assert got.keys() == want.keys()
  for k in want:
    np.testing.assert_array_equal(got[k], want[k], err_msg=k)
