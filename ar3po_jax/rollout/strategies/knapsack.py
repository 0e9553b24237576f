"""Knapsack RL (Li, Chen, Yang et al., 2025, arXiv 2509.25849): responses per prompt by a budgeted allocation.

From the paper: a uniform number of responses per prompt wastes budget on prompts that always
succeed and starves those that always fail (both give GRPO zero gradient). Each prompt's exploration
is an item with a value and a cost; the value of N responses is the probability that the group has a
non-zero gradient, 1 - p^N - (1 - p)^N, times an information gain of the prompt at success rate p;
p is estimated from the prompt's earlier rollouts; the total budget equals the homogeneous one and
each prompt's N stays within bounds; a knapsack solver picks the N's. Reported: 20-40% more non-zero
gradients, budgets up to 93 responses for hard prompts, +2-4 points on math benchmarks.

Our choices (knobs in `rollout.knapsack`):
- Budget: exactly GRPO's, batch_prompts x group_size responses per step, every step; N in
  [`min_responses`, `max_responses`].
- Information gain p (1 - p)^2 (`info_gain="p_q2"`, our reading of the paper), or 1 (`"one"`: value
  is only the non-zero-gradient probability).
- Estimate: p = (c + a0) / (n + a0 + b0) from the prompt's latest rollout (c correct of n) with
  a0 = b0 = `prior` (0.5: never exactly 0 or 1, so an all-wrong prompt still has value); a prompt
  never seen has p = a0 / (a0 + b0) = 0.5.
- Solver: with unit cost per response, every value is concave in N (the marginal value
  g(p) (p^N (1 - p) + (1 - p)^N p) falls with N), so handing out responses one at a time to the
  largest marginal value is an exact knapsack solution; ties go to the earlier drawn prompt.
- One sampling stage; every response is trained (a group of GRPO).
"""

from __future__ import annotations

import heapq
from typing import ClassVar, Sequence

import numpy as np

from ar3po_jax.rollout.strategies.base import StepState, Strategy, register, require, whole_group

INFO_GAINS = ("p_q2", "one")


def group_value(n: int, p: float, info_gain: str = "p_q2") -> float:
  """Value of n responses at success rate p: P(non-zero gradient) times the information gain."""
  q = 1.0 - p
  gain = p * q * q if info_gain == "p_q2" else 1.0
  return gain * (1.0 - p**n - q**n)


def allocate(rates_P: Sequence[float], budget: int, lo: int, hi: int, info_gain: str = "p_q2") -> np.ndarray:
  """Responses per prompt maximising sum of group_value, summing to budget, each in [lo, hi].

  Greedy on marginal values, exact because every value is concave in n; ties to the lower index.
  """
  rates_P = [float(p) for p in rates_P]
  counts_P = np.full(len(rates_P), lo, np.int64)
  if budget < lo * len(rates_P) or budget > hi * len(rates_P):
    raise ValueError(f"knapsack: budget {budget} not in [{lo} x {len(rates_P)}, {hi} x {len(rates_P)}]")

  def gain(i: int, n: int) -> float:
    return group_value(n + 1, rates_P[i], info_gain) - group_value(n, rates_P[i], info_gain)

  heap = [(-gain(i, lo), i) for i in range(len(rates_P)) if lo < hi]
  heapq.heapify(heap)
  for _ in range(budget - lo * len(rates_P)):
    _, i = heapq.heappop(heap)
    counts_P[i] += 1
    if counts_P[i] < hi:
      heapq.heappush(heap, (-gain(i, int(counts_P[i])), i))
  return counts_P


