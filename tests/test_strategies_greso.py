"""GRESO: skip before rollout by zero-variance history, adaptive exploration, dynamic sampling, resume."""

import copy

import numpy as np
import pytest

from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.rollout.simulated import ScriptedSampler, SimulatedSampler, make_prompts
from ar3po_jax.rollout.strategies import make_strategy
from ar3po_jax.rollout.strategies.greso import Greso, adapt, rolled_fraction, skip_probability
from configs.tiny import get_config


class ScriptedRng:
  """Stands in for the step's rng: random(n) hands out the next n scripted uniforms."""

  def __init__(self, uniforms):
    self.uniforms = list(uniforms)

  def random(self, n):
    out, self.uniforms = self.uniforms[:n], self.uniforms[n:]
    assert len(out) == n, "script of uniforms exhausted"
    return np.asarray(out)


def greso_rollout(batch_prompts=3, group_size=4, **knobs):
  rollout = get_config("greso").rollout
  rollout.batch_prompts, rollout.group_size = batch_prompts, group_size
  for key, value in knobs.items():
    rollout.greso[key] = value
  return rollout


def make(rollout, scripts):
  prompts = make_prompts(len(scripts))
  sampler = ScriptedSampler({p.uid: s for p, s in zip(prompts, scripts)})
  return Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts)), sampler


def outcomes(result):
  return [(g.prompt.uid, g.correct.tolist()) for g in result.groups]


def test_pure_rules():
  assert skip_probability(0, 0.3) == 0.0
  assert skip_probability(2, 0.3) == pytest.approx(1 - 0.09)
  assert adapt(0.5, observed=0.3, target=0.2, step=0.1, p_min=0.05) == pytest.approx(0.4)  # too many: skip more
  assert adapt(0.5, observed=0.1, target=0.2, step=0.1, p_min=0.05) == pytest.approx(0.6)
  assert adapt(0.5, observed=0.2, target=0.2, step=0.1, p_min=0.05) == 0.5
  assert adapt(0.1, observed=0.9, target=0.2, step=0.1, p_min=0.05) == 0.05
  assert adapt(0.95, observed=0.0, target=0.2, step=0.1, p_min=0.05) == 1.0


def test_skips_by_history_adapts_and_forces_one_roll_at_grpo_budget():
  # sim-0 always right, sim-1 mixed, sim-2 always wrong; keep="all": 3 rolled-out prompts a step.
  rollout = greso_rollout(keep="all", p_init=0.5, adapt_step=0.1, target_easy=0.2, target_hard=0.2)
  scheduler, sampler = make(rollout, ["1111" * 2, "1000" + "1100", "0000" * 2])
  first = scheduler.rollout(0, ScriptedRng([0.5, 0.5, 0.5]))
  assert sampler.calls == [(["sim-0", "sim-1", "sim-2"], [4, 4, 4])]  # no history: nothing skipped
  m = first.metrics
  assert m["greso/skipped"] == 0 and m["greso/rolled_out"] == 3 and len(first.groups) == 3
  # 1/3 of the groups all right and 1/3 all wrong, both above 0.2: p_e 0.5 -> 0.4.
  assert m["greso/p_explore_easy"] == pytest.approx(0.4) and m["greso/p_explore_hard"] == pytest.approx(0.4)
  strategy = scheduler.strategy
  assert strategy.skip_probability("sim-0") == pytest.approx(0.6) and strategy.skip_probability("sim-1") == 0

  # Step 1: sim-0 skipped (0.5 < 0.6), sim-1 and sim-2 rolled (0.9, 0.7); one prompt still missing, so a
  # second round draws sim-0 again: skipped by its draw (0.1), but a round never skips everything.
  sampler.calls.clear()
  second = scheduler.rollout(1, ScriptedRng([0.5, 0.9, 0.7, 0.1]))
  assert sampler.calls == [(["sim-1", "sim-2"], [4, 4]), (["sim-0"], [4])]
  m = second.metrics
  assert m["greso/skipped"] == 1 and m["rollout/prompts_drawn"] == 4 and m["greso/skip_frac"] == 0.25
  assert m["greso/gen_batches"] == 2 and m["rollout/responses"] == 12
  assert {k for k in m if k.startswith("greso/")} == set(Greso.metrics_doc)  # every declared metric, no other
  assert [g.prompt.uid for g in second.groups] == ["sim-1", "sim-2", "sim-0"]

  state = strategy.state_dict()
  assert state["uids"] == ["sim-0", "sim-2"] and state["zero_runs"].tolist() == [2, 2]
  assert state["last_easy"].tolist() == [True, False] and state["p_explore"].tolist() == pytest.approx([0.3, 0.3])
  restored = Greso(rollout)
  restored.load_state_dict(state)
  assert restored.skip_probability("sim-0") == pytest.approx(1 - 0.3**2)
  assert restored.skip_probability("sim-2") == pytest.approx(1 - 0.3**2) and restored.skip_probability("sim-1") == 0


