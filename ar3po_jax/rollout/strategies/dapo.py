"""DAPO (Yu et al., 2025): dynamic sampling with a cap on generation batches, overlong shaping.

From the paper: G responses per prompt; groups whose accuracy is 0 or 1 are filtered out and further
generation batches are drawn until the train batch is full; responses in the last L_cache tokens
before L_max get a penalty growing linearly from 0 to -1 (to -`overlong_penalty` here); truncated
responses may be masked out of the loss.

Our choices:
- The filter looks at verifier correctness, not at the shaped reward (as the paper's "accuracy"
  filter does): an all-correct group of different lengths is still dropped.
- Extra kept prompts of the last generation batch are cut so exactly `batch_prompts` are trained;
  the first kept in draw order are the ones trained.
- At `max_gen_batches` the step trains on whatever was kept, sets `dapo/cap_hit` and warns; with
  nothing kept it returns no groups (`rollout/empty` is 1) and the trainer skips the update.
- L_max is `rollout.max_new_tokens`; L_cache is `rollout.dapo.overlong_buffer` (0: no shaping). The
  penalty is applied to every sampled response, kept or not, so buffered copies carry it too.
"""

from __future__ import annotations

import warnings

import numpy as np

from ar3po_jax.rollout.strategies.base import (
    StepState,
    Strategy,
    counts_for,
    register,
    require,
)
from ar3po_jax.types import Group


def overlong_penalty(length: int, max_len: int, cache_len: int, penalty: float) -> float:
  """0 up to max_len - cache_len tokens, then linear down to -penalty at max_len (and beyond)."""
  if cache_len <= 0:
    return 0.0
  over = length - (max_len - cache_len)
  if over <= 0:
    return 0.0
  return -penalty * min(over, cache_len) / cache_len


@register
class Dapo(Strategy):
  name = "dapo"
  metrics_doc = {
      "dapo/gen_batches": "generation batches drawn in the step",
      "dapo/cap_hit": "1 when the step stopped at max_gen_batches short of batch_prompts",
      "dapo/kept_prompts": "prompts with mixed correctness, before the cut to batch_prompts",
      "dapo/frac_kept": "dapo/kept_prompts / rollout/prompts_drawn",
      "dapo/masked_truncated": "truncated responses masked out of the loss",
  }

  @classmethod
  def max_responses_per_prompt(cls, rollout_config) -> int:
    return int(rollout_config.group_size)

  @classmethod
  def config_problems(cls, config) -> list[str]:
    r = config.rollout
    d = r.dapo
    out = []
    if r.group_size < 2:
      out.append(f"rollout.group_size must be >= 2 for dapo (a group of one is never mixed), got {r.group_size}")
    if d.gen_batch_prompts < 1:
      out.append(f"rollout.dapo.gen_batch_prompts must be >= 1, got {d.gen_batch_prompts}")
    if d.max_gen_batches < 1:
      out.append(f"rollout.dapo.max_gen_batches must be >= 1, got {d.max_gen_batches}")
    if not 0 <= d.overlong_buffer < r.max_new_tokens:
      out.append(f"rollout.dapo.overlong_buffer must be in [0, max_new_tokens={r.max_new_tokens}), got {d.overlong_buffer}")
    return out

  def __init__(self, rollout_config):
    d = rollout_config.dapo
    self.batch_prompts = int(rollout_config.batch_prompts)
    self.group_size = int(rollout_config.group_size)
    self.gen_batch_prompts = int(d.gen_batch_prompts)
    self.max_gen_batches = int(d.max_gen_batches)
    self.max_len = int(rollout_config.max_new_tokens)
    self.cache_len = int(d.overlong_buffer)
    self.penalty = float(d.overlong_penalty)
    self.mask_truncated = bool(d.mask_truncated)
    require(self.batch_prompts >= 1, f"dapo: batch_prompts={self.batch_prompts} must be >= 1")
    require(self.group_size >= 2, f"dapo: group_size={self.group_size} must be >= 2 to ever keep a group")
    require(self.gen_batch_prompts >= 1, f"dapo: gen_batch_prompts={self.gen_batch_prompts} must be >= 1")
    require(self.max_gen_batches >= 1, f"dapo: max_gen_batches={self.max_gen_batches} must be >= 1")
    require(0 <= self.cache_len <= self.max_len, f"dapo: overlong_buffer={self.cache_len} not in [0, max_new_tokens]")

  @classmethod
  def closed_forms(cls, rollout_config, p: float) -> dict[str, float]:
    g, q = rollout_config.group_size, 1.0 - p
    # No zero-advantage formula: the overlong penalty can level a kept group's shaped rewards.
    return {"responses_per_prompt": g, "dapo_kept_prompts_per_drawn": 1.0 - p**g - q**g}

  def prompts_to_draw(self, state: StepState) -> int:
    if state.stages_run >= self.max_gen_batches:
      return 0
    if sum(s.mixed for s in state.slots) >= self.batch_prompts:
      return 0
    return self.gen_batch_prompts

  def stage_counts(self, state: StepState, rng: np.random.Generator) -> np.ndarray:
    return counts_for(state, lambda s: self.group_size if s.num_sampled == 0 else 0)

  def form_groups(self, state, buffer, rng):
    for slot in state.slots:
      for r in slot.responses:
        r.penalty = overlong_penalty(r.num_tokens, self.max_len, self.cache_len, self.penalty)
    kept = [s for s in state.slots if s.mixed]
    cap_hit = len(kept) < self.batch_prompts
    if cap_hit:
      warnings.warn(
          f"dapo: step {state.step} kept {len(kept)} of {self.batch_prompts} prompts after "
          f"{state.stages_run} generation batches (max_gen_batches); training on what was kept"
          + ("" if kept else ": nothing, the update is skipped"),
          RuntimeWarning,
          stacklevel=2,
      )
    groups = []
    masked = 0
    for slot in kept[: self.batch_prompts]:
      mask = [not (self.mask_truncated and r.truncated) for r in slot.responses]
      masked += mask.count(False)
      groups.append(Group(slot.prompt, list(slot.responses), mask))
    drawn = len(state.slots)
    metrics = {
        "dapo/gen_batches": float(state.stages_run),
        "dapo/cap_hit": float(cap_hit),
        "dapo/kept_prompts": float(len(kept)),
        "dapo/frac_kept": len(kept) / drawn if drawn else float("nan"),
        "dapo/masked_truncated": float(masked),
    }
    return groups, metrics
