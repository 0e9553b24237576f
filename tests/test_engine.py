import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ar3po_jax.engine import Engine, EngineConfig, Request
from ar3po_jax.engine.live import LiveTransformer
from ar3po_jax.engine.sampler import EngineSampler
from ar3po_jax.models.transformer import init_cache
from ar3po_jax.policy import PolicySampler
from ar3po_jax.sampling import SamplingParams, sample
from ar3po_jax.types import Prompt
from tests.helpers import left_padded_prompts, tiny_model

STOP = 3
MODEL, _PARAMS = tiny_model(seed=4)
# Scaled weights: at the default init the tiny model's greedy rows repeat one token; scaled, they
# vary and reach the stop token at different steps (lengths 1 to 12 here, one row truncated).
PARAMS = jax.tree.map(lambda x: 8 * x, _PARAMS)
LENGTHS = [2, 5, 3, 6, 1, 4, 7, 8]
PROMPTS, PROMPT_MASK = left_padded_prompts(LENGTHS, 8, seed=5)
ROWS = [PROMPTS[i, 8 - n :] for i, n in enumerate(LENGTHS)]
CONFIG = EngineConfig(slots=3, steps_per_call=4, max_prompt_len=8, max_new_tokens=12, prefill_chunk=4, num_buckets=2)
GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0, stop_ids=(STOP,))
HOT = SamplingParams(max_new_tokens=12, temperature=1.0, stop_ids=(STOP,))


def _static(params_s):
  key = jax.random.key(0)
  out = sample(PARAMS, jnp.asarray(PROMPTS), jnp.asarray(PROMPT_MASK), key, model=MODEL, params_s=params_s)
  return jax.device_get(out)


def _requests(order=None, seed=0, limits=None):
  order = range(len(ROWS)) if order is None else order
  base = jax.random.key(seed)
  return [Request(i, ROWS[i], jax.random.fold_in(base, i), None if limits is None else limits[i]) for i in order]


def test_width_buckets_cover_the_cache():
  assert CONFIG.cache_len == 24 and CONFIG.widths == (16, 24)
  assert CONFIG.width_for(1) == 16 and CONFIG.width_for(17) == 24
  with pytest.raises(ValueError, match="exceed"):
    CONFIG.width_for(25)


def test_live_forward_in_chunks_equals_the_model_forward():
  tokens = np.random.default_rng(0).integers(4, 32, (2, 7)).astype(np.int32)
  positions = np.broadcast_to(np.arange(7), (2, 7))
  reference, _ = MODEL.apply({"params": PARAMS}, tokens, positions, np.ones((2, 7), bool))
  live = LiveTransformer(MODEL.config)
  cache = init_cache(MODEL.config, 3, 16)
  rows = jnp.asarray([2, 0])  # slots out of order: rows are gathered and scattered by slot id
  # First 4 tokens without the head, then the rest: the second chunk reads the first from the cache.
  _, cache = live.apply({"params": PARAMS}, tokens[:, :4], positions[:, :4], cache, rows, 8, head=False)
  logits, cache = live.apply({"params": PARAMS}, tokens[:, 4:], positions[:, 4:], cache, rows, 8)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(reference)[:, 4:], atol=1e-4, rtol=1e-5)
  assert not np.asarray(cache[0]["k"][1]).any()  # slot 1 was never written


def test_greedy_tokens_equal_the_static_kernel_with_more_requests_than_slots():
  static = _static(GREEDY)
  engine = Engine(MODEL, PARAMS, CONFIG, GREEDY)
  done = engine.generate(_requests())
  assert len(set(static.lengths_B.tolist())) > 3 and static.truncated_B.any() and not static.truncated_B.all()
  for i, f in enumerate(done):
    n = int(static.lengths_B[i])
    assert f.uid == i and f.length == n
    np.testing.assert_array_equal(f.tokens, static.tokens_BxTr[i, :n])
    np.testing.assert_allclose(f.logprobs, static.logprobs_BxTr[i, :n], atol=1e-4)
    assert f.logprobs.dtype == np.float32
    assert f.finish_reason == ("length" if static.truncated_B[i] else "stop")
  m = engine.metrics()
  assert m["engine/tokens"] == static.lengths_B.sum()
  assert 0 < m["rollout/slot_utilization"] < 1 and m["rollout/tokens_per_s"] > 0
  assert not engine.busy


def test_stops_at_the_first_of_two_stop_tokens_and_at_each_requests_limit():
  static = _static(GREEDY)
  second = 16  # greedy rows reach it before, after, or never relative to STOP
  limits = [12, 3, 12, 12, 2, 12, 12, 12]
  engine = Engine(MODEL, PARAMS, CONFIG, GREEDY, stop_ids=(STOP, second))
  done = engine.generate(_requests(limits=limits))
  cut_by_second = 0
  for i, f in enumerate(done):
    row = static.tokens_BxTr[i, : static.lengths_B[i]].tolist()
    stops = [t for t, tok in enumerate(row) if tok in (STOP, second)]
    n = min(stops[0] + 1 if stops else len(row), limits[i])
    np.testing.assert_array_equal(f.tokens, row[:n])
    assert f.finish_reason == ("stop" if stops and stops[0] < limits[i] else "length")
    cut_by_second += bool(stops) and row[stops[0]] == second and STOP in row
  assert cut_by_second >= 1  # some row had both, and ended at the second because it came first
  assert done[4].length == 2 and done[4].finish_reason == "length"


