"""The same three AR3PO steps on one device, on a 2 data x 2 fsdp x 2 tensor mesh of 8 CPU devices,
and as two processes with two devices each: every logged number agrees.

Each run is its own `python -m ar3po_jax.main` process, because the device count is fixed when JAX
starts. The tokenizer and warm start are made once, by the one-device run, in a cache folder that
the other runs share.
"""

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Level-1 problems and a short warm start leave some prompts solved and others not, so the steps
# carry real advantages and gradients; every model dimension divides by the tensor axis (2).
SMALL = [
    "--config=configs/tiny.py:ar3po",
    "--config.task.level_weights=(1,0,0,0,0)",
    "--config.task.num_train=400",
    "--config.task.num_eval=24",
    "--config.warmstart.steps=100",
    "--config.warmstart.batch_size=32",
    "--config.warmstart.lr=6e-3",
    "--config.warmstart.warmup_steps=20",
    "--config.warmstart.pass_rate_prompts=8",
    "--config.model.d_model=64",
    "--config.model.n_layers=2",
    "--config.model.head_dim=16",
    "--config.model.d_ff=128",
    "--config.rollout.max_new_tokens=24",
    "--config.rollout.dapo.overlong_buffer=4",
    "--config.rollout.batch_prompts=4",
    "--config.rl.steps=3",
    "--config.eval.every=0",  # evaluate before RL and after the last step
    "--config.eval.num_prompts=24",
    "--config.eval.batch_size=24",
    "--config.log.progress=False",
    "--config.log.tensorboard=False",
]
MESH_2X2X2 = ["--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2"]
# Padding of the update batch follows the data-parallel size by design; nothing trained depends on it.
PADDING_METRICS = ("train/row_bucket", "train/padding_efficiency")
RTOL = 1e-4


def _env(devices: int) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
  env["JAX_PLATFORMS"] = "cpu"
  if devices > 1:
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return env


def _check(result: subprocess.CompletedProcess) -> None:
  assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])


def _records(workdir) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def max_relative_difference(expected: list[dict], actual: list[dict]) -> float:
  """Largest relative difference over every compared number; asserts the same steps and keys."""
  assert [r["step"] for r in actual] == [r["step"] for r in expected]
  worst = 0.0
  for want, got in zip(expected, actual):
    keys = {k for k in want if not k.startswith("time/") and k not in PADDING_METRICS}
    assert keys <= set(got), sorted(keys - set(got))
    for key in keys:
      a, b = want[key], got[key]
      if isinstance(a, (int, float)) and not isinstance(a, bool) and a is not None:
        scale = max(abs(a), abs(b), 1e-6)
        diff = abs(a - b) / scale if math.isfinite(a) else float(a != b)
        worst = max(worst, diff)
        assert diff <= RTOL, f"step {want['step']} {key}: one device {a}, here {b}"
      else:
        assert a == b, f"step {want['step']} {key}: one device {a!r}, here {b!r}"
  return worst


@pytest.fixture(scope="module")
def small(tmp_path_factory):
  return [*SMALL, f"--config.cache_dir={tmp_path_factory.mktemp('cache')}"]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, small):
  workdir = tmp_path_factory.mktemp("one_device")
  cmd = [sys.executable, "-m", "ar3po_jax.main", f"--workdir={workdir}", *small]
  _check(subprocess.run(cmd, cwd=REPO, env=_env(1), capture_output=True, text=True, timeout=600))
  records = _records(workdir)
  steps = [r for r in records if "train/loss" in r]
  # The comparison means something only if the steps learned from mixed rewards.
  assert len(steps) == 3 and any(0 < r["rollout/reward_mean"] < 1 for r in steps), steps
  assert any(r["train/grad_norm"] > 0 for r in steps), steps
  return records


@pytest.mark.slow
def test_mesh_2x2x2_matches_one_device(one_device, small, tmp_path):
  cmd = [sys.executable, "-m", "ar3po_jax.main", f"--workdir={tmp_path}", *small, *MESH_2X2X2]
  result = subprocess.run(cmd, cwd=REPO, env=_env(8), capture_output=True, text=True, timeout=600)
  _check(result)
  assert "warm start: reusing" in result.stdout and "process 0 of 1" in result.stdout
  worst = max_relative_difference(one_device, _records(tmp_path))
  print(f"2x2x2 mesh vs one device: max relative difference {worst:.2e}")


@pytest.mark.slow
def test_two_processes_match_one_device(one_device, small, tmp_path):
  env = dict(_env(1), DEVICES_PER_PROCESS="2", PYTHON=sys.executable, LOG_DIR=str(tmp_path / "logs"))
  cmd = ["bash", "launch/local_multiprocess.sh", "2", f"--workdir={tmp_path}", *small, "--config.mesh.tensor=2"]
  result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  _check(result)
  assert "process 0 of 2" in result.stdout
  with open(tmp_path / "logs" / "process_1.log") as f:
    assert "process 1 of 2" in f.read()
  worst = max_relative_difference(one_device, _records(tmp_path))
  print(f"2 processes x 2 devices vs one device: max relative difference {worst:.2e}")
