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

from ar3po_jax import metrics as metrics_lib

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
    # Several processes sample with the static kernel (train._make_sampler); the one-process runs must
    # draw the same tokens to compare every number, so all three use it.
    "--config.rollout.sampler=static",
]
MESH_2X2X2 = ["--config.mesh.data=2", "--config.mesh.fsdp=2", "--config.mesh.tensor=2"]
# Padding of the update batch follows the data-parallel size by design; nothing trained depends on it.
PADDING_METRICS = ("train/row_bucket", "train/padding_efficiency", "train/compiled_variants")
RTOL = 1e-4
# Absolute floor. Some numbers are zero by construction up to rounding: with one optimizer step per
# rollout batch the ratio is 1, so `train/loss` is a token-mean of zero-mean advantages, a sum of O(1)
# terms that cancel. Its rounding residue depends on the reduction order, which the mesh changes
# (measured on an Intel Xeon: -2.6e-8 on one device, -4.4e-9 on the mesh); a relative tolerance on
# it compares noise. 1e-6 is float32 rounding of such a sum, far below any number that carries signal.
ATOL = 1e-6
# Numbers at least this large are compared by RTOL alone; the test requires several of them, so it
# cannot pass by comparing only noise.
SIGNAL = 1e-3


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
  """Largest relative difference over the numbers that carry signal (|value| >= SIGNAL); every number
  must agree within RTOL relative or ATOL absolute. Asserts the same steps and keys."""
  assert [r["step"] for r in actual] == [r["step"] for r in expected]
  worst, signal = 0.0, 0
  for want, got in zip(expected, actual):
    keys = {k for k in want if not metrics_lib.is_timing(k) and k not in PADDING_METRICS}
    assert keys <= set(got), sorted(keys - set(got))
    for key in keys:
      a, b = want[key], got[key]
      if isinstance(a, (int, float)) and not isinstance(a, bool) and a is not None:
        if not math.isfinite(a):
          assert a == b or (math.isnan(a) and math.isnan(b)), f"step {want['step']} {key}: one device {a}, here {b}"
          continue
        assert abs(a - b) <= RTOL * max(abs(a), abs(b)) + ATOL, f"step {want['step']} {key}: one device {a}, here {b}"
        if max(abs(a), abs(b)) >= SIGNAL:
          signal += 1
          worst = max(worst, abs(a - b) / max(abs(a), abs(b)))
      else:
        assert a == b, f"step {want['step']} {key}: one device {a!r}, here {b!r}"
  assert signal >= 20, f"only {signal} compared numbers carry signal"
  return worst


def test_comparison_floors_numbers_that_are_zero_by_construction():
  """The tolerance as measured on an Intel Xeon, and that it still catches real differences."""
  base = {"step": 1, "train/loss": -2.6e-8, "train/grad_norm": 0.53, "rollout/reward_mean": 0.5}
  many = {f"eval/x{i}": 0.25 for i in range(20)}
  expected = [{**base, **many}]
  assert max_relative_difference(expected, [{**base, **many, "train/loss": -4.4e-9}]) == 0.0
  for key, value in (("train/loss", -2.6e-5), ("train/grad_norm", 0.5301), ("rollout/reward_mean", 0.4375)):
    with pytest.raises(AssertionError, match=key):
      max_relative_difference(expected, [{**base, **many, key: value}])
  with pytest.raises(AssertionError, match="carry signal"):
    max_relative_difference([base], [base])


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