@register
class Knapsack(Strategy):
  name = "knapsack"
  metrics_doc: ClassVar[dict[str, str]] = {
      "knapsack/min_responses": "fewest responses given to one prompt this step",
      "knapsack/max_responses": "most responses given to one prompt this step",
      "knapsack/unseen_prompts": "drawn prompts with no earlier rollout (prior estimate)",
      "knapsack/mean_estimate": "mean estimated pass rate of the drawn prompts, before this step",
      "knapsack/expected_value": "sum of group values of the chosen allocation, at the estimates",
      "knapsack/tracked_prompts": "prompt uids with an estimate",
  }

  config_defaults: ClassVar[dict[str, object]] = {
      # Allocation at GRPO's budget (batch_prompts x group_size responses per step), N per prompt in
      # [min_responses, max_responses].
      "min_responses": 2,
      "max_responses": 24,
      "info_gain": "p_q2",  # "p_q2": p (1 - p)^2 | "one"
      "prior": 0.5,  # pseudo-counts of the pass-rate estimate
  }

  def __init__(self, rollout_config):
    problems = self.config_problems_of(rollout_config)
    require(not problems, "; ".join(problems))
    k = rollout_config.knapsack
    self.batch_prompts = int(rollout_config.batch_prompts)
    self.budget = self.batch_prompts * int(rollout_config.group_size)
    self.lo, self.hi = int(k.min_responses), int(k.max_responses)
    self.info_gain = str(k.info_gain)
    self.prior = float(k.prior)
    self._last: dict[str, tuple[int, int]] = {}  # uid -> (correct, sampled) of its latest rollout

  @classmethod
  def max_responses_per_prompt(cls, rollout_config) -> int:
    return int(rollout_config.knapsack.max_responses)

  @classmethod
  def config_problems(cls, config) -> list[str]:
    return cls.config_problems_of(config.rollout)

  @classmethod
  def closed_forms(cls, rollout_config, p: float) -> dict[str, float]:
    del p
    return {"responses_per_prompt": float(rollout_config.group_size)}  # the budget, exactly

  @staticmethod
  def config_problems_of(r) -> list[str]:
    k, out = r.knapsack, []
    if r.batch_prompts < 1 or r.group_size < 1:
      out.append(f"rollout.batch_prompts={r.batch_prompts} and group_size={r.group_size} must be >= 1")
    if not 1 <= k.min_responses <= r.group_size <= k.max_responses:
      out.append(
          f"rollout.knapsack needs 1 <= min_responses <= group_size <= max_responses (GRPO's budget must fit), "
          f"got min_responses={k.min_responses} group_size={r.group_size} max_responses={k.max_responses}"
      )
    if k.info_gain not in INFO_GAINS:
      out.append(f"rollout.knapsack.info_gain={k.info_gain!r} must be one of {INFO_GAINS}")
    if not k.prior > 0:
      out.append(f"rollout.knapsack.prior={k.prior} must be > 0")
    return out

  def estimate(self, uid: str) -> float:
    c, n = self._last.get(uid, (0, 0))
    return (c + self.prior) / (n + 2 * self.prior)

  def prompts_to_draw(self, state: StepState) -> int:
    return self.batch_prompts if state.stages_run == 0 else 0

  def stage_counts(self, state: StepState, rng: np.random.Generator) -> np.ndarray:
    if state.stages_run > 0:
      return np.zeros(len(state.slots), np.int64)
    rates = [self.estimate(s.prompt.uid) for s in state.slots]
    return allocate(rates, self.budget, self.lo, self.hi, self.info_gain)

  def form_groups(self, state, buffer, rng):
    rates = [self.estimate(s.prompt.uid) for s in state.slots]
    unseen = sum(s.prompt.uid not in self._last for s in state.slots)
    alloc = [s.num_sampled for s in state.slots]
    for slot in state.slots:
      self._last[slot.prompt.uid] = (slot.num_correct, slot.num_sampled)
    metrics = {
        "knapsack/min_responses": float(min(alloc)) if alloc else float("nan"),
        "knapsack/max_responses": float(max(alloc)) if alloc else float("nan"),
        "knapsack/unseen_prompts": float(unseen),
        "knapsack/mean_estimate": float(np.mean(rates)) if rates else float("nan"),
        "knapsack/expected_value": float(sum(group_value(n, p, self.info_gain) for n, p in zip(alloc, rates))),
        "knapsack/tracked_prompts": float(len(self._last)),
    }
    return [whole_group(s) for s in state.slots], metrics

  def state_dict(self):
    uids = sorted(self._last)
    return {
        "uids": uids,
        "correct": np.asarray([self._last[u][0] for u in uids], np.int64),
        "sampled": np.asarray([self._last[u][1] for u in uids], np.int64),
    }

  def load_state_dict(self, state):
    self._last = {u: (int(c), int(n)) for u, c, n in zip(state["uids"], state["correct"], state["sampled"])}
