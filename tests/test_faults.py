"""Faults inside a step and bad input, each with its exact outcome: a verifier worker killed mid-batch
scores its response 0 and is counted in the step's metrics; a mesh that does not fit the devices, a
missing tokenizer file and impossible checkpoint settings are named before anything compiles."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ar3po_jax import config_validation
from ar3po_jax.rewards import MathVerifier
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.rollout.simulated import PromptCycle
from ar3po_jax.rollout.types import Prompt, Response
from configs import paper, tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOMB = r"\boxed{9^{9^{9^{9}}}}"  # sympy works on this until the time limit


class FixedTexts:
  """A sampler whose responses to each prompt are given texts."""

  def __init__(self, texts):
    self.texts = texts

  def __call__(self, prompts, counts, step):
    return [
        [Response(np.zeros(3, np.int32), np.zeros(3, np.float32), self.texts[p.uid][i], False, step=step) for i in range(n)]
        for p, n in zip(prompts, counts)
    ]


def _kill_the_worker_holding(verifier, task, killed):
  """Test-only white box: SIGKILLs the pool worker as soon as it holds `task`."""
  deadline = time.monotonic() + 30
  while time.monotonic() < deadline:
    for slot in list(verifier._pool._slots):
      if slot.task == task:
        os.kill(slot.proc.pid, signal.SIGKILL)
        killed.append(slot.proc.pid)
        return
    time.sleep(0.001)


def test_a_verifier_worker_killed_mid_batch_scores_zero_is_counted_and_replaced():
  rollout = tiny.get_config("grpo").rollout
  rollout.batch_prompts, rollout.group_size = 2, 2
  prompts = [Prompt("bomb", np.ones(2, np.int32), "3", "q1"), Prompt("root", np.ones(2, np.int32), r"\sqrt 2", "q2")]
  texts = {"bomb": [BOMB, r"\boxed{3}"], "root": [r"\boxed{\sqrt{2}}", r"\boxed{\sqrt{2}}"]}
  with MathVerifier(timeout_s=20.0, num_workers=1) as verifier:
    assert verifier([r"\boxed{\sqrt{2}}"], [r"\sqrt 2"])[0] == 1.0  # starts the worker, outside the timed step
    scheduler = Scheduler(make_strategy(rollout), FixedTexts(texts), verifier, ReplayBuffer(), PromptCycle(prompts))
    killed = []
    killer = threading.Thread(target=_kill_the_worker_holding, args=(verifier, 0, killed))  # task 0: the bomb
    killer.start()
    start = time.monotonic()
    result = scheduler.rollout(0, np.random.default_rng(0))
    elapsed = time.monotonic() - start
    killer.join()
    assert killed, "the bomb never reached a worker"
    rewards = {g.prompt.uid: [r.reward for r in g.responses] for g in result.groups}
    assert rewards == {"bomb": [0.0, 1.0], "root": [1.0, 1.0]}
    m = result.metrics
    assert (m["verify/errors"], m["verify/worker_restarts"], m["verify/timeouts"]) == (1.0, 1.0, 0.0)
    assert m["verify/total"] == 4.0 and m["verify/pool"] == 3.0
    assert elapsed < 20.0  # the death was noticed at once, not at the time limit
    # The replacement serves the next step.
    assert verifier([r"\boxed{\sqrt{2}}"], [r"\sqrt 2"])[0] == 1.0


def test_mesh_that_does_not_fit_the_devices_is_named():
  c = tiny.get_config("grpo")
  assert config_validation.mesh_problems(c.mesh, 8) == []
  c.mesh.data, c.mesh.fsdp = 2, 2
  assert config_validation.mesh_problems(c.mesh, 8) == ["mesh data=2 x fsdp=2 x tensor=1 needs 4 devices, but 8 are available"]
  c.mesh.data, c.mesh.tensor = -1, 3
  assert config_validation.mesh_problems(c.mesh, 8) == ["mesh.fsdp=2 x mesh.tensor=3 does not divide the 8 devices"]
  c.mesh.fsdp = 0
  assert "mesh.fsdp and mesh.tensor must be >= 1, got 0, 3" in config_validation.problems(c)


def test_cli_refuses_a_mesh_larger_than_the_machine_before_building_anything(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "ar3po_jax.main", f"--workdir={tmp_path}", "--config.mesh.data=3"],
      cwd=REPO, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode != 0
  assert "mesh data=3 x fsdp=1 x tensor=1 needs 3 devices, but 1 are available" in result.stderr
  assert not os.path.exists(tmp_path / "cache")  # no tokenizer, no warm start, no compile


def test_missing_tokenizer_file_is_named(tmp_path):
  c = paper.get_config("grpo,qwen25_math_1p5b")
  c.tokenizer.path = str(tmp_path / "absent" / "tokenizer.json")
  assert f"tokenizer.path {c.tokenizer.path!r} does not exist" in config_validation.problems(c)


@pytest.mark.parametrize("field,value", [("every", 0), ("keep", 0)])
def test_impossible_checkpoint_settings_are_named(field, value):
  c = tiny.get_config("ar3po")
  c.checkpoint[field] = value
  with pytest.raises(config_validation.ConfigError, match="checkpoint.every and checkpoint.keep must be >= 1"):
    config_validation.validate(c)


# --- Config values that passed validation and then corrupted or crashed the run.


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("lr", float("inf"), "rl.lr must be finite and > 0, got inf"),
        ("lr", float("nan"), "rl.lr must be finite and > 0, got nan"),
        ("grad_clip", float("nan"), "rl.grad_clip must be finite and >= 0 (0 is off), got nan"),
        ("grad_clip", -1.0, "rl.grad_clip must be finite and >= 0 (0 is off), got -1.0"),
        ("weight_decay", float("inf"), "rl.weight_decay must be finite and >= 0, got inf"),
    ],
)
def test_non_finite_optimizer_settings_are_named(field, value, message):
  c = tiny.get_config("grpo")
  c.rl[field] = value
  assert message in config_validation.problems(c)


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("d_model", 0, "model.d_model must be >= 1, got 0"),
        ("n_layers", -2, "model.n_layers must be an integer >= 1, got -2"),
        ("n_kv_heads", 3, "model.n_heads (4) must be a multiple of model.n_kv_heads (3)"),
        ("head_dim", 33, "model.head_dim must be even for rotary embeddings, got 33"),
        ("dtype", "float8", "model.dtype must be one of ('float32', 'bfloat16', 'float16'), got 'float8'"),
        ("rope_theta", float("nan"), "model.rope_theta must be finite and > 0, got nan"),
        ("norm_eps", 0.0, "model.norm_eps must be finite and > 0, got 0.0"),
    ],
)
def test_model_fields_are_checked_before_the_model_is_built(field, value, message):
  c = tiny.get_config("ar3po")
  c.model[field] = value
  assert message in config_validation.problems(c)


def test_a_checkpoint_run_checks_only_the_model_fields_it_sets():
  c = paper.get_config("grpo,qwen25_math_1p5b")
  c.model.checkpoint = "/nowhere"
  c.model.d_model, c.model.n_heads, c.model.n_kv_heads = 0, 0, 0  # 0: taken from the checkpoint
  assert not [p for p in config_validation.problems(c) if p.startswith("model.") and "checkpoint" not in p]
  c.model.n_heads, c.model.n_kv_heads = 12, 5
  assert "model.n_heads (12) must be a multiple of model.n_kv_heads (5)" in config_validation.problems(c)


def test_max_skipped_steps_must_be_a_count():
  c = tiny.get_config("grpo")
  c.rl.max_skipped_steps = -1
  assert "rl.max_skipped_steps must be an integer >= 0 (0 is off), got -1" in config_validation.problems(c)


def test_an_impossible_batch_is_refused_with_the_memory_it_needs():
  c = tiny.get_config("grpo")
  gib = 2**30
  # The default fits in a fraction of a GiB; 1e8 prompts (8e8 responses of 40 tokens) cannot.
  assert config_validation.memory_problems(c, 32 * 8, 1, None, 16 * gib) == []
  c.rollout.batch_prompts = 10**8
  (problem,) = config_validation.memory_problems(c, 8 * 10**8, 1, None, 16 * gib)
  # 2 x 8e8 rows x 40 tokens x 128 vocab x 4 bytes of logits + 8e8 x 40 x 9 bytes of responses.
  need = 2 * 8 * 10**8 * 40 * 128 * 4 + 8 * 10**8 * 40 * 9
  assert problem.startswith("rollout.batch_prompts=100000000 (800,000,000 responses a step) x rollout.max_new_tokens=40")
  assert f"needs at least {need / gib:,.1f} GiB" in problem and "machine's 16.0 GiB" in problem
  # On an accelerator the update is bounded per device, with micro-batches counting rows per device.
  c.rollout.batch_prompts, c.rollout.max_new_tokens, c.model.vocab_size = 128, 8192, 152064
  c.rl.micro_batch_rows = 2
  assert config_validation.memory_problems(c, 1024, 32, 95 * gib, 400 * gib) == []
  c.rl.micro_batch_rows = 0  # the whole step in one pass: 32 rows per device
  (problem,) = config_validation.memory_problems(c, 1024, 32, 95 * gib, 400 * gib)
  assert f"needs at least {2 * 32 * 8192 * 152064 * 4 / gib:,.1f} GiB per device" in problem and "a device's 95.0 GiB" in problem


def test_cli_refuses_an_impossible_batch_before_building_anything(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "ar3po_jax.main", f"--workdir={tmp_path}", "--config.rollout.batch_prompts=100000000"],
      cwd=REPO, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode != 0
  assert "rollout.batch_prompts=100000000 (800,000,000 responses a step)" in result.stderr, result.stderr[-2000:]
  assert not os.path.exists(tmp_path / "cache")
