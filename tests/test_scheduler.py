"""The Scheduler: one sampler and one verifier call per stage, buffer updates, metrics, rng use."""

import json

import numpy as np
import pytest

from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout import STRATEGIES, ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rollout.simulated import ScriptedSampler, SimulatedSampler, make_prompts
from configs.tiny import STRATEGIES as CONFIG_STRATEGIES
from configs.tiny import get_config

METRICS = (
    "rollout/responses", "rollout/tokens", "rollout/prompts_drawn", "rollout/responses_per_prompt",
    "rollout/responses_per_kept_prompt", "rollout/responses_per_prompt_hist", "rollout/stages",
    "rollout/prompts", "rollout/train_responses", "rollout/masked_responses", "rollout/reused",
    "rollout/frac_zero_adv_groups_before_reuse", "rollout/frac_zero_adv_groups",
    "rollout/frac_all_wrong_before_reuse", "rollout/frac_all_wrong", "rollout/reward_mean", "rollout/empty",
    "buffer/size", "buffer/staleness", "rollout/response_len_mean", "rollout/response_len_max",
    "time/sample_s", "time/verify_s",
)


class CountingVerifier(ExactVerifier):
  def __init__(self):
    self.calls = []

  def __call__(self, texts, answers):
    self.calls.append(len(texts))
    return super().__call__(texts, answers)


def simulated_scheduler(strategy_name, num_prompts=64, pass_rate=0.4, seed=0):
  rollout = get_config(strategy_name).rollout
  rollout.batch_prompts = rollout.dapo.gen_batch_prompts = num_prompts
  prompts = make_prompts(num_prompts)
  sampler = SimulatedSampler({p.uid: pass_rate for p in prompts}, np.random.default_rng(seed), rollout.max_new_tokens)
  verifier = CountingVerifier()
  scheduler = Scheduler(make_strategy(rollout), sampler, verifier, ReplayBuffer(), PromptStream(prompts))
  return scheduler, verifier


def test_registry_matches_the_configs():
  assert sorted(STRATEGIES) == sorted(CONFIG_STRATEGIES)
  for name in CONFIG_STRATEGIES:
    assert make_strategy(get_config(name).rollout).name == name
  rollout = get_config("grpo").rollout
  rollout.strategy = "ppo"
  with pytest.raises(ValueError, match="unknown rollout strategy"):
    make_strategy(rollout)


@pytest.mark.parametrize("name", CONFIG_STRATEGIES)
def test_every_metric_is_reported_and_json_able(name):
  scheduler, verifier = simulated_scheduler(name)
  result = scheduler.rollout(0, np.random.default_rng(0))
  assert set(METRICS) <= set(result.metrics)
  # Only the running strategy's own metrics, each declared one every step (no zeros for the others').
  own = {k for k in result.metrics if k.split("/")[0] in STRATEGIES}
  assert own == set(STRATEGIES[name].metrics_doc)
  from ar3po_jax import metrics as metrics_lib

  assert all(metrics_lib.documentation(k, STRATEGIES[name].metrics_doc) for k in result.metrics), "undocumented metric"
  json.dumps(result.metrics)
  m = result.metrics
  assert len(verifier.calls) == m["rollout/stages"]  # one verifier call per stage
  assert sum(verifier.calls) == m["rollout/responses"]
  assert sum(int(k) * v for k, v in m["rollout/responses_per_prompt_hist"].items()) == m["rollout/responses"]
  assert m["time/sample_s"] >= 0 and m["time/verify_s"] >= 0
  assert m["rollout/prompts"] == len(result.groups)
  assert m["rollout/train_responses"] == sum(g.size for g in result.groups)
  for g in result.groups:
    assert len(g.train_mask) == g.size and np.isfinite(g.correct).all()


@pytest.mark.parametrize("name", CONFIG_STRATEGIES)
def test_every_strategy_feeds_the_buffer_with_the_steps_correct_responses(name):
  scheduler, _ = simulated_scheduler(name, num_prompts=16)
  result = scheduler.rollout(0, np.random.default_rng(0))
  correct = result.metrics["rollout/reward_mean"] * result.metrics["rollout/responses"]
  # Up to per_prompt=2 kept of each prompt's correct responses (DAPO may draw a prompt twice).
  assert 0 < scheduler.buffer.size <= min(correct, 2 * 16)


@pytest.mark.parametrize("name", CONFIG_STRATEGIES)
def test_same_rng_same_rollout(name):
  def groups(seed):
    scheduler, _ = simulated_scheduler(name, seed=0)
    out = []
    for step in range(3):
      result = scheduler.rollout(step, np.random.default_rng([seed, step]))
      out.append([(g.prompt.uid, g.correct.tolist(), g.train_mask, g.posterior_mean) for g in result.groups])
    return out

  assert groups(1) == groups(1)


def test_one_sampler_call_per_stage_holds_every_prompt_of_the_stage():
  rollout = get_config("ar3po").rollout
  rollout.batch_prompts = 3
  prompts = make_prompts(3)
  sampler = ScriptedSampler({"sim-0": "00000000", "sim-1": "00000001", "sim-2": "1000"})
  verifier = CountingVerifier()
  Scheduler(make_strategy(rollout), sampler, verifier, ReplayBuffer(), PromptStream(prompts)).rollout(0, np.random.default_rng(0))
  assert sampler.calls == [(["sim-0", "sim-1", "sim-2"], [4, 4, 4]), (["sim-0", "sim-1"], [4, 4])]
  assert verifier.calls == [12, 8]


def test_reuse_across_steps_reports_staleness():
  rollout = get_config("ar3po").rollout
  rollout.batch_prompts = 1
  prompts = make_prompts(1)
  # Step 0: correct in stage 1. Steps 1 and 2: all wrong through both stages.
  sampler = ScriptedSampler({"sim-0": "0100" + "00000000" + "00000000"})
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts))
  first = scheduler.rollout(0, np.random.default_rng(0))
  assert first.metrics["rollout/reused"] == 0 and first.metrics["buffer/size"] == 1
  second = scheduler.rollout(1, np.random.default_rng(0))
  third = scheduler.rollout(2, np.random.default_rng(0))
  for result, staleness in ((second, 1), (third, 2)):
    (group,) = result.groups
    assert group.responses[-1].reused and group.responses[-1].text.startswith("sim-0#1 ")
    assert result.metrics["buffer/staleness"] == staleness
    assert result.metrics["rollout/frac_zero_adv_groups"] == 0
    assert result.metrics["rollout/frac_zero_adv_groups_before_reuse"] == 1


def test_a_sampler_breaking_the_contract_is_caught():
  rollout = get_config("grpo").rollout
  rollout.batch_prompts = 1
  prompts = make_prompts(1)

  def short_sampler(prompts, counts, step):
    return [[] for _ in prompts]

  scheduler = Scheduler(make_strategy(rollout), short_sampler, ExactVerifier(), ReplayBuffer(), PromptStream(prompts))
  with pytest.raises(ValueError, match="sampler returned"):
    scheduler.rollout(0, np.random.default_rng(0))