def test_kinds_have_their_own_exploration_probability():
  rollout = greso_rollout(batch_prompts=2, keep="all", p_init=0.5, adapt_step=0.1, target_easy=0.6, target_hard=0.0)
  scheduler, _ = make(rollout, ["1111", "0000"])
  m = scheduler.rollout(0, ScriptedRng([0.5, 0.5])).metrics
  # Half all right (< 0.6: explore more), half all wrong (> 0: skip more).
  assert m["greso/p_explore_easy"] == pytest.approx(0.6) and m["greso/p_explore_hard"] == pytest.approx(0.4)
  assert scheduler.strategy.skip_probability("sim-0") == pytest.approx(0.4)
  assert scheduler.strategy.skip_probability("sim-1") == pytest.approx(0.6)


def test_dynamic_sampling_trains_only_mixed_groups_and_reports_the_cap():
  rollout = greso_rollout(batch_prompts=2, keep="mixed", gen_batch_prompts=3, max_gen_batches=2)
  scheduler, sampler = make(rollout, ["1111", "1000", "0000", "1100", "0110", "0000"])
  result = scheduler.rollout(0, ScriptedRng([0.5] * 6))
  # Round 1 holds one mixed group (sim-1), round 2 two more (sim-3, sim-4): the first two are trained.
  assert sampler.calls == [(["sim-0", "sim-1", "sim-2"], [4] * 3), (["sim-3", "sim-4", "sim-5"], [4] * 3)]
  assert [g.prompt.uid for g in result.groups] == ["sim-1", "sim-3"]
  m = result.metrics
  assert m["greso/kept_prompts"] == 3 and m["greso/cap_hit"] == 0 and m["rollout/frac_zero_adv_groups"] == 0

  capped_rollout = greso_rollout(batch_prompts=2, keep="mixed", gen_batch_prompts=2, max_gen_batches=1)
  capped, _ = make(capped_rollout, ["1111", "1000"])
  m = capped.rollout(0, ScriptedRng([0.5] * 2)).metrics
  assert m["greso/cap_hit"] == 1 and m["rollout/prompts"] == 1


def test_resume_from_state_dict_is_exact():
  rollout = greso_rollout(batch_prompts=16, keep="all", adapt_step=0.05)
  prompts = make_prompts(40)
  rates = {p.uid: r for p, r in zip(prompts, np.random.default_rng(0).uniform(0, 1, 40).tolist())}
  sampler = SimulatedSampler(rates, np.random.default_rng(1), rollout.max_new_tokens)
  stream = PromptStream(prompts, 2)
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), stream)
  for step in range(6):
    scheduler.rollout(step, np.random.default_rng([3, step]))
  resumed = copy.deepcopy(scheduler)
  resumed.strategy = Greso(rollout)
  resumed.strategy.load_state_dict(scheduler.strategy.state_dict())
  skipped = 0
  for step in range(6, 10):
    a = scheduler.rollout(step, np.random.default_rng([3, step]))
    b = resumed.rollout(step, np.random.default_rng([3, step]))
    assert outcomes(a) == outcomes(b)
    assert a.metrics["greso/skipped"] == b.metrics["greso/skipped"]
    skipped += a.metrics["greso/skipped"]
  assert skipped > 0  # the history mattered, so the restored one had to carry it


def test_bad_knobs_are_named():
  with pytest.raises(ValueError, match="rollout.greso.keep"):
    Greso(greso_rollout(keep="some"))
  with pytest.raises(ValueError, match="p_min"):
    Greso(greso_rollout(p_min=0.0))
  config = get_config("greso")
  config.rollout.greso.max_gen_batches = 0
  assert any("rollout.greso.max_gen_batches" in p for p in Greso.config_problems(config))
  assert Greso.max_responses_per_prompt(config.rollout) == 8


def test_stationary_rolled_fraction_matches_the_simulated_chain():
  # Frozen p_e (adapt_step 0), constant p: each prompt's visits follow the chain rolled_fraction
  # solves. One round of 100 candidates a step from a pool of 500 (no prompt twice in a step);
  # 15 visits per prompt of warm-up, then 40 measured.
  p, g, p_e = 0.2, 4, 0.7
  rollout = greso_rollout(batch_prompts=100, group_size=g, keep="mixed", gen_batch_prompts=100, max_gen_batches=1,
                          p_init=p_e, adapt_step=0.0)
  prompts = make_prompts(500)
  rates = {q.uid: p for q in prompts}
  sampler = SimulatedSampler(rates, np.random.default_rng(0), rollout.max_new_tokens, "constant:4")
  stream = PromptStream(prompts, 1)
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), stream)
  rng = np.random.default_rng(2)
  rolled = drawn = 0
  for step in range(275):
    m = scheduler.rollout(step, rng).metrics
    if step >= 75:
      rolled += m["greso/rolled_out"]
      drawn += m["rollout/prompts_drawn"]
  expected = rolled_fraction(p, g, p_e, p_e)
  assert 0.5 < expected < 0.8  # a regime where skipping matters
  assert rolled / drawn == pytest.approx(expected, rel=0.02), (rolled / drawn, expected)


def test_rolled_fraction_closed_form_edges():
  assert rolled_fraction(0.5, 8, 1.0, 1.0) == pytest.approx(1.0)  # p_e = 1: never skip
  assert rolled_fraction(0.0, 8, 0.5, 0.5) == 0.0  # always all wrong: z grows without bound
  # f = 0.9^4 + 0.1^4 = 0.6562 > p_e = 0.5: the chain drifts, the fraction is 0.
  assert rolled_fraction(0.1, 4, 0.5, 0.5) == 0.0