def test_sampling_is_reproducible_and_independent_of_slots_and_order():
  engine = Engine(MODEL, PARAMS, CONFIG, HOT)
  a = {f.uid: f for f in engine.generate(_requests(seed=7))}
  b = {f.uid: f for f in engine.generate(_requests(seed=7))}
  other = dataclasses.replace(CONFIG, slots=2, steps_per_call=5)
  c = {f.uid: f for f in Engine(MODEL, PARAMS, other, HOT).generate(_requests(order=reversed(range(8)), seed=7))}
  d = {f.uid: f for f in engine.generate(_requests(seed=8))}
  for run in (b, c):
    for i in range(8):
      np.testing.assert_array_equal(run[i].tokens, a[i].tokens)
      np.testing.assert_allclose(run[i].logprobs, a[i].logprobs, atol=1e-5)
  assert any(not np.array_equal(d[i].tokens, a[i].tokens) for i in range(8))
  assert len({f.length for f in a.values()}) > 2


def test_streaming_poll_returns_each_request_once_and_accepts_new_work():
  engine = Engine(MODEL, PARAMS, CONFIG, GREEDY)
  engine.submit(_requests(order=range(4)))
  seen = []
  while not seen:
    seen.extend(f.uid for f in engine.poll())
  assert engine.busy  # the others are still running when the first finishes
  engine.submit(_requests(order=range(4, 8)))  # joins the slots as they free up
  seen.extend(f.uid for f in engine.drain())
  assert sorted(seen) == list(range(8))
  assert engine.poll() == []


class _Tokenizer:
  pad_id = 0

  def decode(self, ids):
    return " ".join(str(int(i)) for i in ids)


def test_engine_sampler_matches_the_policy_sampler_interface():
  prompts = [Prompt(f"p{i}", ROWS[i], "0") for i in range(3)]
  ours = EngineSampler(MODEL, PARAMS, _Tokenizer(), GREEDY, jax.random.key(0), CONFIG)
  theirs = PolicySampler(MODEL, PARAMS, _Tokenizer(), GREEDY, jax.random.key(0))
  got, want = ours(prompts, [2, 0, 3], step=5), theirs(prompts, [2, 0, 3], step=5)
  assert [len(b) for b in got] == [2, 0, 3]
  for batch_got, batch_want in zip(got, want):
    for r, w in zip(batch_got, batch_want):
      np.testing.assert_array_equal(r.token_ids, w.token_ids)
      assert r.text == w.text and r.truncated == w.truncated and r.step == 5
  tokens, _, lengths, truncated = ours.generate(ROWS[:2])
  assert tokens.shape == (2, 12) and lengths[0] == len(got[0][0].token_ids)
  np.testing.assert_array_equal(tokens[0, : lengths[0]], got[0][0].token_ids)
  assert ours.metrics()["engine/tokens"] == sum(len(r.token_ids) for b in got for r in b) + lengths.sum()
  m = ours.take_metrics()
  assert set(m) == {"rollout/slot_utilization", "rollout/tokens_per_s", "engine/decode_calls", "engine/prefill_calls"}
  assert 0 < m["rollout/slot_utilization"] <= 1 and m["engine/decode_calls"] > 0 and m["rollout/tokens_per_s"] > 0
  assert ours.metrics()["engine/tokens"] == 0  # reset for the next step


def test_engine_sampler_state_round_trips_its_key():
  prompts = [Prompt(f"p{i}", ROWS[i], "0") for i in range(3)]
  a = EngineSampler(MODEL, PARAMS, _Tokenizer(), HOT, jax.random.key(0), CONFIG)
  a(prompts, [1, 1, 1], step=0)
  saved = a.state_dict()
  b = EngineSampler(MODEL, PARAMS, _Tokenizer(), HOT, jax.random.key(99), CONFIG)
  b.load_state_dict(saved)
  for x, y in zip(a(prompts, [2, 1, 1], step=1), b(prompts, [2, 1, 1], step=1)):
    for r, w in zip(x, y):
      np.testing.assert_array_equal(r.token_ids, w.token_ids)


def test_bad_requests_name_the_request():
  engine = Engine(MODEL, PARAMS, CONFIG, GREEDY)
  with pytest.raises(ValueError, match="'long'.*9 tokens"):
    engine.submit([Request("long", np.arange(9), jax.random.key(0))])
  with pytest.raises(ValueError, match="'big'.*max_new_tokens=13"):
    engine.submit([Request("big", np.arange(3), jax.random.key(0), 13)])
