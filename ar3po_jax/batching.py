"""Host-side packing: prompts and responses into the padded row layouts of the kernels.

Shapes are bucketed so that a whole run compiles a bounded number of variants: prompt slots round up
to a multiple of 8, response slots to one of a few lengths up to the sampler's limit
(`response_bucket`), and batch rows to one of a few sizes (`row_bucket`).

Two update layouts (`rl.pack`):
- one response per row (`pack_update_batch`): [left-padded prompt | right-padded response], the
  sampler's layout; per-row arrays (`rewards_B`, ...).
- packed (`pack_update_batch_packed`, the default): several prompt + response sequences per row, each
  a segment (segment_BxT: 1, 2, ... within the row, 0 = padding) whose positions restart at 0 and
  whose tokens attend only to their own segment. Per-token arrays are [B, T] (B rows, T the row
  length): tokens, segment, positions, response_BxT (a response token: its log-prob is trained),
  resp_of_token_BxT (the response r a token belongs to), old/ref/sampler log-probs at the response
  tokens. Per-response arrays are [R] (R response slots, padded; padding responses have
  response_valid_R False): rewards_R, group_ids_R, train_R, fresh_R, posterior_mean_R,
  use_posterior_R. A response lives wholly in one row.

Our choices for packing: first-fit-decreasing by sequence length into rows of one fixed length per run
(`packed_row_length`: a few of the longest possible sequences, so a row's unused tail is small next to
it), and a row count chosen among the row counts this run already compiled (`packed_row_bucket`), so a
run compiles at most rl.row_buckets update shapes whatever its response lengths do.
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


def _flatten_groups(groups: Sequence[Group], stop_ids: Sequence[int]) -> dict[str, list]:
  """Per response, in group order: its prompt, response and sampler log-probs cut at the first stop,
  and its per-response fields."""
  keys = ("prompts", "responses", "logps", "rewards", "group_ids", "train", "posterior_mean", "use_posterior", "reused")
  flat: dict[str, list] = {k: [] for k in keys}
  for g_index, group in enumerate(groups):
    training_rewards = group.rewards
    degenerate = group.posterior_mean is not None and np.all(training_rewards == training_rewards[0])
    for response, reward, train in zip(group.responses, training_rewards, group.train_mask):
      keep = cut_at_first_stop(response.token_ids, stop_ids)
      flat["prompts"].append(group.prompt.token_ids)
      flat["responses"].append(response.token_ids[:keep])
      flat["logps"].append(response.logprobs[:keep])
      flat["rewards"].append(reward)
      flat["group_ids"].append(g_index)
      flat["train"].append(train)
      flat["posterior_mean"].append(group.posterior_mean if group.posterior_mean is not None else 0.5)
      flat["use_posterior"].append(degenerate)
      flat["reused"].append(response.reused)
  return flat


def pack_update_batch(
    groups: Sequence[Group],
    response_slots: int,
    rows: int,
    pad_id: int,
    prompt_multiple: int = 8,
    stop_ids: Sequence[int] = (),
    prompt_width: int = 0,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """The update's batch (see `update.BATCH_FIELDS`) and a bool [rows] marking reused responses.

  stop_ids: a response is trained up to its FIRST stop token; anything a source left after it
  (a sampler that stopped on one token of several, a buffer entry) is masked out of the update.
  prompt_width: at least this many prompt slots (the training set's longest prompt, rounded up), so
  steps whose longest prompts differ do not compile new update shapes; 0: the step's own longest."""
  flat = _flatten_groups(groups, stop_ids)
  prompts, responses, logps = flat["prompts"], flat["responses"], flat["logps"]
  rewards, group_ids, train_rows = flat["rewards"], flat["group_ids"], flat["train"]
  post_mean, use_post, reused = flat["posterior_mean"], flat["use_posterior"], flat["reused"]
  n = len(prompts)
  if n > rows:
    raise ValueError(f"{n} responses do not fit a batch of {rows} rows")
  longest = max((len(r) for r in responses), default=0)
  if longest > response_slots:
    raise ValueError(f"a response of {longest} tokens does not fit {response_slots} response slots")
  Tp = max(prompt_slots([len(p) for p in prompts], prompt_multiple), prompt_width)
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
      "group_ids_B": np.concatenate(
          [np.asarray(group_ids, np.int32), np.arange(len(groups), len(groups) + rows - n, dtype=np.int32)]
      ),
      "row_valid_B": column(True, bool, False) if n else np.zeros((rows,), bool),
      "train_row_B": column(train_rows, bool, False),
      # Sampled this step by the current policy (reused rows were drawn by older ones).
      "fresh_row_B": column([not r for r in reused], bool, False),
      "posterior_mean_B": column(post_mean, np.float32, 0.5),
      "use_posterior_B": column(use_post, bool, False),
  }
  return batch, column(reused, bool, False)


