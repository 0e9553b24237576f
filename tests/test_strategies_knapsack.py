"""Knapsack allocation: exact optimum under GRPO's budget, estimates kept across steps, resume."""

import itertools

import numpy as np
import pytest

from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.rollout.simulated import ScriptedSampler, make_prompts
from ar3po_jax.rollout.strategies import make_strategy
from ar3po_jax.rollout.strategies.knapsack import Knapsack, allocate, group_value
from ar3po_jax.simulate import simulate
from configs.tiny import get_config


def knapsack_rollout(batch_prompts=3, group_size=4, min_responses=2, max_responses=8, **knobs):
  rollout = get_config("knapsack").rollout
  rollout.batch_prompts, rollout.group_size = batch_prompts, group_size
  k = rollout.knapsack
  k.min_responses, k.max_responses = min_responses, max_responses
  for key, value in knobs.items():
    k[key] = value
  return rollout


def test_group_value_by_hand():
  # p = 0.5, n = 2: P(mixed) = 1 - 0.25 - 0.25 = 0.5; gain p (1 - p)^2 = 0.125.
  assert group_value(2, 0.5) == pytest.approx(0.0625)
  assert group_value(2, 0.5, "one") == pytest.approx(0.5)
  assert group_value(5, 0.0) == 0 and group_value(5, 1.0) == 0


@pytest.mark.parametrize("info_gain", ["p_q2", "one"])
def test_allocation_is_the_brute_force_optimum(info_gain):
  rng = np.random.default_rng(0)
  for _ in range(20):
    rates = rng.uniform(0.02, 0.98, 4).tolist()
    budget, lo, hi = 16, 1, 8
    best = max(
        sum(group_value(n, p, info_gain) for n, p in zip(combo, rates))
        for combo in itertools.product(range(lo, hi + 1), repeat=4)
        if sum(combo) == budget
    )
    counts = allocate(rates, budget, lo, hi, info_gain)
    assert counts.sum() == budget and counts.min() >= lo and counts.max() <= hi
    assert sum(group_value(n, p, info_gain) for n, p in zip(counts.tolist(), rates)) == pytest.approx(best, rel=1e-12)


def test_allocation_moves_budget_from_solved_to_unsolved_prompts():
  # GRPO would give 8 each. The rare success of the hard prompt is worth the most responses; the
  # nearly solved one keeps the minimum (its gain p (1 - p)^2 is tiny).
  counts = allocate([0.05, 0.5, 0.97], 24, 2, 16).tolist()
  assert counts == [15, 7, 2]
  # Valued by P(non-zero gradient) alone, the nearly solved prompt is worth more than the minimum.
  assert allocate([0.05, 0.5, 0.97], 24, 2, 16, "one").tolist() == [13, 6, 5]
  with pytest.raises(ValueError, match="budget"):
    allocate([0.5, 0.5], 40, 2, 16)


def test_first_step_is_grpo_then_estimates_steer_the_budget():
  # group_size 4, 3 prompts: budget 12. sim-0 all wrong, sim-1 mixed, sim-2 all right.
  rollout = knapsack_rollout()
  prompts = make_prompts(3)
  sampler = ScriptedSampler({"sim-0": "0" * 12, "sim-1": "1100" + "10" * 4, "sim-2": "1" * 12})
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts))
  first = scheduler.rollout(0, np.random.default_rng(0))
  assert sampler.calls == [(["sim-0", "sim-1", "sim-2"], [4, 4, 4])]  # no estimates: equal shares
  assert first.metrics["knapsack/unseen_prompts"] == 3
  strategy = scheduler.strategy
  assert [strategy.estimate(u) for u in ("sim-0", "sim-1", "sim-2")] == pytest.approx([0.1, 0.5, 0.9])
  second = scheduler.rollout(1, np.random.default_rng(0))
  # Estimates 0.1 / 0.5 / 0.9: gains p q^2 = 0.081 / 0.125 / 0.009. From 2 each, the six extra
  # responses go by marginal value: sim-1 and sim-0 three each, sim-2 stays at the minimum.
  assert sampler.calls[1] == (["sim-0", "sim-1", "sim-2"], [5, 5, 2])
  m = second.metrics
  assert m["rollout/responses"] == 12 and m["knapsack/min_responses"] == 2 and m["knapsack/max_responses"] == 5
  assert {k for k in m if k.startswith("knapsack/")} == set(Knapsack.metrics_doc)
  assert [g.size for g in second.groups] == [5, 5, 2] and all(all(g.train_mask) for g in second.groups)

  state = strategy.state_dict()
  assert state["uids"] == ["sim-0", "sim-1", "sim-2"]
  assert state["correct"].tolist() == [0, 3, 2] and state["sampled"].tolist() == [5, 5, 2]
  restored = Knapsack(rollout)
  restored.load_state_dict(state)
  assert [restored.estimate(u) for u in state["uids"]] == [strategy.estimate(u) for u in state["uids"]]
  assert restored.estimate("never-seen") == 0.5


def test_budget_is_grpos_every_step_in_the_simulator():
  config = get_config("knapsack")
  row = simulate(config, "knapsack", "uniform", 500, 3, seed=0)
  assert row["responses_per_prompt"] == 8.0  # exactly batch_prompts x group_size per step
  row = simulate(config, "knapsack", "constant:0.3", 500, 2, seed=0)
  assert row["responses_per_prompt"] == row["closed_form/responses_per_prompt"] == 8.0


def test_bad_knobs_are_named():
  with pytest.raises(ValueError, match="max_responses"):
    Knapsack(knapsack_rollout(max_responses=3))  # below group_size: GRPO's budget cannot be spent
  with pytest.raises(ValueError, match="rollout.knapsack.info_gain"):
    Knapsack(knapsack_rollout(info_gain="entropy"))
  config = get_config("knapsack")
  assert Knapsack.config_problems(config) == []
  assert Knapsack.max_responses_per_prompt(config.rollout) == 24
