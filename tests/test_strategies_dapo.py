"""DAPO: dynamic sampling (kept set, cut to batch_prompts, cap), overlong shaping and masking."""

import numpy as np
import pytest

from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rollout.simulated import ScriptedSampler, make_prompts
from ar3po_jax.rollout.strategies import make_strategy, overlong_penalty
from configs.tiny import get_config


def dapo_config(batch_prompts=2, gen_batch_prompts=3, group_size=2, max_gen_batches=4, max_new_tokens=10, overlong_buffer=0):
  rollout = get_config("dapo").rollout
  rollout.batch_prompts, rollout.group_size, rollout.max_new_tokens = batch_prompts, group_size, max_new_tokens
  rollout.dapo.gen_batch_prompts, rollout.dapo.max_gen_batches = gen_batch_prompts, max_gen_batches
  rollout.dapo.overlong_buffer = overlong_buffer
  return rollout


def run(rollout, scripts, lengths=None):
  prompts = make_prompts(len(scripts))
  sampler = ScriptedSampler({p.uid: s for p, s in zip(prompts, scripts)}, rollout.max_new_tokens, lengths)
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts))
  return scheduler.rollout(3, np.random.default_rng(0)), sampler


def test_draws_generation_batches_until_enough_are_kept_then_cuts_to_batch_prompts():
  result, sampler = run(dapo_config(), ["11", "01", "00", "10", "01", "11"])
  assert sampler.calls == [(["sim-0", "sim-1", "sim-2"], [2, 2, 2]), (["sim-3", "sim-4", "sim-5"], [2, 2, 2])]
  assert [g.prompt.uid for g in result.groups] == ["sim-1", "sim-3"]  # sim-4 was kept too, then cut
  assert all(g.size == 2 and g.train_mask == [True, True] for g in result.groups)
  m = result.metrics
  assert (m["dapo/gen_batches"], m["dapo/cap_hit"], m["dapo/kept_prompts"], m["dapo/frac_kept"]) == (2, 0, 3, 0.5)
  assert m["rollout/responses"] == 12 and m["rollout/prompts_drawn"] == 6 and m["rollout/prompts"] == 2
  assert m["rollout/responses_per_prompt"] == 2 and m["rollout/responses_per_kept_prompt"] == 6
  assert m["rollout/frac_zero_adv_groups"] == 0


def test_cap_trains_on_what_was_kept_and_warns():
  with pytest.warns(RuntimeWarning, match="kept 2 of 3"):
    result, sampler = run(dapo_config(batch_prompts=3, gen_batch_prompts=2, max_gen_batches=2), ["10", "00", "11", "01", "10"])
  assert len(sampler.calls) == 2  # the fifth prompt is never drawn
  assert [g.prompt.uid for g in result.groups] == ["sim-0", "sim-3"]
  assert result.metrics["dapo/cap_hit"] == 1 and result.metrics["dapo/gen_batches"] == 2
  assert result.metrics["rollout/empty"] == 0


def test_nothing_kept_gives_no_groups_and_says_so():
  with pytest.warns(RuntimeWarning, match="update is skipped"):
    result, _ = run(dapo_config(batch_prompts=1, gen_batch_prompts=1, max_gen_batches=3), ["11", "00", "11"])
  assert result.groups == []
  m = result.metrics
  assert m["rollout/empty"] == 1 and m["dapo/cap_hit"] == 1 and m["rollout/prompts"] == 0
  assert m["rollout/responses"] == 6 and np.isnan(m["rollout/responses_per_kept_prompt"])


def test_overlong_penalty_by_hand():
  # L_max 10, L_cache 4: no penalty up to 6 tokens, then -1/4 per token, -1 at 10 and beyond.
  assert [overlong_penalty(n, 10, 4, 1.0) for n in (1, 6, 7, 8, 9, 10, 11)] == [0, 0, -0.25, -0.5, -0.75, -1, -1]
  assert overlong_penalty(9, 10, 4, 0.5) == -0.375
  assert overlong_penalty(10, 10, 0, 1.0) == 0


@pytest.mark.parametrize("mask_truncated", [True, False])
def test_overlong_shaping_and_truncation_mask_on_groups(mask_truncated):
  rollout = dapo_config(batch_prompts=1, gen_batch_prompts=1, group_size=4, overlong_buffer=4)
  rollout.dapo.mask_truncated = mask_truncated
  result, _ = run(rollout, ["1100"], lengths={"sim-0": [6, 8, 10, 11]})
  (group,) = result.groups
  assert [r.penalty for r in group.responses] == [0.0, -0.5, -1.0, -1.0]
  assert group.rewards.tolist() == [1.0, 0.5, -1.0, -1.0]
  assert [r.truncated for r in group.responses] == [False, False, False, True]
  assert [r.num_tokens for r in group.responses] == [6, 8, 10, 10]
  assert group.train_mask == [True, True, True, not mask_truncated]
  assert result.metrics["dapo/masked_truncated"] == float(mask_truncated)


def test_filter_uses_correctness_not_shaped_rewards():
  # Both correct but of different lengths: shaped rewards differ, yet DAPO drops the group.
  rollout = dapo_config(batch_prompts=1, gen_batch_prompts=1, max_gen_batches=2, overlong_buffer=4)
  result, _ = run(rollout, ["11", "10"], lengths={"sim-0": [2, 10]})
  assert [g.prompt.uid for g in result.groups] == ["sim-1"]
