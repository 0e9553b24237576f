"""Host-side packing: prompts and responses into the padded row layout of the kernels.

Shapes are bucketed so that a whole run compiles a bounded number of variants: prompt slots round up
to a multiple of 8, response slots to one of a few lengths up to the sampler's limit
(`response_bucket`), and batch rows to one of a few sizes (`row_bucket`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ar3po_jax.types import Group


def round_up(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


def prompt_slots(prompt_lengths: Sequence[int], multiple: int = 8) -> int:
  return round_up(max(prompt_lengths), multiple)


def sampler_rows(n: int, multiple: int = 1) -> int:
  """Rows for a sampler launch: the next of 8, 12, 16, 24, 32, 48, ... (at most a third wasted),
  rounded to a multiple of the data-parallel size."""
  size = 8
  while size < n:
    size = size * 3 // 2 if (size & (size - 1)) == 0 else size * 4 // 3
  return round_up(size, multiple)


def row_bucket(n: int, max_rows: int, num_buckets: int, multiple: int = 1) -> int:
  """Update rows: one of num_buckets evenly spaced sizes up to max_rows, each a multiple of
  `multiple`; a batch larger than max_rows (not expected) rounds up past it."""
  granule = round_up(math.ceil(max_rows / num_buckets), multiple)
  return round_up(max(n, 1), granule)


def response_bucket(longest: int, max_slots: int, num_buckets: int, multiple: int = 8) -> int:
  """Update response slots: the smallest of num_buckets evenly spaced lengths (multiples of
  `multiple`, the last max_slots) that holds the longest response. Short batches then skip the
  padding up to the sampler's limit; one bucket is always max_slots."""
  if longest > max_slots:
    raise ValueError(f"a response of {longest} tokens exceeds the {max_slots} response slots")
  granule = round_up(math.ceil(max_slots / max(num_buckets, 1)), multiple)
  return min(max_slots, round_up(max(longest, 1), granule))


def left_pad(sequences: Sequence[np.ndarray], slots: int, pad_id: int, rows: int | None = None):
  """int32 [rows, slots] with each sequence right-aligned, and its bool mask."""
  rows = rows or len(sequences)
  tokens = np.full((rows, slots), pad_id, np.int32)
  mask = np.zeros((rows, slots), bool)
  for i, seq in enumerate(sequences):
    if len(seq) > slots:
      raise ValueError(f"sequence of {len(seq)} tokens does not fit {slots} prompt slots")
    if len(seq):
      tokens[i, slots - len(seq) :] = seq
      mask[i, slots - len(seq) :] = True
  return tokens, mask


def right_pad(sequences: Sequence[np.ndarray], slots: int, pad_id, rows: int | None = None, dtype=np.int32):
  rows = rows or len(sequences)
  out = np.full((rows, slots), pad_id, dtype)
  mask = np.zeros((rows, slots), bool)
  for i, seq in enumerate(sequences):
    n = min(len(seq), slots)
    out[i, :n] = seq[:n]
    mask[i, :n] = True
  return out, mask


def cut_at_first_stop(token_ids: np.ndarray, stop_ids: Sequence[int]) -> int:
  """Tokens of a response up to and including its first stop token (all of them without one)."""
  if not len(stop_ids):
    return len(token_ids)
  hits = np.flatnonzero(np.isin(token_ids, np.asarray(stop_ids)))
  return int(hits[0]) + 1 if hits.size else len(token_ids)


def pack_update_batch(
    groups: Sequence[Group],
    response_slots: int,
    rows: int,
    pad_id: int,
    prompt_multiple: int = 8,
    stop_ids: Sequence[int] = (),
) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """The update's batch (see `update.BATCH_FIELDS`) and a bool [rows] marking reused responses.

  stop_ids: a response is trained up to its FIRST stop token; anything a source left after it
  (a sampler that stopped on one token of several, a buffer entry) is masked out of the update."""
  prompts, responses, logps, rewards, group_ids, train_rows, post_mean, use_post, reused = ([] for _ in range(9))
  for g_index, group in enumerate(groups):
    training_rewards = group.rewards
    degenerate = group.posterior_mean is not None and np.all(training_rewards == training_rewards[0])
    for response, reward, train in zip(group.responses, training_rewards, group.train_mask):
      prompts.append(group.prompt.token_ids)
      keep = cut_at_first_stop(response.token_ids, stop_ids)
      responses.append(response.token_ids[:keep])
      logps.append(response.logprobs[:keep])
      rewards.append(reward)
      group_ids.append(g_index)
      train_rows.append(train)
      post_mean.append(group.posterior_mean if group.posterior_mean is not None else 0.5)
      use_post.append(degenerate)
      reused.append(response.reused)
  n = len(prompts)
  if n > rows:
    raise ValueError(f"{n} responses do not fit a batch of {rows} rows")
  longest = max((len(r) for r in responses), default=0)
  if longest > response_slots:
    raise ValueError(f"a response of {longest} tokens does not fit {response_slots} response slots")
  Tp = prompt_slots([len(p) for p in prompts], prompt_multiple)
  prompt_tokens, prompt_mask = left_pad(prompts, Tp, pad_id, rows)
  response_tokens, response_mask = right_pad(responses, response_slots, pad_id, rows)
  old_logp, _ = right_pad(logps, response_slots, 0.0, rows, np.float32)

  def column(values, dtype, fill):
    out = np.full((rows,), fill, dtype)
    out[:n] = values
    return out

  batch = {
      "tokens_BxT": np.concatenate([prompt_tokens, response_tokens], axis=1),
      "mask_BxT": np.concatenate([prompt_mask, response_mask], axis=1),
      "old_logp_BxTr": old_logp,
      "ref_logp_BxTr": np.zeros_like(old_logp),
      # The sampler's own numbers stay apart from pi_old, which the loop may re-score.
      "sampler_logp_BxTr": old_logp.copy(),
      "rewards_B": column(rewards, np.float32, 0.0),
      # Padding rows get their own group ids beyond the real groups so they touch no real statistic.
      "group_ids_B": np.concatenate([np.asarray(group_ids, np.int32), np.arange(len(groups), len(groups) + rows - n, dtype=np.int32)]),
      "row_valid_B": column(True, bool, False) if n else np.zeros((rows,), bool),
      "train_row_B": column(train_rows, bool, False),
      # Sampled this step by the current policy (reused rows were drawn by older ones).
      "fresh_row_B": column([not r for r in reused], bool, False),
      "posterior_mean_B": column(post_mean, np.float32, 0.5),
      "use_posterior_B": column(use_post, bool, False),
  }
  return batch, column(reused, bool, False)
