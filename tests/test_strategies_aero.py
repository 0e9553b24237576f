"""AERO: rescue within budget, selective rejection, Beta posterior over all past responses."""

import numpy as np
import pytest

from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rollout.simulated import ScriptedSampler, make_prompts
from ar3po_jax.rollout.strategies import Aero, make_strategy
from configs.tiny import get_config

# n_explore 4, budget 8, n_extra 2, u_res 0, reject_ratio 1:
#   sim-0 all wrong in Stage I, rescued by its first rescue batch ("01");
#   sim-1 all wrong through the whole budget; sim-2 u = 1/4: rejection; sim-3 u = 1/2: kept whole;
#   sim-4 all right: kept whole, degenerate.
SCRIPTS = ["000001", "00000000", "1000", "1100", "1111"]


def aero_config(n_explore=4, budget=8, n_extra=2, u_res=0.0, reject_ratio=1.0):
  rollout = get_config("aero").rollout
  a = rollout.aero
  a.n_explore, a.budget, a.n_extra, a.u_res, a.reject_ratio = n_explore, budget, n_extra, u_res, reject_ratio
  return rollout


def make(rollout, scripts, strategy=None):
  prompts = make_prompts(len(scripts))
  rollout.batch_prompts = len(scripts)
  sampler = ScriptedSampler({p.uid: s for p, s in zip(prompts, scripts)})
  strategy = strategy or make_strategy(rollout)
  return Scheduler(strategy, sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts)), sampler


def texts(group):
  return [r.text.split(" ")[0] for r in group.responses]


def test_rescue_rejection_and_posteriors_by_hand():
  scheduler, sampler = make(aero_config(), SCRIPTS)
  result = scheduler.rollout(0, np.random.default_rng(0))
  assert sampler.calls == [
      (["sim-0", "sim-1", "sim-2", "sim-3", "sim-4"], [4] * 5),
      (["sim-0", "sim-1"], [2, 2]),
      (["sim-1"], [2]),
  ]
  g0, g1, g2, g3, g4 = result.groups
  assert g0.size == 6 and g0.correct.tolist() == [0, 0, 0, 0, 0, 1] and g0.posterior_mean is None
  assert g1.size == 8 and g1.posterior_mean == pytest.approx(1 / 10)  # Beta(1 + 0, 1 + 8)
  # sim-2: the correct one and round(1 * 1) = 1 of its 3 wrong ones, in sampling order.
  assert g2.size == 2 and texts(g2)[0] == "sim-2#0" and texts(g2)[1] in {"sim-2#1", "sim-2#2", "sim-2#3"}
  assert g2.correct.tolist() == [1, 0] and g2.posterior_mean is None
  assert texts(g3) == ["sim-3#0", "sim-3#1", "sim-3#2", "sim-3#3"] and g3.posterior_mean is None
  assert g4.size == 4 and g4.posterior_mean == pytest.approx(5 / 6)  # Beta(1 + 4, 1 + 0)
  assert all(g.train_mask == [True] * g.size for g in result.groups)

  m = result.metrics
  assert m["aero/rejected"] == 2 and m["aero/rescued"] == 2 and m["aero/rescue_successes"] == 1
  assert m["rollout/responses"] == 4 * 5 + 2 + 4 and m["rollout/stages"] == 3
  assert m["rollout/train_responses"] == 6 + 8 + 2 + 4 + 4
  assert m["rollout/frac_zero_adv_groups"] == 0  # the degenerate ones carry posterior means
  assert m["rollout/frac_all_wrong"] == 1 / 5
  # The posterior counts the rejected responses too: sim-2 saw 1 success and 3 failures.
  assert scheduler.strategy.posterior_mean("sim-2") == pytest.approx(2 / 6)


def test_posterior_accumulates_over_steps_includes_this_step_and_round_trips():
  scheduler, _ = make(aero_config(), ["1111" + "1111"])
  first = scheduler.rollout(0, np.random.default_rng(0)).groups[0]
  second = scheduler.rollout(1, np.random.default_rng(0)).groups[0]
  assert first.posterior_mean == pytest.approx(5 / 6)  # Beta(1 + 4, 1 + 0)
  assert second.posterior_mean == pytest.approx(9 / 10)  # Beta(1 + 8, 1 + 0)
  state = scheduler.strategy.state_dict()
  assert state == {"uids": ["sim-0"], "successes": state["successes"], "failures": state["failures"]}
  assert state["successes"].tolist() == [8] and state["failures"].tolist() == [0]
  restored = Aero(aero_config())
  restored.load_state_dict(state)
  assert restored.posterior_mean("sim-0") == pytest.approx(9 / 10)
  assert restored.posterior_mean("never-seen") == 0.5


@pytest.mark.parametrize(
    "script,ratio,kept_wrong",
    [
        ("11100000", 0.5, 2),  # round_half_up(1.5) = 2 of 5 wrong
        ("10000000", 0.5, 1),  # round_half_up(0.5) = 1
        ("11000000", 1.25, 3),  # round_half_up(2.5) = 3 (Python's round would say 2)
        ("11000000", 0.0, 1),  # 0, but at least one wrong stays so the group keeps an advantage
        ("11100000", 10.0, 5),  # at most all of them
        ("11110000", 0.0, 4),  # u = 0.5: no rejection at all
    ],
)
def test_rejection_counts(script, ratio, kept_wrong):
  scheduler, _ = make(aero_config(n_explore=8, budget=8, reject_ratio=ratio), [script])
  result = scheduler.rollout(0, np.random.default_rng(0))
  (group,) = result.groups
  c = script.count("1")
  assert group.correct.tolist().count(1.0) == c
  assert group.correct.tolist().count(0.0) == kept_wrong
  assert result.metrics["aero/rejected"] == 8 - c - kept_wrong


def test_rejected_rows_come_from_the_rng():
  kept = set()
  for seed in range(20):
    scheduler, _ = make(aero_config(n_explore=8, budget=8), ["10000000"])
    (group,) = scheduler.rollout(0, np.random.default_rng(seed)).groups
    kept.add(tuple(texts(group)))
    assert texts(group) == sorted(texts(group))  # sampling order is preserved
  assert len(kept) > 3


def test_rescue_batches_are_cut_to_the_budget():
  scheduler, sampler = make(aero_config(n_explore=4, budget=7, n_extra=2), ["0000000"])
  result = scheduler.rollout(0, np.random.default_rng(0))
  assert [counts for _, counts in sampler.calls] == [[4], [2], [1]]
  assert result.groups[0].size == 7 and result.groups[0].posterior_mean == pytest.approx(1 / 9)


def test_u_res_above_zero_rescues_prompts_with_a_success_until_rescue_finds_one():
  # u = 1/4 <= u_res = 0.25: rescued (never pruned) until a rescue batch holds a success.
  scheduler, sampler = make(aero_config(u_res=0.25), ["1000" + "00" + "10"])
  result = scheduler.rollout(0, np.random.default_rng(0))
  assert [counts for _, counts in sampler.calls] == [[4], [2], [2]]
  assert result.groups[0].size == 8 and result.metrics["aero/rejected"] == 0