# ---------------------------------------------------------------------------------------------------
# The packed layout.
# ---------------------------------------------------------------------------------------------------


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
  """Indices of `lengths` in bins of `capacity`: longest first, each into the first bin with room
  (ties keep input order, so the packing is deterministic). Every length must fit one bin."""
  order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
  bins: list[list[int]] = []
  free: list[int] = []
  for i in order:
    if lengths[i] > capacity:
      raise ValueError(f"a sequence of {lengths[i]} tokens does not fit packed rows of {capacity} tokens")
    for b, room in enumerate(free):
      if lengths[i] <= room:
        bins[b].append(i)
        free[b] -= lengths[i]
        break
    else:
      bins.append([i])
      free.append(capacity - lengths[i])
  return bins


def packed_row_length(longest_sequence: int, sequences_per_row: int = 4, multiple: int = 8) -> int:
  """The run's packed row length: room for `sequences_per_row` of the longest possible sequences
  (longest prompt + max_new_tokens). Shorter rows leave a larger unused tail per row; longer ones cost
  attention (a token attends within its own segment, but the [T, T] scores are computed)."""
  return round_up(max(longest_sequence, 1) * sequences_per_row, multiple)


def packed_row_bucket(
    needed: int, compiled: Sequence[int], max_variants: int, largest: int, multiple: int = 1, fill: float = 0.9
) -> int:
  """Rows for a packed batch that needs `needed` rows, given the row counts this run has compiled.

  Reuses the smallest compiled count that holds the batch when the batch fills at least `fill` of it;
  otherwise compiles a new count (needed rounded up to `multiple`) while fewer than max_variants - 1
  are compiled; the last variant is kept for `largest` (rows that hold any step: every response at the
  longest length), which a batch takes only when nothing compiled holds it. So a run compiles at most
  max_variants shapes, and a run whose batches sit in a narrow band compiles a tight count for it."""
  if needed > largest:
    raise ValueError(f"{needed} packed rows exceed the largest bucket of {largest} rows")
  compiled = sorted(set(compiled))
  holding = [r for r in compiled if r >= needed]
  if holding and needed >= fill * holding[0]:
    return holding[0]
  budget = max_variants - len(compiled) - (0 if largest in compiled else 1)
  if budget > 0:
    return min(largest, round_up(max(needed, 1), multiple))
  return holding[0] if holding else largest


