import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ar3po_jax.models.transformer import positions_from_mask
from ar3po_jax.sampling import SamplingParams, filter_logits, sample, score
from tests.helpers import left_padded_prompts, tiny_model

EOS = 3
MODEL, PARAMS = tiny_model(seed=4)
PROMPTS, PROMPT_MASK = left_padded_prompts([2, 5, 3, 6], 6, seed=5)


def _sample(params_s, seed=0, tokens=PROMPTS, mask=PROMPT_MASK):
  return jax.device_get(
      sample(PARAMS, jnp.asarray(tokens), jnp.asarray(mask), jax.random.key(seed), model=MODEL, params_s=params_s)
  )


def _full_rows(out, tokens=PROMPTS, mask=PROMPT_MASK):
  Tr = out.tokens_BxTr.shape[1]
  response_mask = np.arange(Tr)[None] < out.lengths_B[:, None]
  return np.concatenate([tokens, out.tokens_BxTr], 1), np.concatenate([mask, response_mask], 1), response_mask


def test_sampled_logprobs_equal_the_scoring_pass():
  for temperature in (1.0, 0.7):
    params_s = SamplingParams(max_new_tokens=10, temperature=temperature, stop_ids=EOS)
    out = _sample(params_s, seed=1)
    tokens, mask, response_mask = _full_rows(out)
    scored = score(PARAMS, tokens, mask, model=MODEL, prompt_slots=6, temperature=temperature)
    np.testing.assert_allclose(np.asarray(scored)[response_mask], out.logprobs_BxTr[response_mask], atol=1e-5)
    assert np.all(out.logprobs_BxTr[~response_mask] == 0)


def test_greedy_is_deterministic_and_matches_naive_argmax_decoding():
  params_s = SamplingParams(max_new_tokens=8, temperature=0.0, stop_ids=EOS)
  a, b = _sample(params_s, seed=1), _sample(params_s, seed=2)
  np.testing.assert_array_equal(a.tokens_BxTr, b.tokens_BxTr)
  # Naive decoding without a cache: the model's full causal forward pass over prompt + response. Position
  # P - 1 + t sees exactly the tokens a from-scratch pass at step t would see, so one pass (not 8, whose
  # eager op-by-op dispatch took most of this test's 44 s) checks every step's argmax.
  tokens = np.concatenate([PROMPTS, a.tokens_BxTr], 1)
  mask = np.concatenate([PROMPT_MASK, np.ones_like(a.tokens_BxTr, bool)], 1)
  logits_BxTxV = jax.jit(MODEL.apply)({"params": PARAMS}, tokens, positions_from_mask(mask), mask)[0]
  P = PROMPTS.shape[1]
  for t in range(8):
    nxt = np.argmax(np.asarray(logits_BxTxV[:, P - 1 + t]), -1)
    live = a.lengths_B > t
    np.testing.assert_array_equal(a.tokens_BxTr[live, t], nxt[live])


def test_fixed_seed_reproduces_samples_and_other_seeds_differ():
  params_s = SamplingParams(max_new_tokens=12, temperature=1.0, stop_ids=EOS)
  a, b, c = _sample(params_s, 7), _sample(params_s, 7), _sample(params_s, 8)
  np.testing.assert_array_equal(a.tokens_BxTr, b.tokens_BxTr)
  assert not np.array_equal(a.tokens_BxTr, c.tokens_BxTr)


def test_rows_end_at_eos_and_pad_after():
  params_s = SamplingParams(max_new_tokens=30, temperature=1.5, stop_ids=EOS)
  out = _sample(params_s, seed=3, tokens=np.repeat(PROMPTS, 8, 0), mask=np.repeat(PROMPT_MASK, 8, 0))
  for row, n, truncated in zip(out.tokens_BxTr, out.lengths_B, out.truncated_B):
    if truncated:
      assert n == 30 and EOS not in row
    else:
      assert row[n - 1] == EOS and EOS not in row[: n - 1] and np.all(row[n:] == 0)
  assert (~out.truncated_B).any()


def test_each_row_samples_as_if_alone_in_the_batch():
  params_s = SamplingParams(max_new_tokens=6, temperature=0.0, stop_ids=EOS)
  batch = _sample(params_s)
  for i in range(4):
    n = PROMPT_MASK[i].sum()
    alone = _sample(params_s, tokens=PROMPTS[i : i + 1, -n:], mask=PROMPT_MASK[i : i + 1, -n:])
    np.testing.assert_array_equal(alone.tokens_BxTr[0], batch.tokens_BxTr[i])


def test_top_k_one_and_tiny_top_p_are_greedy():
  greedy = _sample(SamplingParams(max_new_tokens=6, temperature=0.0, stop_ids=EOS))
  for params_s in (SamplingParams(6, 1.0, top_k=1, stop_ids=EOS), SamplingParams(6, 1.0, top_p=1e-6, stop_ids=EOS)):
    np.testing.assert_array_equal(_sample(params_s, seed=9).tokens_BxTr, greedy.tokens_BxTr)


def test_filter_logits_hand_computed():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  kept = lambda out: np.isfinite(np.asarray(out))[0].tolist()  # noqa: E731
  assert kept(filter_logits(logits, 1.0, 2)) == [True, True, False, False]
  assert kept(filter_logits(logits, 0.5, 0)) == [True, False, False, False]
  assert kept(filter_logits(logits, 0.7, 0)) == [True, True, False, False]
  assert kept(filter_logits(logits, 0.9, 0)) == [True, True, True, False]


def test_sampling_params_are_static_so_variants_are_bounded():
  params_s = SamplingParams(max_new_tokens=5, stop_ids=EOS)
  before = sample._cache_size()
  _sample(params_s, seed=1)
  _sample(params_s, seed=2)
  _sample(dataclasses.replace(params_s), seed=3)
  assert sample._cache_size() - before <= 1


def test_rows_end_at_the_first_of_several_stop_tokens():
  stops = (EOS, 5)
  params_s = SamplingParams(max_new_tokens=30, temperature=1.5, stop_ids=stops)
  out = _sample(params_s, seed=3, tokens=np.repeat(PROMPTS, 8, 0), mask=np.repeat(PROMPT_MASK, 8, 0))
  ended_on = set()
  for row, n, truncated in zip(out.tokens_BxTr, out.lengths_B, out.truncated_B):
    if truncated:
      assert n == 30 and not np.isin(row, stops).any()
    else:
      assert row[n - 1] in stops and not np.isin(row[: n - 1], stops).any() and np.all(row[n:] == 0)
      ended_on.add(int(row[n - 1]))
  assert ended_on == set(stops)  # both stop tokens end some row
  # With the first stop only, some row runs on past a 5: the bug a single eos_id had.
  one = _sample(
      dataclasses.replace(params_s, stop_ids=(EOS,)), seed=3,
      tokens=np.repeat(PROMPTS, 8, 0), mask=np.repeat(PROMPT_MASK, 8, 0),
  )
  assert any(5 in row[: n - 1] for row, n in zip(one.tokens_BxTr, one.lengths_B))


def test_stop_ids_take_an_int_or_a_tuple_and_never_none():
  assert SamplingParams(4, stop_ids=7).stop_ids == (7,)
  assert SamplingParams(4, stop_ids=[7, 9]).stop_ids == (7, 9)
  with pytest.raises(ValueError, match="stop_ids"):
    SamplingParams(4, stop_ids=())
