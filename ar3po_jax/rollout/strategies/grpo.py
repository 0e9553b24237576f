"""GRPO (Shao et al., 2024): a fixed group of G responses per prompt, sampled in one stage.

From the paper: G responses per prompt, all of them trained. Our choices: G is
`rollout.group_size` (default 8, the papers' comparison setting); `rollout.batch_prompts` prompts per
step.
"""

from __future__ import annotations

import numpy as np

from ar3po_jax.rollout.strategies.base import StepState, Strategy, counts_for, register, require, whole_group


@register
class Grpo(Strategy):
  name = "grpo"
  slot_local = True

  def __init__(self, rollout_config):
    self.batch_prompts = int(rollout_config.batch_prompts)
    self.group_size = int(rollout_config.group_size)
    require(self.batch_prompts >= 1, f"grpo: batch_prompts={self.batch_prompts} must be >= 1")
    require(self.group_size >= 1, f"grpo: group_size={self.group_size} must be >= 1")

  @classmethod
  def max_responses_per_prompt(cls, rollout_config) -> int:
    return int(rollout_config.group_size)

  @classmethod
  def closed_forms(cls, rollout_config, p: float) -> dict[str, float]:
    g, q = rollout_config.group_size, 1.0 - p
    return {"responses_per_prompt": g, "frac_zero_adv_groups_before_reuse": p**g + q**g}

  def prompts_to_draw(self, state: StepState) -> int:
    return self.batch_prompts if state.stages_run == 0 else 0

  def stage_counts(self, state: StepState, rng: np.random.Generator) -> np.ndarray:
    return counts_for(state, lambda s: self.group_size if state.stages_run == 0 else 0)

  def form_groups(self, state, buffer, rng):
    return [whole_group(s) for s in state.slots], {}