def pack_update_batch_packed(
    groups: Sequence[Group],
    row_length: int,
    rows: int,
    responses: int,
    pad_id: int,
    stop_ids: Sequence[int] = (),
    order: Sequence[Sequence[int]] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """The packed update batch (see the module docstring) and a bool [R] marking reused responses.

  order: the responses (flat index over the groups' responses) of each row; default first-fit-decreasing
  (`pack_rows`). Responses are cut at their first stop token, as in `pack_update_batch`."""
  flat = _flatten_groups(groups, stop_ids)
  n = len(flat["responses"])
  if n > responses:
    raise ValueError(f"{n} responses do not fit a packed batch of {responses} response slots")
  for prompt in flat["prompts"]:
    if not len(prompt):
      raise ValueError("a prompt of 0 tokens cannot be packed: its first response token has no predictor")
  if order is None:
    order = pack_rows(groups, row_length, stop_ids)
  if len(order) > rows:
    raise ValueError(f"{n} responses need {len(order)} packed rows of {row_length} tokens; the batch has {rows}")
  shape = (rows, row_length)
  tokens = np.full(shape, pad_id, np.int32)
  segment, positions, resp_of_token = (np.zeros(shape, np.int32) for _ in range(3))
  response_mask = np.zeros(shape, bool)
  old_logp = np.zeros(shape, np.float32)
  for row, members in enumerate(order):
    start = 0
    for k, r in enumerate(members):
      prompt, response = flat["prompts"][r], flat["responses"][r]
      length = len(prompt) + len(response)
      if start + length > row_length:
        raise ValueError(f"row {row}: its sequences need more than {row_length} tokens")
      cols = slice(start, start + length)
      tokens[row, cols] = np.concatenate([prompt, response])
      segment[row, cols] = k + 1
      positions[row, cols] = np.arange(length)
      resp_of_token[row, cols] = r
      response_mask[row, start + len(prompt) : start + length] = True
      old_logp[row, start + len(prompt) : start + length] = flat["logps"][r]
      start += length

  def column(values, dtype, fill):
    out = np.full((responses,), fill, dtype)
    out[:n] = values
    return out

  batch = {
      "tokens_BxT": tokens,
      "mask_BxT": segment > 0,
      "segment_BxT": segment,
      "positions_BxT": positions,
      "response_BxT": response_mask,
      "resp_of_token_BxT": resp_of_token,
      "old_logp_BxT": old_logp,
      "ref_logp_BxT": np.zeros_like(old_logp),
      "sampler_logp_BxT": old_logp.copy(),
      "rewards_R": column(flat["rewards"], np.float32, 0.0),
      # Padding responses get their own group ids beyond the real groups so they touch no real statistic.
      "group_ids_R": np.concatenate(
          [np.asarray(flat["group_ids"], np.int32), np.arange(len(groups), len(groups) + responses - n, dtype=np.int32)]
      ),
      "response_valid_R": column(True, bool, False) if n else np.zeros((responses,), bool),
      "train_R": column(flat["train"], bool, False),
      "fresh_R": column([not r for r in flat["reused"]], bool, False),
      "posterior_mean_R": column(flat["posterior_mean"], np.float32, 0.5),
      "use_posterior_R": column(flat["use_posterior"], bool, False),
  }
  return batch, column(flat["reused"], bool, False)


def pack_rows(groups: Sequence[Group], row_length: int, stop_ids: Sequence[int] = ()) -> list[list[int]]:
  """First-fit-decreasing rows (flat response indices) for the groups' prompt + response sequences."""
  flat = _flatten_groups(groups, stop_ids)
  lengths = [len(p) + len(r) for p, r in zip(flat["prompts"], flat["responses"])]
  return first_fit_decreasing(lengths, row_length)


def is_packed(batch: dict) -> bool:
  return "segment_BxT" in batch


def per_token(batch: dict, flags: np.ndarray) -> np.ndarray:
  """A per-response (packed: [R]) or per-row (unpacked: [B]) flag as a mask that broadcasts against
  the batch's log-prob arrays ([B, T] packed, [B, Tr] unpacked)."""
  if is_packed(batch):
    return flags[batch["resp_of_token_BxT"]] & batch["response_BxT"]
  return flags[:, None]


def padding_efficiency(batch: dict) -> float:
  """Real tokens (prompts and responses, every segment) over all token slots of the update batch."""
  mask = batch["mask_BxT"]
  return float(mask.sum() / mask.size)
