"""Faults inside a step and bad input, each with its exact outcome: a verifier worker killed mid-batch
scores its response 0 and is counted in the step's metrics; a mesh that does not fit the devices, a
missing tokenizer file and impossible checkpoint settings are named before anything compiles."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from ar3po_jax import config_validation, workdir_lock
from ar3po_jax.rewards import MathVerifier
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.types import Prompt, Response
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
    scheduler = Scheduler(make_strategy(rollout), FixedTexts(texts), verifier, ReplayBuffer(), PromptStream(prompts))
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
  assert "rollout.batch_prompts=100000000 (900,000,000 responses a step)" in result.stderr, result.stderr[-2000:]
  assert not os.path.exists(tmp_path / "cache")


# --- A workdir is one run's: a second run is refused at once, and a changed config before any work.

_HOLD_LOCK = """
import sys, time
from ar3po_jax import workdir_lock
lock = workdir_lock.acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(300)
"""


def test_a_second_run_on_a_locked_workdir_exits_at_once_naming_the_holder(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
  try:
    assert holder.stdout.readline() == "locked\n"
    result = subprocess.run([sys.executable, "-m", "ar3po_jax.main", f"--workdir={tmp_path}"], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert f"is in use by another run (pid {holder.pid} on " in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "config.json") and not os.path.exists(tmp_path / "cache")
  finally:
    holder.kill()
    holder.wait()
  # The holder died without unlocking: its lock went with it, and the file that still names it is taken over.
  assert f"pid {holder.pid} " in (tmp_path / ".lock.0").read_text()
  lock = workdir_lock.acquire(str(tmp_path))
  assert (tmp_path / ".lock.0").read_text().startswith(f"pid {os.getpid()} on ")
  with pytest.raises(workdir_lock.WorkdirLocked, match=f"pid {os.getpid()} on"):
    workdir_lock.acquire(str(tmp_path))  # a second open file of this very process is refused too
  other_process_of_the_job = workdir_lock.acquire(str(tmp_path), process_index=1)
  other_process_of_the_job.release()
  lock.release()


def _tiny_identity_checkpoint(workdir, config):
  from ar3po_jax import checkpoint
  from ar3po_jax.update import init_train_state, make_optimizer
  from tests.helpers import tiny_model

  class Tok:
    path = ""

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  ckpt.save(10, init_train_state(tiny_model()[1], make_optimizer(1e-3)), {"identity": checkpoint.run_identity(config, Tok())}, force=True)
  ckpt.close()


def test_a_changed_model_is_refused_before_any_preparation_and_config_json_is_kept(tmp_path):
  _tiny_identity_checkpoint(str(tmp_path), tiny.get_config("ar3po"))
  (tmp_path / "config.json").write_text("the first run's config")
  result = subprocess.run(
      [sys.executable, "-m", "ar3po_jax.main", f"--workdir={tmp_path}", "--config.model.d_model=64", "--config.rollout.ar3po.k=2"],
      cwd=REPO, capture_output=True, text=True, timeout=120,
  )
  assert result.returncode == 1
  assert "model.d_model: checkpoint 128, now 64\n" in result.stderr and "rollout.ar3po.k: checkpoint 4, now 2\n" in result.stderr
  assert f"(compared with the checkpoint of step 10 in {tmp_path}/checkpoints)" in result.stderr
  assert "Traceback" not in result.stderr
  assert (tmp_path / "config.json").read_text() == "the first run's config"
  assert not os.path.exists(tmp_path / "cache")  # no tokenizer trained, no warm start


def test_the_early_check_allows_what_a_resume_may_change(tmp_path):
  from ar3po_jax import checkpoint

  _tiny_identity_checkpoint(str(tmp_path), tiny.get_config("ar3po"))
  same = tiny.get_config("ar3po")
  same.rl.steps, same.eval.every, same.rl.max_skipped_steps = 500, 5, 0
  checkpoint.check_workdir_compatible(same, str(tmp_path))
  checkpoint.check_workdir_compatible(tiny.get_config("grpo"), str(tmp_path / "empty"))  # nothing saved: nothing to compare


# --- Updates that keep failing stop the run.


def test_skipped_step_guard_counts_skips_in_a_row():
  from ar3po_jax import guards

  guard = guards.SkippedStepGuard(3, skipped_so_far=5)
  for step, total in [(1, 5), (2, 6), (3, 7), (4, 7), (5, 8), (6, None), (7, 9)]:
    guard.observe(step, total)  # 2 in a row, then a good step, then 2 in a row (a step with no update breaks nothing)
  with pytest.raises(guards.TooManySkippedSteps, match=r"^stopping at step 8: the last 3 updates were all skipped .*skipped_steps 10; last step train/loss nan"):
    guard.observe(8, 10, {"train/loss": float("nan")})
  guards.SkippedStepGuard(0).observe(1, 1)  # 0: off


@pytest.mark.slow
def test_updates_that_keep_making_parameters_non_finite_stop_the_real_loop(tmp_path):
  """lr=nan (refused by validation; here the loop is driven directly) makes every update non-finite."""
  from ar3po_jax import config_validation, guards, tasks, train

  c = tiny.get_config("grpo")
  c.task.num_train, c.task.num_eval, c.task.rl_prompts = 200, 8, 8
  c.eval.num_prompts, c.eval.batch_size, c.eval.every = 8, 8, 0
  c.warmstart.steps, c.warmstart.pass_rate_prompts, c.warmstart.pass_rate_samples = 0, 4, 2
  c.task.level_weights = (1.0, 0.0, 0.0, 0.0, 0.0)
  c.rollout.batch_prompts, c.rollout.group_size, c.rollout.max_new_tokens = 2, 2, 24
  c.model.d_model, c.model.n_layers, c.model.n_heads, c.model.n_kv_heads, c.model.head_dim, c.model.d_ff = 32, 1, 2, 1, 8, 64
  c.rl.row_buckets, c.rl.response_buckets, c.rl.warmup_steps, c.rl.steps = 1, 1, 0, 8
  c.rl.lr, c.rl.max_skipped_steps = float("nan"), 2
  c.checkpoint.enabled, c.log.progress, c.log.tensorboard = False, False, False
  config_validation.resolve(c)
  setup = tasks.build_setup(c, str(tmp_path), lambda m: None)
  with pytest.raises(guards.TooManySkippedSteps) as e:
    train.run(c, str(tmp_path), setup, lambda m: None)
  # Today's update applies step 1 (finite loss and gradient, NaN parameters) and skips 2 and 3; one that
  # also checks the new parameters skips 1 and 2. Either way the run stops long before step 8.
  assert e.value.step in (2, 3) and "the last 2 updates were all skipped" in str(e.value)
  with open(tmp_path / "metrics.jsonl") as f:
    logged = [json.loads(line) for line in f]
  assert logged[-1]["step"] == e.value.step and logged[-1]["train/skipped_steps"] == 2
