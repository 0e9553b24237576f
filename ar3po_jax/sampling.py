"""The sampling kernel and the scoring pass: one jitted function each, shared by policy and reference.

Layout shared by both: a row is its prompt, left-padded to Tp slots so that every prompt ends at slot
Tp - 1, followed by up to Tr response slots, right-padded. Decoding then writes the same cache slot
for every row at each step, and scoring reads response log-probs from the same columns.

Log-probs are those of the sampling distribution before truncation: log_softmax(logits / temperature)
(temperature 0, greedy, uses temperature 1). At temperature 1 without top-p / top-k they are the
policy's own log-probs, so the sampler's log-probs can serve as pi_old without a second pass.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax.models.transformer import Transformer, init_cache, positions_from_mask


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  """Static per compile: changing any of these compiles a new variant."""

  max_new_tokens: int
  temperature: float = 1.0  # 0: greedy
  top_p: float = 1.0  # 1: off
  top_k: int = 0  # 0: off
  # Every token that ends a response (a chat format ends on either of two, e.g. <|im_end|> and
  # <|endoftext|>); the response ends at the first. An int is taken as a one-token tuple.
  stop_ids: tuple[int, ...] = (1,)
  pad_id: int = 0

  def __post_init__(self):
    stops = (self.stop_ids,) if isinstance(self.stop_ids, int) else tuple(int(i) for i in self.stop_ids)
    if not stops:
      raise ValueError("SamplingParams.stop_ids must hold at least one token id")
    object.__setattr__(self, "stop_ids", stops)


class SampleOutput(NamedTuple):
  tokens_BxTr: jax.Array  # int32, pad after the end
  logprobs_BxTr: jax.Array  # float32, 0 after the end
  lengths_B: jax.Array  # int32, response tokens up to and including the first stop token
  truncated_B: jax.Array  # bool, no stop token within max_new_tokens


def _logit_temperature(temperature: float) -> float:
  return temperature if temperature > 0 else 1.0


def filter_logits(logits_BxV: jax.Array, top_p: float, top_k: int) -> jax.Array:
  """Masks logits outside the top-k and outside the smallest nucleus of mass >= top_p."""
  if top_k > 0:
    kth_largest = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
    logits_BxV = jnp.where(logits_BxV < kth_largest, -jnp.inf, logits_BxV)
  if top_p < 1.0:
    sorted_desc = jnp.sort(logits_BxV, axis=-1)[:, ::-1]
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_desc, axis=-1), axis=-1)
    # Keep a token while the mass strictly before it is below top_p; the first token always stays.
    mass_before = cumulative - jax.nn.softmax(sorted_desc, axis=-1)
    cutoff = jnp.min(jnp.where(mass_before < top_p, sorted_desc, jnp.inf), axis=-1, keepdims=True)
    logits_BxV = jnp.where(logits_BxV < cutoff, -jnp.inf, logits_BxV)
  return logits_BxV


def sample_step(logits_BxV: jax.Array, rng: jax.Array, params: SamplingParams) -> tuple[jax.Array, jax.Array]:
  """Draws one token per row; returns (token_B, logprob_B under the untruncated distribution)."""
  scaled = logits_BxV / _logit_temperature(params.temperature)
  logprobs_BxV = jax.nn.log_softmax(scaled, axis=-1)
  if params.temperature <= 0:
    token_B = jnp.argmax(logits_BxV, axis=-1)
  else:
    token_B = jax.random.categorical(rng, filter_logits(scaled, params.top_p, params.top_k), axis=-1)
  token_B = token_B.astype(jnp.int32)
  return token_B, jnp.take_along_axis(logprobs_BxV, token_B[:, None], axis=-1)[:, 0]


def _constrain(tree, sharding):
  return tree if sharding is None else jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


@functools.partial(jax.jit, static_argnames=("model", "params_s", "cache_sharding"))
def sample(
    weights: dict,
    prompt_BxTp: jax.Array,
    prompt_mask_BxTp: jax.Array,
    rng: jax.Array,
    *,
    model: Transformer,
    params_s: SamplingParams,
    cache_sharding: jax.sharding.NamedSharding | None = None,
) -> SampleOutput:
  """Prefills left-padded prompts, then decodes with a KV cache until every row ended.

  cache_sharding: where every [B, S, K, H] cache array lives on a mesh (`sharding.kv_cache_sharding`);
  pinned at creation and on every loop iteration so the compiler never gathers the cache.
  """
  B, Tp = prompt_BxTp.shape
  Tr = params_s.max_new_tokens
  cache = _constrain(init_cache(model.config, B, Tp + Tr), cache_sharding)
  kv_mask_BxS = jnp.concatenate([prompt_mask_BxTp, jnp.zeros((B, Tr), bool)], axis=1)
  positions_BxTp = positions_from_mask(prompt_mask_BxTp)
  # Prompts are left-padded, so the last slot holds every row's last prompt token.
  logits_Bx1xV, cache = model.apply(
      {"params": weights}, prompt_BxTp, positions_BxTp, kv_mask_BxS, cache, 0, last_only=True
  )
  cache = _constrain(cache, cache_sharding)
  prompt_len_B = jnp.sum(prompt_mask_BxTp, axis=1).astype(jnp.int32)

  def cond(carry):
    t, _, _, done_B, *_ = carry
    return (t < Tr) & ~jnp.all(done_B)

  def body(carry):
    t, logits_BxV, cache, done_B, kv_mask_BxS, tokens_BxTr, logprobs_BxTr, rng = carry
    rng, step_rng = jax.random.split(rng)
    token_B, logprob_B = sample_step(logits_BxV, step_rng, params_s)
    token_B = jnp.where(done_B, params_s.pad_id, token_B)
    logprob_B = jnp.where(done_B, 0.0, logprob_B)
    tokens_BxTr = jax.lax.dynamic_update_slice_in_dim(tokens_BxTr, token_B[:, None], t, axis=1)
    logprobs_BxTr = jax.lax.dynamic_update_slice_in_dim(logprobs_BxTr, logprob_B[:, None], t, axis=1)
    done_B = done_B | is_stop(token_B, params_s.stop_ids)
    kv_mask_BxS = jax.lax.dynamic_update_slice_in_dim(kv_mask_BxS, jnp.ones((B, 1), bool), Tp + t, axis=1)
    step_logits, cache = model.apply(
        {"params": weights}, token_B[:, None], (prompt_len_B + t)[:, None], kv_mask_BxS, cache, Tp + t
    )
    cache = _constrain(cache, cache_sharding)
    return t + 1, step_logits[:, 0], cache, done_B, kv_mask_BxS, tokens_BxTr, logprobs_BxTr, rng

  carry = (
      jnp.int32(0),
      logits_Bx1xV[:, 0],
      cache,
      jnp.zeros((B,), bool),
      kv_mask_BxS,
      jnp.full((B, Tr), params_s.pad_id, jnp.int32),
      jnp.zeros((B, Tr), jnp.float32),
      rng,
  )
  _, _, _, _, _, tokens_BxTr, logprobs_BxTr, _ = jax.lax.while_loop(cond, body, carry)
  lengths_B, has_stop_B = stop_lengths(tokens_BxTr, params_s.stop_ids)
  return SampleOutput(tokens_BxTr, logprobs_BxTr, lengths_B, ~has_stop_B)


def is_stop(tokens, stop_ids: tuple[int, ...]):
  """Whether each token is one of the stop ids (jnp or np arrays)."""
  xp = jnp if isinstance(tokens, jax.Array) else np
  return xp.isin(tokens, xp.asarray(stop_ids, dtype=tokens.dtype))


def stop_lengths(tokens_BxT, stop_ids: tuple[int, ...]):
  """(length up to and including the FIRST stop token, or T without one; whether a stop occurred)."""
  xp = jnp if isinstance(tokens_BxT, jax.Array) else np
  stop_BxT = is_stop(tokens_BxT, stop_ids)
  has_stop_B = xp.any(stop_BxT, axis=1)
  lengths_B = xp.where(has_stop_B, xp.argmax(stop_BxT, axis=1) + 1, tokens_BxT.shape[1]).astype(xp.int32)
  return lengths_B, has_stop_B


def _response_logprobs_BxTrxV(weights, model, tokens_BxT, mask_BxT, prompt_slots, temperature):
  logits_BxTxV, _ = model.apply({"params": weights}, tokens_BxT, positions_from_mask(mask_BxT), mask_BxT)
  # The model's head is float32 whatever the activation dtype; the cast only guards other models.
  logits_BxTrxV = logits_BxTxV[:, prompt_slots - 1 : -1].astype(jnp.float32) / _logit_temperature(temperature)
  return jax.nn.log_softmax(logits_BxTrxV, axis=-1)


def sequence_logprobs(
    weights: dict,
    model: Transformer,
    tokens_BxT: jax.Array,
    mask_BxT: jax.Array,
    prompt_slots: int,
    temperature: float = 1.0,
) -> jax.Array:
  """Per-token float32 log-probs [B, T - Tp] of the response columns of prompt+response rows (not
  jitted: the update differentiates through it; `score` is the jitted form). The entropy of the shared
  implementation is dropped unused, so the compiler removes it."""
  return sequence_logprobs_and_entropy(weights, model, tokens_BxT, mask_BxT, prompt_slots, temperature)[0]


def sequence_logprobs_and_entropy(
    weights: dict,
    model: Transformer,
    tokens_BxT: jax.Array,
    mask_BxT: jax.Array,
    prompt_slots: int,
    temperature: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """`sequence_logprobs` and the float32 entropy [B, T - Tp] of the sampling distribution at each
  response column, without gradient (a metric: TRL's and verl's `entropy`)."""
  logprobs_BxTrxV = _response_logprobs_BxTrxV(weights, model, tokens_BxT, mask_BxT, prompt_slots, temperature)
  targets_BxTr = tokens_BxT[:, prompt_slots:]
  logp_BxTr = jnp.take_along_axis(logprobs_BxTrxV, targets_BxTr[..., None], axis=-1)[..., 0]
  lp = jax.lax.stop_gradient(logprobs_BxTrxV)
  entropy_BxTr = -jnp.sum(jnp.exp(lp) * lp, axis=-1)
  return logp_BxTr, entropy_BxTr


@functools.partial(jax.jit, static_argnames=("model", "prompt_slots", "temperature", "batch_sharding"))
def score(
    weights, tokens_BxT, mask_BxT, *, model: Transformer, prompt_slots: int, temperature: float = 1.0,
    batch_sharding=None,
):
  """Jitted `sequence_logprobs`, zeroed outside the mask: old and reference log-probs.

  batch_sharding: rows of the inputs and of the result on a mesh (`sharding.batch_sharding`)."""
  tokens_BxT, mask_BxT = _constrain((tokens_BxT, mask_BxT), batch_sharding)
  logprobs = sequence_logprobs(weights, model, tokens_BxT, mask_BxT, prompt_slots, temperature)
  return _constrain(jnp.where(mask_BxT[:, prompt_slots:], logprobs, 0.0), batch_sharding)


# ---------------------------------------------------------------------------------------------------
# Packed rows (the update's packed layout, `batching.pack_update_batch_packed`): several prompt +
# response sequences per row, each a segment with its own positions from 0; segment 0 is padding.
# ---------------------------------------------------------------------------------------------------


def segment_attention_mask(segment_BxT: jax.Array) -> jax.Array:
  """bool [B, T, T]: query t may see key s when both lie in the same real segment (the model adds
  causality), so no token attends across sequences of its row."""
  return (segment_BxT[:, :, None] == segment_BxT[:, None, :]) & (segment_BxT[:, None, :] > 0)


def _packed_logprobs_BxTm1xV(weights, model, tokens_BxT, segment_BxT, positions_BxT, temperature):
  logits_BxTxV, _ = model.apply(
      {"params": weights}, tokens_BxT, positions_BxT, segment_attention_mask(segment_BxT)
  )
  # Column t predicts token t + 1; a response token is never a segment's first, so its predictor
  # lies in its own segment.
  return jax.nn.log_softmax(logits_BxTxV[:, :-1].astype(jnp.float32) / _logit_temperature(temperature), axis=-1)


def packed_logprobs_and_entropy(
    weights: dict,
    model: Transformer,
    tokens_BxT: jax.Array,
    segment_BxT: jax.Array,
    positions_BxT: jax.Array,
    temperature: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """Float32 log-prob of each token given the earlier tokens of its segment, and the entropy (no
  gradient) of the distribution it was drawn from: [B, T] each, column 0 (no predictor) 0. Meaningful
  where a token has a predecessor in its segment; callers mask with the response tokens."""
  logprobs_BxTm1xV = _packed_logprobs_BxTm1xV(weights, model, tokens_BxT, segment_BxT, positions_BxT, temperature)
  logp_BxTm1 = jnp.take_along_axis(logprobs_BxTm1xV, tokens_BxT[:, 1:, None], axis=-1)[..., 0]
  lp = jax.lax.stop_gradient(logprobs_BxTm1xV)
  entropy_BxTm1 = -jnp.sum(jnp.exp(lp) * lp, axis=-1)
  first_column = ((0, 0), (1, 0))
  return jnp.pad(logp_BxTm1, first_column), jnp.pad(entropy_BxTm1, first_column)


@functools.partial(jax.jit, static_argnames=("model", "temperature", "batch_sharding"))
def score_packed(
    weights, tokens_BxT, segment_BxT, positions_BxT, target_BxT, *, model: Transformer, temperature: float = 1.0,
    batch_sharding=None,
):
  """`score` for packed rows: float32 log-probs [B, T] of the tokens marked in target_BxT (response
  tokens), 0 elsewhere; each segment sees only itself."""
  tokens_BxT, segment_BxT, positions_BxT, target_BxT = _constrain(
      (tokens_BxT, segment_BxT, positions_BxT, target_BxT), batch_sharding
  )
  logp_BxT, _ = packed_logprobs_and_entropy(weights, model, tokens_BxT, segment_BxT, positions_BxT, temperature)
  return _constrain(jnp.where(target_BxT, logp_BxT, 0.0), batch_sharding)
