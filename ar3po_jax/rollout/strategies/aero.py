"""AERO (Zhang, Han, Mavromatis et al., 2026, arXiv 2602.14338): rescue, selective rejection, posterior.

From the paper (as published in summaries): adaptive rollout, selective rejection that prunes
rollouts from the update, and a Bayesian posterior that keeps degenerate groups from having zero
advantage. Everything below is our reconstruction (docs/ALGORITHMS.md), each number a knob:

- Stage I: `n_explore` responses per prompt; u = c / n_explore.
- Stage II rescue, for prompts with u <= `u_res`: `n_extra` more responses per stage until a rescue
  stage yields a success or the prompt holds `budget` responses (the last batch is cut to fit).
  With u_res > 0 a prompt may enter rescue already holding a success; it then still needs one from
  rescue to stop (our reading of "until first success").
- Selective rejection, for u_res < u < 0.5 (u from Stage I; rescued prompts are never pruned): keep
  every correct response and m = round_half_up(`reject_ratio` * c) wrong ones, at least 1 and at
  most all of them, drawn uniformly without replacement with the step's rng; the others are rejected
  (never trained) but still count in the posterior. At least one wrong is kept so the group keeps a
  non-zero advantage. Prompts with u >= 0.5 keep their whole group.
- Posterior: per prompt uid, Beta(alpha0 + successes, beta0 + failures) over every response it was
  ever sampled, this step's included (rejected ones too). A final group whose rewards are all equal
  gets posterior_mean = that posterior's mean *after* this step's update (the trainer uses
  A_i = (r_i - u~) / sqrt(u~ (1 - u~))); other groups get None.
"""

from __future__ import annotations

import math

import numpy as np

from ar3po_jax.rollout.strategies.base import (
    StepState,
    Strategy,
    counts_for,
    is_correct,
    register,
    require,
    rewards_all_equal,
)
from ar3po_jax.types import Group


