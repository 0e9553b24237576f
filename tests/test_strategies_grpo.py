"""GRPO: G responses for every prompt in a single stage, every one trained."""

import numpy as np

from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rollout.simulated import ScriptedSampler, make_prompts
from ar3po_jax.rollout.strategies import Grpo, make_strategy
from configs.tiny import get_config


def test_one_stage_of_g_responses_per_prompt():
  rollout = get_config("grpo").rollout
  rollout.batch_prompts, rollout.group_size = 3, 4
  prompts = make_prompts(3)
  sampler = ScriptedSampler({"sim-0": "1111", "sim-1": "0000", "sim-2": "0110"})
  strategy = make_strategy(rollout)
  assert isinstance(strategy, Grpo)
  result = Scheduler(strategy, sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts)).rollout(0, np.random.default_rng(0))

  assert sampler.calls == [(["sim-0", "sim-1", "sim-2"], [4, 4, 4])]
  assert [g.prompt.uid for g in result.groups] == ["sim-0", "sim-1", "sim-2"]
  for g, script in zip(result.groups, ("1111", "0000", "0110")):
    assert g.size == 4 and g.train_mask == [True] * 4 and g.posterior_mean is None
    assert g.correct.tolist() == [float(c) for c in script]
    assert not any(r.reused for r in g.responses)
  m = result.metrics
  assert m["rollout/responses"] == 12 and m["rollout/stages"] == 1
  assert m["rollout/responses_per_prompt"] == 4 and m["rollout/responses_per_prompt_hist"] == {"4": 3}
  assert m["rollout/frac_zero_adv_groups"] == 2 / 3  # all-right sim-0 and all-wrong sim-1
  assert m["rollout/frac_all_wrong"] == 1 / 3
  assert m["rollout/reward_mean"] == 6 / 12
