"""PODS (Xu, Savani, Fang and Kolter, 2025, arXiv 2504.13818): sample many, train on a max-variance few.

From the paper: rollout generation is parallel and memory-light while the update is memory- and
communication-heavy, so PODS samples n rollouts per prompt and updates on a subset of m < n only.
Its max-variance down-sampling keeps the m rollouts whose rewards have the largest variance; the
optimal subset is always the i highest plus the m - i lowest rewards for some i, so sorting once and
trying every i solves it in O(n log n). Reported with GRPO: GRPO's peak test accuracy at least 1.7x
faster in wall-clock.

Our choices (knobs in `rollout.pods`):
- n = `n_sample`, m = `n_train`; one sampling stage; advantages are computed over the m kept rows
  only (the dropped ones are not in the group at all, as AERO's rejected ones).
- Rewards are the training rewards (verifier score plus any shaping penalty). Ties in variance go to
  the larger i (more high-reward rows); which of several equal rewards are kept is fixed by a stable
  sort, with no randomness (they are exchangeable). The group keeps sampling order.
- With n <= m every response is kept.
"""

from __future__ import annotations

import math
from typing import ClassVar, Sequence

import numpy as np

from ar3po_jax.rollout.strategies.base import StepState, Strategy, counts_for, register, require
from ar3po_jax.types import Group


def max_variance_subset(rewards_N: Sequence[float], m: int) -> list[int]:
  """Indices (ascending) of the m rewards with the largest population variance: top i plus bottom m - i."""
  rewards_N = np.asarray(rewards_N, np.float64)
  n = rewards_N.shape[0]
  if m >= n:
    return list(range(n))
  order_N = np.argsort(rewards_N, kind="stable")
  best, best_var = None, -1.0
  for i in range(m, -1, -1):  # larger i first: ties keep more high-reward rows
    chosen = np.concatenate([order_N[: m - i], order_N[n - i :]]) if i else order_N[:m]
    var = float(np.var(rewards_N[chosen]))
    if var > best_var + 1e-12:
      best, best_var = chosen, var
  return sorted(best.tolist())


def kept_correct(c: int, n: int, m: int) -> int:
  """Correct responses max-variance down-sampling keeps from c correct of n binary rewards, m kept."""
  if m >= n:
    return c
  lo, hi = max(0, m - (n - c)), min(c, m)
  # k (m - k) is largest at k nearest m / 2; the larger k on a tie, as max_variance_subset does.
  return min(max((m + 1) // 2, lo), hi)


def kept_correct_frac(p: float, n: int, m: int) -> float:
  """Expected fraction of correct rows among the min(n, m) PODS keeps, at constant pass rate p."""
  q, kept = 1.0 - p, min(n, m)
  return sum(math.comb(n, c) * p**c * q ** (n - c) * kept_correct(c, n, m) for c in range(n + 1)) / kept


@register
class Pods(Strategy):
  name = "pods"
  slot_local = True
  metrics_doc: ClassVar[dict[str, str]] = {
      "pods/dropped": "sampled responses left out of the update by down-sampling",
      "pods/kept_reward_std": "mean over groups of the kept rows' reward standard deviation",
  }

  config_defaults: ClassVar[dict[str, object]] = {
      "n_sample": 16,  # responses sampled per prompt
      "n_train": 8,  # of which the n_train with the largest reward variance are trained
  }

  def __init__(self, rollout_config):
    problems = self.config_problems_of(rollout_config)
    require(not problems, "; ".join(problems))
    self.batch_prompts = int(rollout_config.batch_prompts)
    self.n_sample = int(rollout_config.pods.n_sample)
    self.n_train = int(rollout_config.pods.n_train)

  @classmethod
  def max_responses_per_prompt(cls, rollout_config) -> int:
    return int(min(rollout_config.pods.n_sample, rollout_config.pods.n_train))

  @classmethod
  def config_problems(cls, config) -> list[str]:
    return cls.config_problems_of(config.rollout)

  @classmethod
  def closed_forms(cls, rollout_config, p: float) -> dict[str, float]:
    n, m, q = int(rollout_config.pods.n_sample), int(rollout_config.pods.n_train), 1.0 - p
    return {
        "responses_per_prompt": float(n),
        "frac_zero_adv_groups_before_reuse": p**n + q**n,
        "pods_train_responses_per_prompt": float(min(n, m)),
        "pods_kept_correct_frac": kept_correct_frac(p, n, m),
    }

  @staticmethod
  def config_problems_of(r) -> list[str]:
    out = []
    if r.batch_prompts < 1:
      out.append(f"rollout.batch_prompts={r.batch_prompts} must be >= 1")
    if r.pods.n_sample < 1:
      out.append(f"rollout.pods.n_sample={r.pods.n_sample} must be >= 1")
    if r.pods.n_train < 2:
      out.append(f"rollout.pods.n_train={r.pods.n_train} must be >= 2 (one row has no variance)")
    return out

  def prompts_to_draw(self, state: StepState) -> int:
    return self.batch_prompts if state.stages_run == 0 else 0

  def stage_counts(self, state: StepState, rng: np.random.Generator) -> np.ndarray:
    return counts_for(state, lambda s: self.n_sample if state.stages_run == 0 else 0)

  def form_groups(self, state, buffer, rng):
    groups, dropped, stds = [], 0, []
    for slot in state.slots:
      keep = max_variance_subset([r.reward + r.penalty for r in slot.responses], self.n_train)
      responses = [slot.responses[i] for i in keep]
      dropped += slot.num_sampled - len(responses)
      stds.append(float(np.std([r.reward + r.penalty for r in responses])))
      groups.append(Group(slot.prompt, responses, [True] * len(responses)))
    metrics = {
        "pods/dropped": float(dropped),
        "pods/kept_reward_std": float(np.mean(stds)) if stds else float("nan"),
    }
    return groups, metrics
