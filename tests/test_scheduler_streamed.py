"""Streamed stages: the scheduler queues a prompt's next stage as soon as its responses are verified.

Per prompt the stages, the exit rule and the groups must be the barrier scheduler's (scripted rewards,
no model); with the engine, greedy streamed rollouts sample the barrier kernel's tokens and sampled
ones are reproducible from the seed."""

import jax
import numpy as np
import pytest

from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.engine import EngineConfig
from ar3po_jax.engine.sampler import EngineSampler
from ar3po_jax.policy import PolicySampler
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout import STRATEGIES, ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.rollout.simulated import ScriptedSampler, make_prompts
from ar3po_jax.sampling import SamplingParams
from ar3po_jax.types import Prompt
from configs.tiny import get_config
from tests.helpers import tiny_model

SLOT_LOCAL = sorted(n for n, cls in STRATEGIES.items() if cls.slot_local)


class StreamingScripted(ScriptedSampler):
  """ScriptedSampler behind submit / poll: a submit's responses come back `latency(uid)` polls later,
  so prompts finish out of order; `events` records ("submit", uid, count) and ("back", uid)."""

  def __init__(self, outcomes, latency):
    super().__init__(outcomes)
    self.latency = latency
    self.pending: list[list] = []  # [polls left, tag, responses]
    self.events: list[tuple] = []

  @property
  def busy(self):
    return bool(self.pending)

  def submit(self, tag, prompt, count, key_path):
    self.events.append(("submit", prompt.uid, count))
    self.pending.append([self.latency(prompt.uid), tag, super().__call__([prompt], [count], key_path[0])[0]])

  def poll(self):
    out = []
    for item in self.pending:
      item[0] -= 1
    for left, tag, responses in [p for p in self.pending if p[0] <= 0]:
      self.events.append(("back", responses[0].text.split("#")[0]))
      out.extend((tag, j, r) for j, r in enumerate(responses))
    self.pending = [p for p in self.pending if p[0] > 0]
    return out


def _scripts(n, seed):
  rng = np.random.default_rng(seed)
  return {f"sim-{i}": "".join(rng.choice(["0", "1"], p=[0.7, 0.3], size=64)) for i in range(n)}


def _rollout(name, sampler, n, steps=2):
  rollout = get_config(name).rollout
  rollout.batch_prompts = n
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), ReplayBuffer(), PromptStream(make_prompts(n)))
  out = []
  for step in range(steps):
    result = scheduler.rollout(step, np.random.default_rng([7, step]))
    groups = [(g.prompt.uid, [(r.text, r.stage) for r in g.responses], g.correct.tolist(), g.train_mask,
               g.posterior_mean) for g in result.groups]
    assert result.records is not None
    metrics = {k: "nan" if v != v else v for k, v in result.metrics.items() if not k.startswith("time/")}
    out.append((groups, metrics))
  return scheduler, out


@pytest.mark.parametrize("name", SLOT_LOCAL)
def test_streamed_stages_give_the_barrier_groups(name):
  scripts = _scripts(6, seed=1)
  _, barrier = _rollout(name, ScriptedSampler(scripts), 6)
  streaming = StreamingScripted(scripts, latency=lambda uid: 1 + int(uid.split("-")[1]) % 3)
  scheduler, streamed = _rollout(name, streaming, 6)
  assert scheduler.streams
  assert streamed == barrier


def test_a_prompts_next_stage_is_queued_before_slower_prompts_finish():
  # sim-0 answers after 1 poll, sim-1 after 3: sim-0's second AR3PO stage is queued while sim-1's
  # first is still out (a barrier would wait for sim-1).
  scripts = {"sim-0": "0000" * 4, "sim-1": "0000" * 4}
  sampler = StreamingScripted(scripts, latency=lambda uid: 1 if uid == "sim-0" else 3)
  _rollout("ar3po", sampler, 2, steps=1)
  assert sampler.events[:4] == [("submit", "sim-0", 4), ("submit", "sim-1", 4), ("back", "sim-0"),
                                ("submit", "sim-0", 4)]
  assert sampler.events.index(("back", "sim-1")) > 3


def test_strategies_that_decide_across_prompts_keep_the_barrier():
  for name in ("dapo", "knapsack", "greso"):
    sampler = StreamingScripted(_scripts(64, seed=2), latency=lambda uid: 1)
    scheduler, out = _rollout(name, sampler, 8, steps=1)
    assert not scheduler.streams and not sampler.events, name  # called as a barrier Sampler only
    assert sampler.calls and out[0][1]["rollout/responses"] > 0, name


# ---- with the engine on a tiny random model

STOP = 3
MODEL, _PARAMS = tiny_model(seed=4)
PARAMS = jax.tree.map(lambda x: 8 * x, _PARAMS)  # varied greedy lengths (see tests/test_engine.py)


class Tok:
  pad_id = 0
  stop_ids = (STOP,)

  def decode(self, ids):
    return " ".join(str(int(i)) for i in ids)


class FirstTokenEven:
  """Correct when the response's first token is even: mixed groups without a task."""

  def __call__(self, texts, answers):
    return np.asarray([float(int(t.split()[0]) % 2 == 0) for t in texts], np.float32)


def _model_prompts(n):
  rng = np.random.default_rng(3)
  return [Prompt(f"p{i}", rng.integers(4, 32, 2 + i % 5).astype(np.int32), "") for i in range(n)]


def _engine_rollout(sampler, name="ar3po", steps=2):
  rollout = get_config(name).rollout
  rollout.batch_prompts, rollout.ar3po.k, rollout.group_size = 6, 2, 3
  scheduler = Scheduler(make_strategy(rollout), sampler, FirstTokenEven(), ReplayBuffer(),
                        PromptStream(_model_prompts(6)))
  out = []
  for step in range(steps):
    result = scheduler.rollout(step, np.random.default_rng(step))
    out.append([(g.prompt.uid, [r.token_ids.tolist() for r in g.responses], g.train_mask) for g in result.groups])
  return scheduler, out


def _engine_sampler(temperature, seed=0):
  sampling = SamplingParams(max_new_tokens=12, temperature=temperature, stop_ids=(STOP,))
  config = EngineConfig(slots=4, steps_per_call=3, max_prompt_len=8, max_new_tokens=12, prefill_chunk=4, num_buckets=2)
  return EngineSampler(MODEL, PARAMS, Tok(), sampling, jax.random.key(seed), config)


@pytest.mark.parametrize("name", ["ar3po", "grpo"])
def test_greedy_streamed_engine_rollout_equals_the_static_kernels(name):
  sampling = SamplingParams(max_new_tokens=12, temperature=0.0, stop_ids=(STOP,))
  static = PolicySampler(MODEL, PARAMS, Tok(), sampling, jax.random.key(0))
  scheduler, streamed = _engine_rollout(_engine_sampler(0.0), name)
  assert scheduler.streams
  _, barrier = _engine_rollout(static, name)
  assert streamed == barrier
  lengths = {len(t) for step in streamed for _, toks, _ in step for t in toks}
  assert len(lengths) > 2  # unequal lengths: slots really were refilled at different times


def test_sampled_streamed_rollouts_are_reproducible_from_the_seed():
  _, first = _engine_rollout(_engine_sampler(1.0, seed=5))
  _, again = _engine_rollout(_engine_sampler(1.0, seed=5))
  _, other = _engine_rollout(_engine_sampler(1.0, seed=6))
  assert first == again and first != other