@register
class Aero(Strategy):
  name = "aero"
  slot_local = True
  metrics_doc = {
      "aero/rejected": "responses pruned by selective rejection",
      "aero/rescued": "prompts that entered rescue",
      "aero/rescue_successes": "rescued prompts whose rescue found a success",
      "aero/posterior_prompts": "prompt uids with a posterior",
  }

  @classmethod
  def max_responses_per_prompt(cls, rollout_config) -> int:
    return int(rollout_config.aero.budget)

  @classmethod
  def config_problems(cls, config) -> list[str]:
    a = config.rollout.aero
    out = []
    if not 1 <= a.n_explore <= a.budget:
      out.append(f"rollout.aero needs 1 <= n_explore <= budget, got n_explore={a.n_explore} budget={a.budget}")
    if a.n_extra < 1:
      out.append(f"rollout.aero.n_extra must be >= 1, got {a.n_extra}")
    if not (a.alpha0 > 0 and a.beta0 > 0):
      out.append(f"rollout.aero.alpha0 and beta0 must be > 0, got {a.alpha0}, {a.beta0}")
    if a.reject_ratio < 0:
      out.append(f"rollout.aero.reject_ratio must be >= 0, got {a.reject_ratio}")
    return out

  def __init__(self, rollout_config):
    a = rollout_config.aero
    self.batch_prompts = int(rollout_config.batch_prompts)
    self.n_explore = int(a.n_explore)
    self.budget = int(a.budget)
    self.u_res = float(a.u_res)
    self.n_extra = int(a.n_extra)
    self.reject_ratio = float(a.reject_ratio)
    self.alpha0 = float(a.alpha0)
    self.beta0 = float(a.beta0)
    require(self.batch_prompts >= 1, f"aero: batch_prompts={self.batch_prompts} must be >= 1")
    require(self.n_explore >= 1, f"aero: n_explore={self.n_explore} must be >= 1")
    require(self.n_extra >= 1, f"aero: n_extra={self.n_extra} must be >= 1")
    require(self.reject_ratio >= 0, f"aero: reject_ratio={self.reject_ratio} must be >= 0")
    require(self.alpha0 > 0 and self.beta0 > 0, f"aero: alpha0={self.alpha0}, beta0={self.beta0} must be > 0")
    self._successes: dict[str, int] = {}
    self._failures: dict[str, int] = {}

  @classmethod
  def closed_forms(cls, rollout_config, p: float) -> dict[str, float]:
    a = rollout_config.aero
    n, q = a.n_explore, 1.0 - p
    if not 0 <= a.u_res < 1 / n:
      return {}  # rescue would then start from c > 0 prompts too; no short formula
    expected, spent, reach = float(n), n, q**n
    while spent < a.budget:
      batch = min(a.n_extra, a.budget - spent)
      expected += reach * batch
      reach *= q**batch
      spent += batch
    rejected = 0.0
    for c in range(1, n):
      if a.u_res < c / n < 0.5:
        keep = min(n - c, max(1, math.floor(a.reject_ratio * c + 0.5)))
        rejected += math.comb(n, c) * p**c * q ** (n - c) * (n - c - keep)
    return {
        "responses_per_prompt": expected,
        "aero_rejected_per_prompt": rejected,
        "frac_zero_adv_groups_before_reuse": 0.0,
    }

  def prompts_to_draw(self, state: StepState) -> int:
    return self.batch_prompts if state.stages_run == 0 else 0

  def stage_counts(self, state: StepState, rng: np.random.Generator) -> np.ndarray:
    if state.stages_run == 0:
      return counts_for(state, lambda s: self.n_explore)
    return counts_for(state, self._rescue_count)

  def _explore_rate(self, slot) -> float:
    return sum(is_correct(r) for r in slot.responses[: self.n_explore]) / self.n_explore

  def _in_rescue(self, slot) -> bool:
    return self._explore_rate(slot) <= self.u_res and self.budget > self.n_explore

  def _rescue_count(self, slot) -> int:
    if not self._in_rescue(slot) or any(is_correct(r) for r in slot.responses[self.n_explore :]):
      return 0
    return max(0, min(self.n_extra, self.budget - slot.num_sampled))

  def posterior_mean(self, uid: str) -> float:
    a = self.alpha0 + self._successes.get(uid, 0)
    b = self.beta0 + self._failures.get(uid, 0)
    return a / (a + b)

  def form_groups(self, state, buffer, rng):
    for slot in state.slots:
      c = slot.num_correct
      uid = slot.prompt.uid
      self._successes[uid] = self._successes.get(uid, 0) + c
      self._failures[uid] = self._failures.get(uid, 0) + slot.num_sampled - c
    groups, rejected, rescued, rescue_successes = [], 0, 0, 0
    for slot in state.slots:
      responses = list(slot.responses)
      if self._in_rescue(slot):
        rescued += 1
        rescue_successes += any(is_correct(r) for r in responses[self.n_explore :])
      elif self.u_res < self._explore_rate(slot) < 0.5:
        responses = self._reject(responses, rng)
        rejected += slot.num_sampled - len(responses)
      group = Group(slot.prompt, responses, [True] * len(responses))
      if rewards_all_equal(group):
        group.posterior_mean = self.posterior_mean(slot.prompt.uid)
      groups.append(group)
    metrics = {
        "aero/rejected": float(rejected),
        "aero/rescued": float(rescued),
        "aero/rescue_successes": float(rescue_successes),
        "aero/posterior_prompts": float(len(self._successes)),
    }
    return groups, metrics

  def _reject(self, responses, rng):
    wrong = [i for i, r in enumerate(responses) if not is_correct(r)]
    c = len(responses) - len(wrong)
    if not wrong:
      return responses
    m = min(len(wrong), max(1, math.floor(self.reject_ratio * c + 0.5)))
    keep_wrong = set(rng.choice(wrong, size=m, replace=False).tolist())
    return [r for i, r in enumerate(responses) if is_correct(r) or i in keep_wrong]

  def state_dict(self):
    uids = sorted(self._successes)
    return {
        "uids": uids,
        "successes": np.asarray([self._successes[u] for u in uids], np.int64),
        "failures": np.asarray([self._failures[u] for u in uids], np.int64),
    }

  def load_state_dict(self, state):
    self._successes = {u: int(s) for u, s in zip(state["uids"], state["successes"])}
    self._failures = {u: int(f) for u, f in zip(state["uids"], state["failures"])}
