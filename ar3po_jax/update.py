"""One compiled RL update: advantages, then several clipped-ratio optimizer steps, in one jit.

The batch is a flat set of rows (prompt + response, see `sampling`), padded to a row bucket, with a
group id per row. Advantages are computed once over the whole batch (a group may span mini- and
micro-batches), then the rows are split into `mini_batches` mini-batches and the update takes one
AdamW step per mini-batch, `epochs` times over the batch: a `lax.scan` over epochs x mini-batches.
Within a mini-batch the loss is summed over micro-batches by a scan and the gradient divided once by
the mini-batch's total count (the (sum, count) token-mean of `losses`), so micro-batching changes no
number. A mini-batch's rows are rows m, N+m, 2N+m, ... (N mini-batches), so every data shard keeps its
own rows and padding rows spread evenly. With mini_batches = epochs = 1 this is exactly the single
step the project took before (a test pins the numbers).

From the paper(s): verl (`ppo_mini_batch_size`, `ppo_epochs`), TRL (`num_iterations`) and Tunix take
several optimizer steps per rollout batch; pi_old stays the log-probs of the rollout, so the ratio
moves away from 1 after the first step and the clip starts to act. verl's rollout correction weights
the policy loss by a truncated importance weight min(pi_old / pi_sampler, cap) when the sampler's
numbers differ from the trainer's.
Our choices: the same split every epoch (no reshuffle); a mini-batch with no trained token takes no
optimizer step; the truncated IS weight applies to rows sampled this step only (reused rows were drawn
by older policies and are handled by the strategy's Option I / II) and multiplies the policy term,
not the KL term. pi_old of a row that is not re-scored is the sampler's log-prob.

A step whose loss, gradient, NEW parameters or NEW optimizer state is not finite is not applied:
parameters and optimizer state stay as they were, and `train/skipped_steps` counts it (rl.lr = inf
makes finite gradients into NaN parameters; checking the loss alone let that through).

Batch fields, one response per row (rl.pack False; B rows, Tp prompt slots, Tr response slots, T = Tp + Tr):
  tokens_BxT int32, mask_BxT bool         prompt left-padded, response right-padded
  old_logp_BxTr, ref_logp_BxTr float32     pi_old and pi_ref log-probs of the response tokens
  sampler_logp_BxTr float32 (optional)     the sampler's own log-probs (default: old_logp_BxTr)
  rewards_B float32, group_ids_B int32     training rewards (with shaping) and group of each row
  row_valid_B bool                         False for padding rows: they weigh nothing anywhere
  train_row_B bool                         False: counts in its group's statistics, no gradient
  fresh_row_B bool (optional)              sampled this step by the current policy (default: valid)
  posterior_mean_B float32, use_posterior_B bool   AERO's baseline for degenerate groups

Packed batch fields (rl.pack, `batching.pack_update_batch_packed`; B rows of T tokens, R response slots):
  tokens_BxT int32, mask_BxT bool          several prompt + response sequences per row, padding at the end
  segment_BxT int32, positions_BxT int32   segment 1, 2, ... of each row (0: padding); positions restart at 0
  response_BxT bool, resp_of_token_BxT int32   response tokens, and the response r each token belongs to
  old_logp_BxT, ref_logp_BxT, sampler_logp_BxT float32   at the response tokens, 0 elsewhere
  rewards_R, group_ids_R, response_valid_R, train_R, fresh_R, posterior_mean_R, use_posterior_R   per response
Attention sees only a token's own segment (`sampling.segment_attention_mask`) and positions restart per
segment, so every response's log-probs are those of its sequence alone: the loss, advantages, metrics
and gradients equal the unpacked layout's on the same groups (a test). Advantages are computed once over
the R responses, then spread over the tokens (advantages_BxT, train_BxT, fresh_BxT), and the [R] fields
leave the batch: what the scans split holds rows only. Mini- and micro-batches split packed ROWS (rows
m, N+m, ..., as above) and a response lives wholly in one row, so every mini-batch holds whole
responses and its (sum, count) token-mean (or seq-mean, by response id) is exact over them. A packed
mini-batch holds different responses than the unpacked split would (rows hold several), so with
mini_batches > 1 the two layouts take different, equally valid, steps; with one they agree.

Metrics (S = epochs x mini_batches optimizer steps; "mean" is over the S steps, each step's value a
token-mean over its mini-batch before its parameter change; with S = 1 every mean is that step's):
  train/loss, train/clip_frac, train/kl, train/ratio_mean, train/logp_mean, train/grad_norm: means
  train/clip_frac_first, train/clip_frac_last  the first and last optimizer step's clip fraction
  train/ratio_mean_last; train/ratio_min, train/ratio_max  over the trained tokens of all steps
  train/kl_old, train/kl_old_last          k3 estimate of KL(pi_theta || pi_old): mean and last step
  train/entropy                            mean float32 entropy of pi_theta on trained tokens
  train/logprob_mismatch_mean, _max        |sampler - trainer| log-prob over the first mini-batch's
                                           fresh valid tokens, before any step (0 for re-scored rows)
  train/tis_weight_mean                    mean truncated IS weight (only when rl.tis_cap > 0)
  train/lr                                 the schedule's learning rate at the first step of this update
  train/optimizer_steps                    optimizer steps applied in this update
  train/tokens                             trained tokens of the batch (one epoch)
  train/adv_abs_mean, train/skipped_steps  as before; skipped_steps is cumulative
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ar3po_jax import losses
from ar3po_jax.advantages import group_advantages
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.sampling import packed_logprobs_and_entropy, sequence_logprobs_and_entropy

BATCH_FIELDS = (
    "tokens_BxT",
    "mask_BxT",
    "old_logp_BxTr",
    "ref_logp_BxTr",
    "sampler_logp_BxTr",
    "rewards_B",
    "group_ids_B",
    "row_valid_B",
    "train_row_B",
    "fresh_row_B",
    "posterior_mean_B",
    "use_posterior_B",
)


class TrainState(NamedTuple):
  params: Any
  opt_state: Any
  step: jax.Array  # int32: optimizer steps applied
  skipped_steps: jax.Array  # int32: optimizer steps skipped for a non-finite loss, gradient or result


@dataclasses.dataclass(frozen=True)
class UpdateSettings:
  eps_low: float = 0.2
  eps_high: float = 0.2
  beta: float = 0.0
  loss_agg: str = "token_mean"
  scale_by_std: bool = True
  adv_eps: float = 1e-6
  adv_std_ddof: int = 1  # 1: the sample std, as verl; 0: the population std
  micro_batch_rows: int = 0  # 0: one pass over each mini-batch
  mini_batches: int = 1  # optimizer steps per epoch over the rollout batch
  epochs: int = 1  # passes over the rollout batch
  tis_cap: float = 0.0  # > 0: truncated importance weight min(pi_old / pi_sampler, tis_cap) on fresh rows
  temperature: float = 1.0

  def __post_init__(self):
    problems = []
    if self.mini_batches < 1:
      problems.append(f"rl.mini_batches must be >= 1, got {self.mini_batches}")
    if self.epochs < 1:
      problems.append(f"rl.epochs must be >= 1, got {self.epochs}")
    if not self.tis_cap >= 0:  # also refuses NaN
      problems.append(f"rl.tis_cap must be >= 0 (0: off), got {self.tis_cap}")
    if self.adv_std_ddof not in (0, 1):
      problems.append(f"rl.adv_std_ddof must be 0 or 1, got {self.adv_std_ddof}")
    if problems:
      raise ValueError("; ".join(problems))

  @classmethod
  def from_config(cls, rl_config, temperature: float) -> "UpdateSettings":
    return cls(
        eps_low=rl_config.eps_low,
        eps_high=rl_config.eps_high,
        beta=rl_config.beta,
        loss_agg=rl_config.loss_agg,
        scale_by_std=rl_config.scale_by_std,
        adv_eps=rl_config.adv_eps,
        adv_std_ddof=rl_config.get("adv_std_ddof", 1),
        micro_batch_rows=rl_config.micro_batch_rows,
        mini_batches=rl_config.get("mini_batches", 1),
        epochs=rl_config.get("epochs", 1),
        tis_cap=rl_config.get("tis_cap", 0.0),
        temperature=temperature,
    )


def make_schedule(lr: float, warmup_steps: int = 0) -> optax.Schedule:
  """The learning rate per optimizer step: a linear warm-up to lr, then constant."""
  if warmup_steps > 0:
    return optax.linear_schedule(lr / max(warmup_steps, 1), lr, warmup_steps)
  return optax.constant_schedule(lr)


def make_optimizer(
    lr: float, weight_decay: float = 0.0, grad_clip: float = 0.0, warmup_steps: int = 0, flatten: bool = False
) -> optax.GradientTransformation:
  """AdamW after global-norm clipping. A linear warm-up keeps Adam's first steps, whose second-moment
  estimate is still noisy and which move every weight by about lr, from jolting the policy.

  flatten: run the optimizer on all parameters raveled into one vector (`optax.flatten`): the same
  numbers, a handful of ops instead of a dozen per parameter leaf. XLA:CPU's fusion pass grows
  faster than linearly in those ops: SmolLM2's update (30 layers, 273 leaves) compiled for 13 to 25
  minutes, and the one vector cannot keep per-parameter shardings (config validation refuses it with
  fsdp or tensor parallelism)."""
  parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip > 0 else []
  # A plain float without warm-up, as before: optax then keeps no schedule count in the state.
  schedule = make_schedule(lr, warmup_steps) if warmup_steps > 0 else lr
  parts.append(optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=weight_decay))
  chained = optax.chain(*parts)
  return optax.flatten(chained) if flatten else chained


def init_train_state(params, optimizer: optax.GradientTransformation) -> TrainState:
  return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


_SUM_KEYS = (
    "count", "tokens", "clipped", "kl", "ratio", "logp", "entropy", "kl_old", "tis", "mismatch", "fresh_tokens"
)
_MAX_KEYS = ("ratio_max", "neg_ratio_min", "mismatch_max")


def _loss_terms(params, batch, model: Transformer, s: UpdateSettings, num_responses: int = 0):
  """(loss sum, aux) over one micro-batch; aux holds sums (with the counts they divide by) and maxima.

  The names say [B, Tr] (response columns of one-response rows); a packed batch gives the same
  quantities per token of its rows, [B, T], with its masks and advantages spread per token by `update`."""
  if PACKED_KEY in batch:
    logp_BxTr, entropy_BxTr = packed_logprobs_and_entropy(
        params, model, batch["tokens_BxT"], batch["segment_BxT"], batch["positions_BxT"], s.temperature
    )
    train_mask_BxTr, fresh_mask_BxTr = batch["train_BxT"], batch["fresh_BxT"]
    advantages, seq_of_token = batch["advantages_BxT"], batch["resp_of_token_BxT"]
    old_logp_BxTr, ref_logp_BxTr, sampler_logp_BxTr = (
        batch["old_logp_BxT"], batch["ref_logp_BxT"], batch["sampler_logp_BxT"]
    )
  else:
    prompt_slots = batch["tokens_BxT"].shape[1] - batch["old_logp_BxTr"].shape[1]
    logp_BxTr, entropy_BxTr = sequence_logprobs_and_entropy(
        params, model, batch["tokens_BxT"], batch["mask_BxT"], prompt_slots, s.temperature
    )
    response_mask_BxTr = batch["mask_BxT"][:, prompt_slots:]
    train_mask_BxTr = response_mask_BxTr & (batch["train_row_B"] & batch["row_valid_B"])[:, None]
    fresh_mask_BxTr = response_mask_BxTr & (batch["fresh_row_B"] & batch["row_valid_B"])[:, None]
    advantages, seq_of_token = batch["advantages_B"], None
    old_logp_BxTr, ref_logp_BxTr, sampler_logp_BxTr = (
        batch["old_logp_BxTr"], batch["ref_logp_BxTr"], batch["sampler_logp_BxTr"]
    )
  per_token, clipped = losses.clipped_policy_loss(logp_BxTr, old_logp_BxTr, advantages, s.eps_low, s.eps_high)
  if s.tis_cap > 0:
    tis_BxTr = jnp.where(fresh_mask_BxTr, losses.truncated_is_weights(old_logp_BxTr, sampler_logp_BxTr, s.tis_cap), 1.0)
    per_token = per_token * tis_BxTr
  else:
    tis_BxTr = jnp.ones_like(per_token)
  kl_BxTr = losses.k3_kl(logp_BxTr, ref_logp_BxTr, train_mask_BxTr)
  if s.beta > 0:
    per_token = per_token + s.beta * kl_BxTr
  loss_sum, count = losses.aggregate(per_token, train_mask_BxTr, s.loss_agg, seq_of_token, num_responses)
  mask = train_mask_BxTr.astype(jnp.float32)
  ratio_BxTr = jnp.exp(logp_BxTr - old_logp_BxTr)
  live_logp_BxTr = jax.lax.stop_gradient(logp_BxTr)
  mismatch_BxTr = jnp.where(fresh_mask_BxTr, jnp.abs(sampler_logp_BxTr - live_logp_BxTr), 0.0)
  stopped_ratio_BxTr = jax.lax.stop_gradient(ratio_BxTr)
  sums = {
      "count": count,
      "tokens": jnp.sum(mask),
      "clipped": jnp.sum(clipped * mask),
      # Without a reference model ref_logp is a placeholder: report 0, not a meaningless number.
      "kl": jnp.sum(kl_BxTr * mask) if s.beta > 0 else jnp.float32(0),
      "ratio": jnp.sum(ratio_BxTr * mask),
      "logp": jnp.sum(logp_BxTr * mask),
      "entropy": jnp.sum(entropy_BxTr * mask),
      "kl_old": jnp.sum(losses.k3_kl(live_logp_BxTr, old_logp_BxTr, train_mask_BxTr) * mask),
      "tis": jnp.sum(tis_BxTr * mask),
      "mismatch": jnp.sum(mismatch_BxTr),
      "fresh_tokens": jnp.sum(fresh_mask_BxTr.astype(jnp.float32)),
  }
  maxima = {
      "ratio_max": jnp.max(jnp.where(train_mask_BxTr, stopped_ratio_BxTr, -jnp.inf)),
      "neg_ratio_min": jnp.max(jnp.where(train_mask_BxTr, -stopped_ratio_BxTr, -jnp.inf)),
      "mismatch_max": jnp.max(jnp.where(fresh_mask_BxTr, mismatch_BxTr, -jnp.inf)),
  }
  return loss_sum, {"sums": sums, "maxima": maxima}


PACKED_KEY = "segment_BxT"  # present only in a packed batch


def _packed_token_batch(batch: dict, advantages_R: jax.Array) -> dict:
  """A packed batch with its per-response [R] fields spread over the tokens ([B, T]): what the loss
  needs, and nothing with a leading axis other than rows, so that mini- and micro-batches split rows."""
  resp = batch["resp_of_token_BxT"]
  response_BxT = batch["response_BxT"]
  valid_R = batch["response_valid_R"]
  fresh_R = batch.get("fresh_R", valid_R)
  token_fields = {k: v for k, v in batch.items() if not k.endswith("_R")}
  token_fields.setdefault("sampler_logp_BxT", batch["old_logp_BxT"])
  return dict(
      token_fields,
      advantages_BxT=advantages_R[resp],
      train_BxT=response_BxT & (batch["train_R"] & valid_R)[resp],
      fresh_BxT=response_BxT & (fresh_R & valid_R)[resp],
  )


def _split_rows(tree, parts: int):
  """[B, ...] -> [P, B/P, ...], part p taking rows p, P+p, 2P+p, ... so that each data shard keeps its
  own rows (a contiguous block of rows splits evenly over every part)."""

  def split(x):
    return jnp.swapaxes(x.reshape(x.shape[0] // parts, parts, *x.shape[1:]), 0, 1)

  return jax.tree.map(split, tree)


_split_micro_batches = _split_rows  # the name tests and older notes use


def _all_finite(tree) -> jax.Array:
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else jnp.bool_(True)


def _combine_aux(a, b):
  return {
      "sums": jax.tree.map(jnp.add, a["sums"], b["sums"]),
      "maxima": jax.tree.map(jnp.maximum, a["maxima"], b["maxima"]),
  }


def _zero_aux():
  return {"sums": {k: jnp.float32(0) for k in _SUM_KEYS}, "maxima": {k: jnp.float32(-jnp.inf) for k in _MAX_KEYS}}


def make_update_fn(
    model: Transformer,
    optimizer: optax.GradientTransformation,
    settings: UpdateSettings,
    lr_schedule: Callable[[jax.Array], jax.Array] | None = None,
):
  """The update as a pure function (state, batch) -> (state, metrics); jit it with `jit_update`.

  lr_schedule: the optimizer's schedule (`make_schedule`), for the `train/lr` metric; None: not logged."""
  if settings.loss_agg not in losses.AGGREGATIONS:
    raise ValueError(f"rl.loss_agg must be one of {losses.AGGREGATIONS}, got {settings.loss_agg!r}")
  grad_fn = jax.value_and_grad(_loss_terms, has_aux=True)

  def optimizer_step(state: TrainState, batch: dict, num_responses: int = 0):
    """One AdamW step on one mini-batch: the gradient summed over its micro-batches."""
    rows = batch["tokens_BxT"].shape[0]
    micro_batches = rows // settings.micro_batch_rows if settings.micro_batch_rows else 1
    if micro_batches > 1 and rows % settings.micro_batch_rows:
      raise ValueError(
          f"update mini-batch of {rows} rows is not a multiple of rl.micro_batch_rows={settings.micro_batch_rows}"
      )
    if micro_batches <= 1:
      (loss_sum, aux), grads = grad_fn(state.params, batch, model, settings, num_responses)
    else:

      def accumulate(carry, micro_batch):
        (loss_sum, aux), grads = grad_fn(state.params, micro_batch, model, settings, num_responses)
        total, total_aux, total_grads = carry
        return (total + loss_sum, _combine_aux(total_aux, aux), jax.tree.map(jnp.add, total_grads, grads)), None

      zeros = (jnp.float32(0), _zero_aux(), jax.tree.map(jnp.zeros_like, state.params))
      (loss_sum, aux, grads), _ = jax.lax.scan(accumulate, zeros, _split_rows(batch, micro_batches))

    sums = aux["sums"]
    count = jnp.maximum(sums["count"], 1.0)
    grads = jax.tree.map(lambda g: g / count, grads)
    loss = loss_sum / count
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def step(_):
      updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
      return optax.apply_updates(state.params, updates), opt_state

    params, opt_state = jax.lax.cond(finite, step, lambda _: (state.params, state.opt_state), None)
    finite = finite & _all_finite(params) & _all_finite(opt_state)
    # A mini-batch of padding rows only has nothing to learn from: no step (Adam's momentum would move).
    apply = finite & (sums["count"] > 0)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(apply, n, o), new, old)  # noqa: E731
    new_state = TrainState(
        keep(params, state.params),
        keep(opt_state, state.opt_state),
        state.step + apply.astype(jnp.int32),
        state.skipped_steps + (~finite).astype(jnp.int32),
    )
    tokens = jnp.maximum(sums["tokens"], 1.0)
    fresh_tokens = jnp.maximum(sums["fresh_tokens"], 1.0)
    m = aux["maxima"]
    step_metrics = {
        "loss": loss,
        "clip_frac": sums["clipped"] / tokens,
        "kl": sums["kl"] / tokens,
        "ratio_mean": sums["ratio"] / tokens,
        "logp_mean": sums["logp"] / tokens,
        "entropy": sums["entropy"] / tokens,
        "kl_old": sums["kl_old"] / tokens,
        "tis_weight_mean": sums["tis"] / tokens,
        "grad_norm": grad_norm,
        "tokens": sums["tokens"],
        "ratio_max": m["ratio_max"],
        "ratio_min": -m["neg_ratio_min"],
        "mismatch_mean": sums["mismatch"] / fresh_tokens,
        "mismatch_max": jnp.maximum(m["mismatch_max"], 0.0),
        "applied": apply.astype(jnp.int32),
    }
    return new_state, step_metrics

  def update(state: TrainState, batch: dict):
    packed = PACKED_KEY in batch
    suffix = "R" if packed else "B"
    valid = batch["response_valid_R"] if packed else batch["row_valid_B"]
    advantages_B = group_advantages(
        batch[f"rewards_{suffix}"],
        batch[f"group_ids_{suffix}"],
        valid,
        batch[f"posterior_mean_{suffix}"],
        batch[f"use_posterior_{suffix}"],
        scale_by_std=settings.scale_by_std,
        eps=settings.adv_eps,
        std_ddof=settings.adv_std_ddof,
    )
    num_responses = 0
    if packed:
      batch = _packed_token_batch(batch, advantages_B)
      num_responses = advantages_B.shape[0]
    else:
      batch = dict(batch, advantages_B=advantages_B)
      batch.setdefault("sampler_logp_BxTr", batch["old_logp_BxTr"])
      batch.setdefault("fresh_row_B", batch["row_valid_B"])
    step_fn = functools.partial(optimizer_step, num_responses=num_responses)
    lr = lr_schedule(state.step) if lr_schedule is not None else None
    rows = batch["tokens_BxT"].shape[0]
    n_mini, epochs = settings.mini_batches, settings.epochs
    if rows % n_mini:
      raise ValueError(f"update batch of {rows} rows is not a multiple of rl.mini_batches={n_mini}")
    if n_mini * epochs == 1:
      # The single step, unrolled: exactly the numbers of the one-step update this replaced.
      state, per_step = step_fn(state, batch)
      per_step = jax.tree.map(lambda x: x[None], per_step)
    else:
      mini = _split_rows(batch, n_mini)

      def epoch(state, _):
        return jax.lax.scan(step_fn, state, mini)

      state, per_step = jax.lax.scan(epoch, state, None, length=epochs)
      per_step = jax.tree.map(lambda x: x.reshape(n_mini * epochs, *x.shape[2:]), per_step)

    mean = lambda name: jnp.mean(per_step[name])  # noqa: E731
    metrics = {
        "train/loss": mean("loss"),
        "train/clip_frac": mean("clip_frac"),
        "train/clip_frac_first": per_step["clip_frac"][0],
        "train/clip_frac_last": per_step["clip_frac"][-1],
        "train/kl": mean("kl"),
        "train/kl_old": mean("kl_old"),
        "train/kl_old_last": per_step["kl_old"][-1],
        "train/ratio_mean": mean("ratio_mean"),
        "train/ratio_mean_last": per_step["ratio_mean"][-1],
        "train/ratio_min": jnp.min(per_step["ratio_min"]),
        "train/ratio_max": jnp.max(per_step["ratio_max"]),
        "train/logp_mean": mean("logp_mean"),
        "train/entropy": mean("entropy"),
        "train/logprob_mismatch_mean": per_step["mismatch_mean"][0],
        "train/logprob_mismatch_max": per_step["mismatch_max"][0],
        "train/grad_norm": mean("grad_norm"),
        "train/tokens": jnp.sum(per_step["tokens"]) / epochs,
        "train/optimizer_steps": jnp.sum(per_step["applied"]),
        "train/adv_abs_mean": jnp.sum(jnp.abs(advantages_B) * valid) / jnp.maximum(jnp.sum(valid), 1),
        "train/skipped_steps": state.skipped_steps,
    }
    if settings.tis_cap > 0:
      metrics["train/tis_weight_mean"] = mean("tis_weight_mean")
    if lr is not None:
      metrics["train/lr"] = jnp.asarray(lr, jnp.float32)
    return state, metrics

  return update


def jit_update(update_fn, state_sharding=None, batch_sharding=None):
  """Jitted update with the state donated (the batch comes from host memory: nothing to reuse); shardings None
  leave placement to inputs."""
  if state_sharding is None and batch_sharding is None:
    return jax.jit(update_fn, donate_argnums=(0,))
  return jax.jit(
      update_fn,
      in_shardings=(state_sharding, batch_sharding),
      out_shardings=(state_sharding, None),
      donate_argnums=(0,),
  )
