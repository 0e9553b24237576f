"""Supervised warm start: next-token training on worked solutions, so RL starts from a policy that
is right on some prompts and wrong on others.

The loss is the mean negative log-prob of the solution tokens (EOS included) given the prompt, in the
same row layout and through the same `sequence_logprobs` as the RL update. The number of steps is
fixed, not the time, because machine speed swings; the pass-rate regime depends on it.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ar3po_jax import batching
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.sampling import sequence_logprobs
from ar3po_jax.tokenizers import Tokenizer


def pack_examples(questions: Sequence[str], solutions: Sequence[str], tokenizer: Tokenizer, response_slots: int):
  """All examples as fixed arrays: tokens [N, Tp + Tr] and mask, prompts left-padded, Tr the longest
  solution rounded up to 8 (at most response_slots)."""
  prompts = [np.asarray([tokenizer.bos_id] + tokenizer.encode(q), np.int32) for q in questions]
  responses = [np.asarray(tokenizer.encode(s) + [tokenizer.eos_id], np.int32) for s in solutions]
  too_long = [i for i, r in enumerate(responses) if len(r) > response_slots]
  if too_long:
    raise ValueError(f"{len(too_long)} solutions exceed rollout.max_new_tokens={response_slots} tokens (first: example {too_long[0]})")
  Tp = batching.prompt_slots([len(p) for p in prompts])
  # Training needs only as many response slots as the longest solution, not the sampler's limit.
  slots = min(response_slots, batching.prompt_slots([len(r) for r in responses]))
  p_tokens, p_mask = batching.left_pad(prompts, Tp, tokenizer.pad_id)
  r_tokens, r_mask = batching.right_pad(responses, slots, tokenizer.pad_id)
  return np.concatenate([p_tokens, r_tokens], 1), np.concatenate([p_mask, r_mask], 1), Tp


def make_sft_step(model: Transformer, optimizer: optax.GradientTransformation, prompt_slots: int):
  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(params, opt_state, tokens_BxT, mask_BxT):
    def loss_fn(p):
      logp_BxTr = sequence_logprobs(p, model, tokens_BxT, mask_BxT, prompt_slots)
      target_mask = mask_BxT[:, prompt_slots:].astype(jnp.float32)
      return -jnp.sum(logp_BxTr * target_mask) / jnp.maximum(jnp.sum(target_mask), 1.0)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


def warm_start(
    model: Transformer,
    params,
    tokens: np.ndarray,
    mask: np.ndarray,
    prompt_slots: int,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    warmup_steps: int,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
):
  """Runs `steps` supervised steps; returns (params, final loss, seconds)."""
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, max(1, warmup_steps), max(steps, warmup_steps + 1), lr * 0.1)
  optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=0.01))
  opt_state = optimizer.init(params)
  step_fn = make_sft_step(model, optimizer, prompt_slots)
  rng = np.random.default_rng(seed)
  start, loss = time.time(), float("nan")
  for i in range(steps):
    idx = rng.integers(0, len(tokens), batch_size)
    params, opt_state, loss_arr = step_fn(params, opt_state, tokens[idx], mask[idx])
    if on_step is not None and (i % 20 == 0 or i == steps - 1):
      loss = float(loss_arr)
      on_step(i, loss)
  return params, float(loss_arr) if steps else loss, time.time() - start
