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
