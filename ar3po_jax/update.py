"""One compiled RL update: advantages, clipped-ratio loss, gradient and optimizer step in one jit.

The batch is a flat set of rows (prompt + response, see `sampling`), padded to a row bucket, with a
group id per row. Advantages are computed over the whole batch first (a group may span micro-
batches), then the loss is summed over micro-batches by a scan, and the gradient divided once by the
total count, so micro-batching changes no number. A non-finite loss or gradient skips the step:
parameters and optimizer state stay as they were, and `train/skipped_steps` counts it.

Batch fields (B rows, Tp prompt slots, Tr response slots, T = Tp + Tr):
  tokens_BxT int32, mask_BxT bool         prompt left-padded, response right-padded
  old_logp_BxTr, ref_logp_BxTr float32     pi_old and pi_ref log-probs of the response tokens
  rewards_B float32, group_ids_B int32     training rewards (with shaping) and group of each row
  row_valid_B bool                         False for padding rows: they weigh nothing anywhere
  train_row_B bool                         False: counts in its group's statistics, no gradient
  posterior_mean_B float32, use_posterior_B bool   AERO's baseline for degenerate groups
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ar3po_jax import losses
from ar3po_jax.advantages import group_advantages
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.sampling import sequence_logprobs

BATCH_FIELDS = (
    "tokens_BxT",
    "mask_BxT",
    "old_logp_BxTr",
    "ref_logp_BxTr",
    "rewards_B",
    "group_ids_B",
    "row_valid_B",
    "train_row_B",
    "posterior_mean_B",
    "use_posterior_B",
)


class TrainState(NamedTuple):
  params: Any
  opt_state: Any
  step: jax.Array  # int32: optimizer steps applied
  skipped_steps: jax.Array  # int32: updates skipped for a non-finite loss or gradient


@dataclasses.dataclass(frozen=True)
class UpdateSettings:
  eps_low: float = 0.2
  eps_high: float = 0.2
  beta: float = 0.0
  loss_agg: str = "token_mean"
  scale_by_std: bool = True
  adv_eps: float = 1e-6
  micro_batch_rows: int = 0  # 0: one pass over the whole batch
  temperature: float = 1.0

  @classmethod
  def from_config(cls, rl_config, temperature: float) -> "UpdateSettings":
    return cls(
        eps_low=rl_config.eps_low,
        eps_high=rl_config.eps_high,
        beta=rl_config.beta,
        loss_agg=rl_config.loss_agg,
        scale_by_std=rl_config.scale_by_std,
        adv_eps=rl_config.adv_eps,
        micro_batch_rows=rl_config.micro_batch_rows,
        temperature=temperature,
    )


def make_optimizer(lr: float, weight_decay: float = 0.0, grad_clip: float = 0.0, warmup_steps: int = 0) -> optax.GradientTransformation:
  """AdamW after global-norm clipping. A linear warm-up keeps Adam's first steps, whose second-moment
  estimate is still noisy and which move every weight by about lr, from jolting the policy."""
  parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip > 0 else []
  schedule = optax.linear_schedule(lr / max(warmup_steps, 1), lr, warmup_steps) if warmup_steps > 0 else lr
  parts.append(optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=weight_decay))
  return optax.chain(*parts)


def init_train_state(params, optimizer: optax.GradientTransformation) -> TrainState:
  return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _loss_terms(params, batch, model: Transformer, s: UpdateSettings):
  """(loss sum, aux sums) over one micro-batch; aux carries the counts the sums divide by."""
  prompt_slots = batch["tokens_BxT"].shape[1] - batch["old_logp_BxTr"].shape[1]
  logp_BxTr = sequence_logprobs(params, model, batch["tokens_BxT"], batch["mask_BxT"], prompt_slots, s.temperature)
  train_mask_BxTr = batch["mask_BxT"][:, prompt_slots:] & (batch["train_row_B"] & batch["row_valid_B"])[:, None]
  per_token, clipped = losses.clipped_policy_loss(logp_BxTr, batch["old_logp_BxTr"], batch["advantages_B"], s.eps_low, s.eps_high)
  kl_BxTr = losses.k3_kl(logp_BxTr, batch["ref_logp_BxTr"])
  if s.beta > 0:
    per_token = per_token + s.beta * kl_BxTr
  loss_sum, count = losses.aggregate(per_token, train_mask_BxTr, s.loss_agg)
  mask = train_mask_BxTr.astype(jnp.float32)
  aux = {
      "count": count,
      "tokens": jnp.sum(mask),
      "clipped": jnp.sum(clipped * mask),
      # Without a reference model ref_logp is a placeholder: report 0, not a meaningless number.
      "kl": jnp.sum(kl_BxTr * mask) if s.beta > 0 else jnp.float32(0),
      "ratio": jnp.sum(jnp.exp(logp_BxTr - batch["old_logp_BxTr"]) * mask),
      "logp": jnp.sum(logp_BxTr * mask),
  }
  return loss_sum, aux


def _split_micro_batches(tree, micro_batches: int):
  """[B, ...] -> [M, B/M, ...], micro-batch m taking rows m, M+m, 2M+m, ... so that each data shard
  keeps its own rows (a contiguous block of rows splits evenly over every micro-batch)."""

  def split(x):
    return jnp.swapaxes(x.reshape(x.shape[0] // micro_batches, micro_batches, *x.shape[1:]), 0, 1)

  return jax.tree.map(split, tree)


def make_update_fn(model: Transformer, optimizer: optax.GradientTransformation, settings: UpdateSettings):
  """The update as a pure function (state, batch) -> (state, metrics); jit it with `jit_update`."""
  if settings.loss_agg not in losses.AGGREGATIONS:
    raise ValueError(f"rl.loss_agg must be one of {losses.AGGREGATIONS}, got {settings.loss_agg!r}")
  grad_fn = jax.value_and_grad(_loss_terms, has_aux=True)

  def update(state: TrainState, batch: dict):
    advantages_B = group_advantages(
        batch["rewards_B"],
        batch["group_ids_B"],
        batch["row_valid_B"],
        batch["posterior_mean_B"],
        batch["use_posterior_B"],
        scale_by_std=settings.scale_by_std,
        eps=settings.adv_eps,
    )
    batch = dict(batch, advantages_B=advantages_B)
    rows = batch["rewards_B"].shape[0]
    micro_batches = rows // settings.micro_batch_rows if settings.micro_batch_rows else 1
    if micro_batches > 1 and rows % settings.micro_batch_rows:
      raise ValueError(f"update batch of {rows} rows is not a multiple of rl.micro_batch_rows={settings.micro_batch_rows}")
    if micro_batches <= 1:
      (loss_sum, aux), grads = grad_fn(state.params, batch, model, settings)
    else:

      def accumulate(carry, micro_batch):
        (loss_sum, aux), grads = grad_fn(state.params, micro_batch, model, settings)
        return jax.tree.map(jnp.add, carry, (loss_sum, aux, grads)), None

      zeros = jax.tree.map(jnp.zeros_like, (jnp.float32(0), _zero_aux(), state.params))
      (loss_sum, aux, grads), _ = jax.lax.scan(accumulate, zeros, _split_micro_batches(batch, micro_batches))

    count = jnp.maximum(aux["count"], 1.0)
    grads = jax.tree.map(lambda g: g / count, grads)
    loss = loss_sum / count
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def apply(_):
      updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      return optax.apply_updates(state.params, updates), opt_state

    params, opt_state = jax.lax.cond(finite, apply, lambda _: (state.params, state.opt_state), None)
    new_state = TrainState(params, opt_state, state.step + finite.astype(jnp.int32), state.skipped_steps + (~finite).astype(jnp.int32))
    tokens = jnp.maximum(aux["tokens"], 1.0)
    valid = batch["row_valid_B"]
    metrics = {
        "train/loss": loss,
        "train/clip_frac": aux["clipped"] / tokens,
        "train/kl": aux["kl"] / tokens,
        "train/ratio_mean": aux["ratio"] / tokens,
        "train/logp_mean": aux["logp"] / tokens,
        "train/grad_norm": grad_norm,
        "train/tokens": aux["tokens"],
        "train/adv_abs_mean": jnp.sum(jnp.abs(advantages_B) * valid) / jnp.maximum(jnp.sum(valid), 1),
        "train/skipped_steps": new_state.skipped_steps,
    }
    return new_state, metrics

  return update


def _zero_aux():
  return {k: jnp.float32(0) for k in ("count", "tokens", "clipped", "kl", "ratio", "logp")}


def jit_update(update_fn, state_sharding=None, batch_sharding=None):
  """Jitted update with the state donated (the batch comes from host memory: nothing to reuse); shardings None leave placement to inputs."""
  if state_sharding is None and batch_sharding is None:
    return jax.jit(update_fn, donate_argnums=(0,))
  return jax.jit(update_fn, in_shardings=(state_sharding, batch_sharding), out_shardings=(state_sharding, None), donate_argnums=(0,))
