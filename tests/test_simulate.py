"""The simulator, through the real Scheduler, against closed forms for a constant pass rate p."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rollout.simulated import SimulatedSampler, make_prompts, pass_rates
from ar3po_jax.simulate import simulate
from configs.tiny import get_config

N = 10_000


def within(value, expected, rel=0.02):
  assert value == pytest.approx(expected, rel=rel), (value, expected)


@pytest.mark.parametrize("stages,k", [(2, 4), (4, 2), (8, 1)])
def test_ar3po_responses_per_prompt(stages, k):
  config = get_config("ar3po")
  config.rollout.ar3po.stages, config.rollout.ar3po.k = stages, k
  row = simulate(config, "ar3po", "constant:0.3", N, 1, seed=0)
  within(row["responses_per_prompt"], k * sum(0.7 ** (k * s) for s in range(stages)))


def test_ar3po_zero_advantage_before_reuse():
  # Zero advantage before reuse: all k right in stage 1, or all S*k wrong. At p = 0.9 the fraction is
  # large enough (0.66) that 2% is several standard errors over 20k groups.
  row = simulate(get_config("ar3po"), "ar3po", "constant:0.9", N, 2, seed=0)
  within(row["frac_zero_adv_groups_before_reuse"], 0.9**4 + 0.1**8)


def test_ar3po_reuse_lowers_all_wrong_after_the_first_step():
  row = simulate(get_config("ar3po"), "ar3po", "constant:0.3", 2000, 4, seed=0)
  assert row["frac_all_wrong"] < 0.6 * row["frac_all_wrong_before_reuse"]
  assert row["reused_per_prompt"] > 0


def test_grpo_group_size_and_zero_advantage():
  row = simulate(get_config("grpo"), "grpo", "constant:0.02", N, 1, seed=0)
  assert row["responses_per_prompt"] == 8
  within(row["frac_zero_adv_groups"], 0.02**8 + 0.98**8)


def test_aero_responses_and_rejections():
  row = simulate(get_config("aero"), "aero", "constant:0.1", N, 1, seed=0)
  q = 0.9
  within(row["responses_per_prompt"], 8 + q**8 * (2 + 2 * q**2 + 2 * q**4 + 2 * q**6))
  row = simulate(get_config("aero"), "aero", "constant:0.3", N, 1, seed=0)
  # u in {1/8, 2/8, 3/8}: keep c wrong of 8 - c, so 8 - 2c rejected.
  rejected = sum(math.comb(8, c) * 0.3**c * 0.7 ** (8 - c) * (8 - 2 * c) for c in (1, 2, 3))
  within(row["aero_rejected_per_prompt"], rejected)
  assert row["frac_zero_adv_groups"] == 0


def test_dapo_kept_fraction_and_generation_batches():
  row = simulate(get_config("dapo"), "dapo", "constant:0.3", N, 1, seed=0)
  kept = 1 - 0.3**8 - 0.7**8
  within(row["dapo_kept_prompts_per_drawn"], kept)
  assert row["dapo_gen_batches_per_step"] == 2  # ceil(1 / 0.94) batches of N fill N
  assert row["responses_per_prompt"] == 8 and row["responses_per_kept_prompt"] == 16


def test_dapo_expected_generation_batches_per_step():
  # One kept prompt per step: batches ~ geometric(q) cut at the cap, E = sum_{j < cap} (1 - q)^j.
  rollout = get_config("dapo").rollout
  rollout.batch_prompts = rollout.dapo.gen_batch_prompts = 1
  prompts = make_prompts(100)
  sampler = SimulatedSampler({p.uid: 0.1 for p in prompts}, np.random.default_rng(0), rollout.max_new_tokens)
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts))
  rng = np.random.default_rng(1)
  batches = []
  with pytest.warns(RuntimeWarning):  # a few steps hit the cap
    for step in range(N):
      batches.append(scheduler.rollout(step, rng).metrics["dapo/gen_batches"])
  dropped = 0.1**8 + 0.9**8
  within(np.mean(batches), sum(dropped**j for j in range(rollout.dapo.max_gen_batches)))


def test_pass_rate_specs(tmp_path):
  rng = np.random.default_rng(0)
  assert pass_rates("constant:0.25", 3, rng).tolist() == [0.25] * 3
  assert pass_rates("beta:0.5,0.5", 1000, rng).mean() == pytest.approx(0.5, abs=0.05)
  assert 0 <= pass_rates("uniform", 1000, rng).min()
  lines = tmp_path / "rates.txt"
  lines.write_text("0.1\n0.9\n")
  assert pass_rates(f"file:{lines}", 5, rng).tolist() == [0.1, 0.9, 0.1, 0.9, 0.1]
  listed = tmp_path / "rates.json"
  listed.write_text("[0.0, 1.0]")
  assert pass_rates(f"file:{listed}", 2, rng).tolist() == [0.0, 1.0]
  with pytest.raises(ValueError):
    pass_rates("constant:1.5", 2, rng)


def test_cli_json_rows_and_config_overrides(tmp_path):
  rates = tmp_path / "rates.json"
  rates.write_text("[0.0, 1.0]")
  out = subprocess.run(
      [sys.executable, "-m", "ar3po_jax.simulate", "--config=configs/tiny.py:ar3po", "--config.rollout.ar3po.k=2",
       "--strategies=grpo,ar3po", f"--pass_rate=file:{rates}", "--num_prompts=1000", "--steps=2", "--json"],
      capture_output=True, text=True, check=True,
  ).stdout
  rows = [json.loads(line) for line in out.splitlines()]
  assert [r["strategy"] for r in rows] == ["grpo", "ar3po"]
  grpo, ar3po = rows
  assert grpo["frac_zero_adv_groups"] == 1.0 and grpo["reward_mean"] == 0.5
  # Half the prompts never succeed: k=2 twice; the other half leave after one stage of k=2.
  assert ar3po["responses_per_prompt"] == 3.0
  assert ar3po["frac_all_wrong_before_reuse"] == 0.5 and ar3po["frac_all_wrong"] == 0.5  # nothing to reuse


def test_cli_table():
  out = subprocess.run(
      [sys.executable, "-m", "ar3po_jax.simulate", "--config=configs/tiny.py:grpo", "--num_prompts=500"],
      capture_output=True, text=True, check=True,
  ).stdout
  header, row = out.splitlines()
  assert "resp/prompt" in header and "zero-adv before" in header and "zero-adv after" in header
  assert row.split()[0] == "grpo" and float(row.split()[1]) == 8.0
