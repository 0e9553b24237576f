"""PODS: sample n, keep the m rows of largest reward variance; closed forms at constant p."""

import itertools

import numpy as np
import pytest

from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.rollout.simulated import ScriptedSampler, SimulatedSampler, make_prompts
from ar3po_jax.rollout.strategies import make_strategy
from ar3po_jax.rollout.strategies.pods import Pods, kept_correct, kept_correct_frac, max_variance_subset
from ar3po_jax.simulate import simulate
from configs.tiny import get_config


def pods_rollout(batch_prompts=2, n_sample=6, n_train=4):
  rollout = get_config("pods").rollout
  rollout.batch_prompts = batch_prompts
  rollout.pods.n_sample, rollout.pods.n_train = n_sample, n_train
  return rollout


def test_max_variance_subset_is_the_brute_force_optimum():
  rng = np.random.default_rng(0)
  for _ in range(30):
    n = int(rng.integers(2, 8))
    m = int(rng.integers(1, n + 1))
    rewards = rng.choice([0.0, 0.25, 1.0, -0.5], n).tolist() if rng.random() < 0.5 else rng.normal(size=n).tolist()
    best = max(np.var([rewards[i] for i in combo]) for combo in itertools.combinations(range(n), m))
    chosen = max_variance_subset(rewards, m)
    assert len(chosen) == m == len(set(chosen)) and chosen == sorted(chosen)
    assert np.var([rewards[i] for i in chosen]) == pytest.approx(best, abs=1e-12)


def test_binary_rule_agrees_with_the_subset_search():
  for n in range(1, 9):
    for m in range(1, 9):
      for c in range(n + 1):
        rewards = [1.0] * c + [0.0] * (n - c)
        chosen = max_variance_subset(rewards, m)
        assert sum(rewards[i] for i in chosen) == kept_correct(c, n, m), (c, n, m)
  assert kept_correct(2, 8, 4) == 2 and kept_correct(7, 8, 4) == 3 and kept_correct(4, 8, 3) == 2


def test_groups_keep_the_max_variance_rows_by_hand():
  rollout = pods_rollout()
  prompts = make_prompts(2)
  sampler = ScriptedSampler({"sim-0": "100000", "sim-1": "111111"})
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts))
  result = scheduler.rollout(0, np.random.default_rng(0))
  assert sampler.calls == [(["sim-0", "sim-1"], [6, 6])]
  g0, g1 = result.groups
  # One correct of six: it and three wrong ones (variance 3/16, the most any 4 of them reach).
  assert g0.size == 4 and g0.correct.tolist() == [1, 0, 0, 0] and g0.responses[0].text.startswith("sim-0#0 ")
  assert g1.size == 4 and g1.correct.tolist() == [1, 1, 1, 1]
  m = result.metrics
  assert m["pods/dropped"] == 4 and m["rollout/responses"] == 12 and m["rollout/train_responses"] == 8
  assert m["pods/kept_reward_std"] == pytest.approx((np.sqrt(3 / 16) + 0) / 2)
  assert m["rollout/frac_zero_adv_groups"] == 0.5
  assert {k for k in m if k.startswith("pods/")} == set(Pods.metrics_doc)


def test_closed_forms_within_two_percent():
  # n 8, m 4 at p 0.95: zero-variance groups p^8 + q^8 = 0.66 (large, so 2% is ~3 standard errors).
  config = get_config("pods")
  config.rollout.pods.n_sample, config.rollout.pods.n_train = 8, 4
  row = simulate(config, "pods", "constant:0.95", 5_000, 2, seed=0)
  assert row["responses_per_prompt"] == row["closed_form/responses_per_prompt"] == 8
  expected = row["closed_form/frac_zero_adv_groups_before_reuse"]
  assert row["frac_zero_adv_groups_before_reuse"] == pytest.approx(expected, rel=0.02)
  assert row["closed_form/pods_train_responses_per_prompt"] == 4

  # The share of correct rows among the kept ones, through the real scheduler at p = 0.3.
  rollout = config.rollout
  rollout.batch_prompts = 4_000
  prompts = make_prompts(4_000)
  sampler = SimulatedSampler({q.uid: 0.3 for q in prompts}, np.random.default_rng(0), rollout.max_new_tokens)
  result = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts)).rollout(
      0, np.random.default_rng(1))
  kept = np.concatenate([g.correct for g in result.groups])
  assert kept.size == 4 * 4_000
  expected = kept_correct_frac(0.3, 8, 4)
  assert 0.3 < expected < 0.5  # down-sampling pulls the kept rows toward half right
  assert kept.mean() == pytest.approx(expected, rel=0.02)


def test_bad_knobs_are_named():
  with pytest.raises(ValueError, match="rollout.pods.n_train"):
    Pods(pods_rollout(n_train=1))
  config = get_config("pods")
  assert Pods.config_problems(config) == []
  assert Pods.max_responses_per_prompt(config.rollout) == 8
  config.rollout.pods.n_sample = 4
  assert Pods.max_responses_per_prompt(config.rollout) == 4
