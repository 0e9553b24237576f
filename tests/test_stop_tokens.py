"""No response is trained past its first stop token: a tiny model, two stop tokens, sampler to update batch."""

import jax
import numpy as np

from ar3po_jax import batching
from ar3po_jax.policy import PolicySampler
from ar3po_jax.types import Group, Prompt, Response
from ar3po_jax.sampling import SamplingParams
from ar3po_jax.update import UpdateSettings, init_train_state, jit_update, make_optimizer, make_update_fn
from tests.helpers import left_padded_prompts, tiny_model

STOPS = (3, 5)  # e.g. <|im_end|> and <|endoftext|>
MODEL, PARAMS = tiny_model(seed=4)


class _Tokenizer:
  pad_id, bos_id, eos_id, stop_ids = 0, -1, STOPS[0], STOPS

  def decode(self, ids):
    return " ".join(map(str, ids))


def _groups(stop_ids):
  sampler = PolicySampler(MODEL, PARAMS, _Tokenizer(), SamplingParams(20, 1.5, stop_ids=stop_ids), jax.random.key(3))
  tokens, _ = left_padded_prompts([3, 5, 4, 6], 6, seed=5)
  prompts = [Prompt(str(i), row[row > 0], "1") for i, row in enumerate(tokens)]
  responses = sampler(prompts, [6] * 4, step=0)
  for group in responses:
    for i, r in enumerate(group):
      r.reward = float(i % 2)
  return [Group(p, rs, [True] * len(rs)) for p, rs in zip(prompts, responses)]


def _trained_lengths(batch):
  slots = batch["old_logp_BxTr"].shape[1]
  return (batch["mask_BxT"][:, -slots:] & (batch["train_row_B"] & batch["row_valid_B"])[:, None]).sum(1)


def test_no_response_is_trained_past_its_first_stop():
  for sampler_stops in (STOPS, STOPS[:1]):  # the sampler stopping on all, or (as before) on one only
    groups = _groups(sampler_stops)
    batch, _ = batching.pack_update_batch(groups, response_slots=24, rows=32, pad_id=0, stop_ids=STOPS)
    slots = batch["old_logp_BxTr"].shape[1]
    response_tokens = batch["tokens_BxT"][:, -slots:]
    lengths = _trained_lengths(batch)
    for row, old_logp, n in zip(response_tokens[:24], batch["old_logp_BxTr"][:24], lengths[:24]):
      stops_at = np.flatnonzero(np.isin(row[:n], STOPS))
      # Trained tokens: up to and including the first stop, never beyond it.
      assert stops_at.size == 0 or (stops_at.size == 1 and stops_at[0] == n - 1)
      assert np.all(row[n:] == 0) and np.all(old_logp[n:] == 0)
    cut = [batching.cut_at_first_stop(r.token_ids, STOPS) for g in groups for r in g.responses]
    np.testing.assert_array_equal(lengths[:24], cut)
    if sampler_stops == STOPS[:1]:
      # The one-token sampler ran past a 5 somewhere: the cut is what keeps it out of the update.
      assert any(batching.cut_at_first_stop(r.token_ids, STOPS) < len(r.token_ids) for g in groups for r in g.responses)
    opt = make_optimizer(1e-3)
    _, metrics = jit_update(make_update_fn(MODEL, opt, UpdateSettings()))(init_train_state(jax.tree.map(np.array, PARAMS), opt), batch)
    assert float(metrics["train/tokens"]) == sum(cut)


def test_cut_at_first_stop():
  assert batching.cut_at_first_stop(np.array([7, 5, 8, 3]), STOPS) == 2
  assert batching.cut_at_first_stop(np.array([7, 8]), STOPS) == 2
  assert batching.cut_at_first_stop(np.array([3, 5]), STOPS) == 1
  assert batching.cut_at_first_stop(np.array([7, 5, 8]), ()) == 3


def test_pack_keeps_sampler_logprobs_and_marks_fresh_rows():
  p = Prompt("a", np.array([5, 6], np.int32), "1")
  fresh = Response(np.array([9, 3], np.int32), np.array([-0.1, -0.2], np.float32), "")
  reused = Response(np.array([8], np.int32), np.array([-0.3], np.float32), "", reused=True)
  batch, was_reused = batching.pack_update_batch([Group(p, [fresh, reused], [True, True])], 4, rows=4, pad_id=0)
  np.testing.assert_array_equal(batch["fresh_row_B"], [True, False, False, False])
  np.testing.assert_array_equal(was_reused, [False, True, False, False])
  np.testing.assert_array_equal(batch["sampler_logp_BxTr"], batch["old_logp_BxTr"])
  assert batch["sampler_logp_BxTr"] is not batch["old_logp_BxTr"]  # re-scoring pi_old leaves it alone
