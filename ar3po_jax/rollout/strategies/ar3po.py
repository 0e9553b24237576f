"""AR3PO (Zhang et al., 2025, arXiv 2509.25808): adaptive rollout with response reuse.

From the paper: S stages of k responses for every still-active prompt; a prompt with one correct
response leaves the pool; prompts still all-wrong after S stages get a correct response from a
replay buffer of earlier steps' correct responses; a reused response is either trained with pi_old
recomputed under the current policy (Option I, `reuse_mode="recompute"`) or only counted in its
group's statistics with no gradient of its own (Option II, `reuse_mode="stop_gradient"`).

Our choices: S = 2, k = 4 (cap 8, GRPO's G); exactly one reused response per all-wrong prompt,
the newest buffered one by default (`reuse_pick="newest"`, or `"random"` through the step's rng);
the reused response is appended after the step's own responses; the buffer keeps it after reuse.
Option I needs nothing here beyond `reused=True`: the trainer recomputes its log-probs.

Matched control (ours, for the paper's open question whether reuse helps): with `reuse_control` = f
> 0, a fixed fraction f of prompts, chosen by a hash of the uid (the same prompts in every run and
seed), never get a reused response. When such a prompt ends all wrong with a response buffered, the
response is picked as usual (so the rng advances exactly as without the control) and withheld; its
group carries the response's step in `withheld_step`, which the step records log. Since the arm is
random with respect to difficulty, the control's later success rate is what the reused prompts
would have done without reuse (`python -m ar3po_jax.analyze`).
"""

from __future__ import annotations

import zlib

import numpy as np

from ar3po_jax.rollout.buffer import PICK_MODES
from ar3po_jax.rollout.strategies.base import StepState, Strategy, counts_for, register, require
from ar3po_jax.types import Group

REUSE_MODES = ("recompute", "stop_gradient")


@register
class Ar3po(Strategy):
  name = "ar3po"
  slot_local = True
  metrics_doc = {
      "ar3po/withheld": "all-wrong prompts of the matched control (rollout.ar3po.reuse_control) whose "
                        "buffered response was withheld",
  }

  @classmethod
  def max_responses_per_prompt(cls, rollout_config) -> int:
    a = rollout_config.ar3po
    return int(a.stages) * int(a.k) + 1  # every stage's responses and one reused

  @classmethod
  def config_problems(cls, config) -> list[str]:
    a = config.rollout.ar3po
    out = []
    if not (a.stages >= 1 and a.k >= 1):
      out.append(f"rollout.ar3po needs stages >= 1 and k >= 1 (k*S >= 1), got stages={a.stages} k={a.k}")
    if a.reuse_mode not in REUSE_MODES:
      out.append(f"rollout.ar3po.reuse_mode must be one of {REUSE_MODES}, got {a.reuse_mode!r}")
    if a.reuse_pick not in PICK_MODES:
      out.append(f"rollout.ar3po.reuse_pick must be one of {PICK_MODES}, got {a.reuse_pick!r}")
    if not 0.0 <= a.get("reuse_control", 0.0) < 1.0:
      out.append(f"rollout.ar3po.reuse_control must be in [0, 1), got {a.reuse_control}")
    return out

  def __init__(self, rollout_config):
    a = rollout_config.ar3po
    self.batch_prompts = int(rollout_config.batch_prompts)
    self.stages = int(a.stages)
    self.k = int(a.k)
    self.reuse = bool(a.reuse)
    self.reuse_mode = str(a.reuse_mode)
    self.reuse_pick = str(a.reuse_pick)
    self.reuse_control = float(a.get("reuse_control", 0.0))
    require(self.batch_prompts >= 1, f"ar3po: batch_prompts={self.batch_prompts} must be >= 1")
    require(self.stages >= 1 and self.k >= 1, f"ar3po: stages={self.stages} and k={self.k} must be >= 1")
    require(self.reuse_mode in REUSE_MODES, f"ar3po: reuse_mode {self.reuse_mode!r} not in {REUSE_MODES}")
    require(self.reuse_pick in PICK_MODES, f"ar3po: reuse_pick {self.reuse_pick!r} not in {PICK_MODES}")
    require(0.0 <= self.reuse_control < 1.0, f"ar3po: reuse_control={self.reuse_control} must be in [0, 1)")

  @classmethod
  def closed_forms(cls, rollout_config, p: float) -> dict[str, float]:
    s, k, q = rollout_config.ar3po.stages, rollout_config.ar3po.k, 1.0 - p
    return {
        "responses_per_prompt": k * sum(q ** (k * i) for i in range(s)),
        "frac_zero_adv_groups_before_reuse": p**k + q ** (s * k),
    }

  def prompts_to_draw(self, state: StepState) -> int:
    return self.batch_prompts if state.stages_run == 0 else 0

  def stage_counts(self, state: StepState, rng: np.random.Generator) -> np.ndarray:
    if state.stages_run >= self.stages:
      return counts_for(state, lambda s: 0)
    return counts_for(state, lambda s: self.k if s.num_correct == 0 else 0)

  def in_control(self, uid: str) -> bool:
    """Whether prompt `uid` belongs to the matched control: a fixed hash of the uid, not the rng."""
    return self.reuse_control > 0 and zlib.crc32(uid.encode()) / 2**32 < self.reuse_control

  def form_groups(self, state, buffer, rng):
    groups, withheld = [], 0
    for slot in state.slots:
      group = Group(slot.prompt, list(slot.responses), [True] * slot.num_sampled)
      if self.reuse and slot.num_correct == 0:
        reused = buffer.pick(slot.prompt.uid, self.reuse_pick, rng)
        if reused is not None and self.in_control(slot.prompt.uid):
          group.withheld_step, withheld = int(reused.step), withheld + 1
        elif reused is not None:
          group.responses.append(reused)
          group.train_mask.append(self.reuse_mode == "recompute")
      groups.append(group)
    return groups, {"ar3po/withheld": float(withheld)}
