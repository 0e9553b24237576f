"""A real training process killed with SIGKILL at random points, one of them inside a checkpoint save,
and resumed each time, ends with the parameters, optimizer state, replay buffer and metrics of an
uninterrupted run; SIGTERM checkpoints and exits with the documented code; a changed config is refused.

Set AR3PO_KILL_SEED to replay a failing draw of kill points.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import pytest

from ar3po_jax import checkpoint
from ar3po_jax import metrics as metrics_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6
# Small enough for CI, trained enough that rewards are mixed: updates move the parameters and AR3PO's
# buffer fills and is reused (level-1 problems only, 100 warm-start steps). One sampler and one update
# shape, so that each resumed process loads few compiled programs.
ARGS = [
    "--config=configs/tiny.py:ar3po",
    f"--config.rl.steps={STEPS}",
    "--config.checkpoint.every=1",
    "--config.warmstart.steps=100",
    "--config.warmstart.pass_rate_prompts=8",
    "--config.task.num_train=400",
    "--config.task.num_eval=24",
    "--config.task.rl_prompts=12",
    "--config.task.level_weights=(1.0,0.0,0.0,0.0,0.0)",
    "--config.eval.every=0",
    "--config.eval.num_prompts=24",
    "--config.eval.batch_size=24",
    "--config.rollout.batch_prompts=4",
    "--config.rollout.max_new_tokens=24",
    "--config.rollout.ar3po.stages=1",
    "--config.rollout.ar3po.k=4",
    "--config.rl.row_buckets=1",
    "--config.model.d_model=64",
    "--config.model.n_layers=2",
    "--config.model.head_dim=16",
    "--config.model.d_ff=128",
    "--config.log.progress=False",
    "--config.log.tensorboard=False",
]


def _start(workdir, *extra):
  cmd = [sys.executable, "-m", "ar3po_jax.main", f"--workdir={workdir}", *ARGS, *extra]
  return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=300):
  out, _ = proc.communicate(timeout=timeout)
  return proc.returncode, out


def _logged_steps(workdir):
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return [json.loads(line)["step"] for line in f if line.endswith("\n")]
  except FileNotFoundError:
    return []


def _saving(workdir):
  """Whether a checkpoint is being written right now."""
  try:
    return any("orbax-checkpoint-tmp" in name for name in os.listdir(os.path.join(workdir, "checkpoints")))
  except FileNotFoundError:
    return False


def _wait_for(predicate, proc, timeout=240, poll_s=0.002):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    if proc.poll() is not None:
      return False
    time.sleep(poll_s)
  raise TimeoutError("the training process made no progress")


def _kill(proc):
  proc.send_signal(signal.SIGKILL)
  proc.communicate()


def _final(workdir):
  """(train state leaves, host state JSON, host arrays, metrics without timings) of the final checkpoint."""
  path = os.path.join(workdir, "checkpoints", str(STEPS))
  state = ocp.PyTreeCheckpointer().restore(os.path.join(path, "state"))
  with open(os.path.join(path, "host", "metadata")) as f:
    host = json.load(f)
  with np.load(os.path.join(path, "arrays", "arrays.npz")) as data:
    arrays = {k: data[k] for k in data.files}
  metrics = []
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      metrics.append({k: v for k, v in json.loads(line).items() if not metrics_lib.is_timing(k)})
  return state, host, arrays, metrics


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run. Every run shares its tokenizer and warm start (config.cache_dir) and its
  compiled programs (the suite's JAX_COMPILATION_CACHE_DIR, tests/conftest.py)."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  ARGS.append(f"--config.cache_dir={tmp_path_factory.mktemp('cache')}")
  code, out = _finish(_start(workdir))
  assert code == 0, out[-3000:]
  yield workdir
  ARGS.pop()


@pytest.mark.slow
def test_sigkill_at_three_points_then_resume_matches_an_uninterrupted_run(tmp_path, reference):
  seed = int(os.environ.get("AR3PO_KILL_SEED", random.randrange(2**31)))
  rng = random.Random(seed)
  workdir = str(tmp_path / "run")
  first, third = rng.randint(1, 2), rng.randint(4, STEPS - 1)
  log = [f"AR3PO_KILL_SEED={seed}"]

  # 1: a random moment after step `first` is logged.
  proc = _start(workdir)
  assert _wait_for(lambda: first in _logged_steps(workdir), proc)
  time.sleep(rng.uniform(0.0, 0.3))
  _kill(proc)
  log.append(f"kill 1 after step {first}: logged {_logged_steps(workdir)}")

  # 2: inside a checkpoint save of a later step.
  proc = _start(workdir)
  assert _wait_for(lambda: _saving(workdir) and max(_logged_steps(workdir), default=0) > first, proc), log
  _kill(proc)
  leftovers = os.listdir(os.path.join(workdir, "checkpoints"))
  log.append(f"kill 2 during a save: checkpoints {sorted(leftovers)}")
  assert any("orbax-checkpoint-tmp" in name for name in leftovers), log

  # 3: a random moment after step `third` is logged.
  proc = _start(workdir)
  assert _wait_for(lambda: third in _logged_steps(workdir), proc), log
  time.sleep(rng.uniform(0.0, 0.2))
  _kill(proc)
  log.append(f"kill 3 after step {third}: logged {_logged_steps(workdir)}")

  code, out = _finish(_start(workdir))
  assert code == 0, out[-3000:]
  assert "checkpoint: resuming from step" in out, log

  state, host, arrays, metrics = _final(workdir)
  ref_state, ref_host, ref_arrays, ref_metrics = _final(reference)
  assert metrics == ref_metrics, log
  for key in ref_host:
    assert host[key] == ref_host[key], (key, log)
  assert arrays.keys() == ref_arrays.keys()
  for name in arrays:
    np.testing.assert_array_equal(arrays[name], ref_arrays[name], err_msg=name)
  flat, ref_flat = _flatten(state), _flatten(ref_state)
  assert flat.keys() == ref_flat.keys()
  for name in flat:
    assert flat[name].tobytes() == ref_flat[name].tobytes(), (name, log)
  # The run must have learned something and used its buffer, or equality would prove little.
  assert ref_metrics[-1]["rollout/cum_responses"] > 0 and any(m.get("rollout/reused") for m in ref_metrics)
  assert int(ref_flat["step"]) > 0


def _flatten(tree, prefix=""):
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in _flatten(sub, f"{prefix}{key}/").items()}
  if isinstance(tree, (list, tuple)):
    return {k: v for i, sub in enumerate(tree) for k, v in _flatten(sub, f"{prefix}{i}/").items()}
  return {prefix.rstrip("/"): np.asarray(tree)}


@pytest.mark.slow
def test_sigterm_checkpoints_the_step_and_exits_143_then_a_changed_config_is_refused(tmp_path, reference):
  workdir = str(tmp_path / "run")
  proc = _start(workdir, "--config.checkpoint.every=100")
  assert _wait_for(lambda: 2 in _logged_steps(workdir), proc)
  proc.send_signal(signal.SIGTERM)
  code, out = _finish(proc)
  assert code == checkpoint.PREEMPTED_EXIT_CODE, out[-3000:]
  stopped = _logged_steps(workdir)[-1]
  assert f"SIGTERM: stopping after step {stopped}, checkpoint saved" in out
  assert sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit()) == [stopped]

  code, out = _finish(_start(workdir, "--config.rl.lr=1e-3"))
  assert code != 0
  assert re.search(r"rl\.lr: checkpoint [0-9.e-]+, now 0\.001\n", out) and "Traceback" not in out, out[-2000:]
