"""The clipped-ratio policy loss and the k3 KL penalty, returned as (sum, count).

Returning a sum and the count it averages over keeps a token-mean exact across micro-batches: the
update adds up sums and counts over the scan and divides once at the end.

Per token t of response i, with rho = exp(logp - old_logp):
  loss = -min(rho * A_i, clip(rho, 1 - eps_low, 1 + eps_high) * A_i)  [+ beta * k3(logp, ref_logp)]
Aggregation: "token_mean" averages over every trained token of the batch (DAPO; our default);
"seq_mean" averages within each response, then over responses (original GRPO).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

AGGREGATIONS = ("token_mean", "seq_mean")


def clipped_policy_loss(logp_BxT, old_logp_BxT, advantages_B, eps_low: float, eps_high: float):
  """Per-token loss [B, T] and whether clipping bound the objective there [B, T]; advantages [B] (one
  per row) or [B, T] (one per token)."""
  ratio = jnp.exp(logp_BxT - old_logp_BxT)
  # Per row [B] (one response a row), or already per token [B, T] (packed rows hold several responses).
  adv = advantages_B if advantages_B.ndim == logp_BxT.ndim else advantages_B[:, None]
  unclipped = ratio * adv
  clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
  return -jnp.minimum(unclipped, clipped), clipped < unclipped


def k3_kl(logp_BxT, ref_logp_BxT, mask_BxT=None):
  """The k3 estimator of KL(pi || pi_ref): exp(ref - logp) - (ref - logp) - 1, >= 0 per token.

  mask_BxT: where the estimate means anything; elsewhere it is 0. Padding holds a placeholder ref
  log-prob (0) against a real, possibly very negative, log-prob of the pad token: exp would overflow
  to inf there and inf * 0 = NaN in any masked sum (and in its gradient), so it is never evaluated."""
  delta = ref_logp_BxT - logp_BxT
  if mask_BxT is not None:
    delta = jnp.where(mask_BxT, delta, 0.0)
  return jnp.exp(delta) - delta - 1.0


def truncated_is_weights(trainer_logp_BxT, sampler_logp_BxT, cap: float):
  """Truncated importance weights min(pi_trainer / pi_sampler, cap) per token, for when the sampler's
  numbers differ from the trainer's (verl's rollout correction, token level). No gradient flows
  through them: they reweight the loss of the tokens the sampler actually drew."""
  return jax.lax.stop_gradient(jnp.minimum(jnp.exp(trainer_logp_BxT - sampler_logp_BxT), cap))


def aggregate(values_BxT, token_mask_BxT, mode: str, seq_of_token_BxT=None, num_seqs: int = 0):
  """(sum, count) whose ratio is the token-mean or the sequence-mean of values over the mask.

  seq_of_token_BxT: the sequence (in [0, num_seqs)) each token belongs to, for rows that hold several
  (packed rows); None: one sequence per row. A sequence must lie wholly in the batch given, so that
  sums and counts of separate batches add up to the whole batch's."""
  mask = token_mask_BxT.astype(values_BxT.dtype)
  if mode == "token_mean":
    return jnp.sum(values_BxT * mask), jnp.sum(mask)
  if mode == "seq_mean" and seq_of_token_BxT is not None:
    ids = seq_of_token_BxT.reshape(-1)
    tokens_S = jax.ops.segment_sum(mask.reshape(-1), ids, num_seqs)
    per_seq_S = jax.ops.segment_sum((values_BxT * mask).reshape(-1), ids, num_seqs) / jnp.maximum(tokens_S, 1.0)
    return jnp.sum(per_seq_S), jnp.sum((tokens_S > 0).astype(values_BxT.dtype))
  if mode == "seq_mean":
    tokens_B = jnp.sum(mask, axis=1)
    per_seq_B = jnp.sum(values_BxT * mask, axis=1) / jnp.maximum(tokens_B, 1.0)
    return jnp.sum(per_seq_B), jnp.sum((tokens_B > 0).astype(values_BxT.dtype))
  raise ValueError(f"rl.loss_agg must be one of {AGGREGATIONS}, got {mode!r}")
