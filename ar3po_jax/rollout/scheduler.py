"""The host-side stage scheduler: one loop drives every rollout strategy.

Two ways to run a step's stages, with the same decisions:

  - barrier: per stage, the strategy names how many prompts to draw and how many responses each
    drawn prompt gets; the scheduler makes ONE sampler call for all of them and ONE verifier call on
    all their texts; the next stage starts when the whole stage is verified.
  - streamed (a `types.StreamingSampler` such as the engine, and a strategy that is `slot_local`):
    the prompts are drawn once, every prompt's first stage is queued, and each time the sampler
    returns finished responses, the prompts whose outstanding responses are all back are verified
    together and asked (one-slot `stage_counts`) for their next stage, which is queued at once. No
    prompt waits for another prompt's long responses. Per prompt the stages, the exit rule and the
    groups are the barrier's; what differs is only the order of the rng draws of strategies that use
    the rng in `stage_counts` (none of the slot-local ones do) and the batching of verifier calls.

When no prompt wants more, the strategy forms the groups; then every correct response sampled in the
step enters the replay buffer (after reuse, so a step never reuses its own responses).

All host-side randomness (AERO's rejection draws, random reuse picks) comes from the rng passed to
`rollout`, so every host of a multi-host run makes the same choices given the same rewards.

Metrics of `RolloutResult.metrics`: the names are documented in `ar3po_jax.metrics.DOCS` (rollout/*,
buffer/*, verify/*, time/*) and, for the running strategy's own, in its `metrics_doc`.
"""

from __future__ import annotations

import collections
import time
from typing import Callable, Sequence

import numpy as np

from ar3po_jax.rollout import records
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.strategies import StepState, Strategy, is_correct
from ar3po_jax.rollout.strategies.base import rewards_all_equal
from ar3po_jax.types import Group, Prompt, RolloutResult, Sampler, Verifier

PromptSource = Callable[[int], Sequence[Prompt]]

# Cumulative verifier counters reported per step as differences (ratios like verify/accuracy are not).
_VERIFY_COUNTS = ("verify/total", "verify/fast_path", "verify/pool", "verify/no_answer", "verify/too_long",
                  "verify/timeouts", "verify/errors", "verify/worker_restarts", "verify/undecided")


def has_zero_advantage(group: Group) -> bool:
  if group.posterior_mean is not None:
    return False
  return rewards_all_equal(group)


def without_reused(group: Group) -> Group:
  keep = [i for i, r in enumerate(group.responses) if not r.reused]
  return Group(
      group.prompt, [group.responses[i] for i in keep], [group.train_mask[i] for i in keep], group.posterior_mean
  )


def _all_wrong(group: Group) -> bool:
  return not any(is_correct(r) for r in group.responses)


def _ratio(num: float, den: float) -> float:
  return num / den if den else float("nan")


class Scheduler:
  """Runs one step's rollout: stages of (draw, sample, verify), then groups, then the buffer update."""

  def __init__(
      self,
      strategy: Strategy,
      sampler: Sampler,
      verifier: Verifier,
      buffer: ReplayBuffer,
      prompt_source: PromptSource,
  ):
    self.strategy = strategy
    self.sampler = sampler
    self.verifier = verifier
    self.buffer = buffer
    self.prompt_source = prompt_source

  def state_dict(self) -> dict:
    """The cross-step state of the rollout: prompt stream position, replay buffer, strategy."""
    return {
        "prompts": self.prompt_source.state_dict(),
        "buffer": self.buffer.state_dict(),
        "strategy": self.strategy.state_dict(),
    }

  def load_state_dict(self, state: dict) -> None:
    self.prompt_source.load_state_dict(state["prompts"])
    self.buffer.load_state_dict(state["buffer"])
    self.strategy.load_state_dict(state["strategy"])

  @property
  def streams(self) -> bool:
    """Whether `rollout` streams stages (see the module docstring)."""
    return self.strategy.slot_local and all(hasattr(self.sampler, a) for a in ("submit", "poll", "busy"))

  def rollout(self, step: int, rng: np.random.Generator) -> RolloutResult:
    state = StepState(step=int(step))
    timing = {"time/sample_s": 0.0, "time/verify_s": 0.0}
    verify_before = self._verify_counts()
    if self.streams:
      self._run_streamed(state, rng, timing)
    else:
      self._run_barrier(state, rng, timing)

    groups, strategy_metrics = self.strategy.form_groups(state, self.buffer, rng)
    reused = [r for g in groups for r in g.responses if r.reused]
    for slot in state.slots:
      for r in slot.responses:
        if is_correct(r):
          self.buffer.add(slot.prompt.uid, r, state.step)

    metrics = self._metrics(state, groups, reused)
    metrics.update(timing)
    verify_after = self._verify_counts()
    metrics.update({k: verify_after[k] - verify_before.get(k, 0.0) for k in verify_after})
    if set(strategy_metrics) != set(self.strategy.metrics_doc):
      raise ValueError(
          f"{self.strategy.name}: form_groups reported metrics {sorted(strategy_metrics)}, "
          f"but its metrics_doc declares {sorted(self.strategy.metrics_doc)}"
      )
    metrics.update(strategy_metrics)
    return RolloutResult(groups=groups, metrics=metrics, records=records.step_records(state, groups, state.step))

  def _run_barrier(self, state: StepState, rng: np.random.Generator, timing: dict[str, float]) -> None:
    while True:
      n_new = int(self.strategy.prompts_to_draw(state))
      if n_new > 0:
        self._draw(state, n_new)
      counts = np.asarray(self.strategy.stage_counts(state, rng), np.int64)
      if counts.shape != (len(state.slots),) or (counts < 0).any():
        raise ValueError(
            f"{self.strategy.name}: stage_counts must be {len(state.slots)} non-negative ints, got {counts}"
        )
      if not counts.any():
        break
      self._run_stage(state, counts, timing)
      state.stages_run += 1

  def _draw(self, state: StepState, n_new: int) -> None:
    prompts = list(self.prompt_source(n_new))
    if len(prompts) != n_new:
      raise ValueError(f"prompt_source({n_new}) returned {len(prompts)} prompts")
    state.add_prompts(prompts)

  def _run_streamed(self, state: StepState, rng: np.random.Generator, timing: dict[str, float]) -> None:
    n_new = int(self.strategy.prompts_to_draw(state))
    if n_new > 0:
      self._draw(state, n_new)
    if self.sampler.busy:
      raise RuntimeError("Scheduler: the streaming sampler still has requests from before this step")
    stage_of = [0] * len(state.slots)  # stages each prompt has completed
    waiting: dict[int, list] = {}  # slot index -> [wanted, responses back so far as (j, Response)]

    def queue_next(i: int) -> None:
      view = StepState(step=state.step, slots=[state.slots[i]], stages_run=stage_of[i])
      counts = np.asarray(self.strategy.stage_counts(view, rng), np.int64)
      if counts.shape != (1,) or counts[0] < 0:
        raise ValueError(f"{self.strategy.name}: stage_counts of one slot must be one non-negative int, got {counts}")
      if counts[0]:
        waiting[i] = [int(counts[0]), []]
        self.sampler.submit(i, state.slots[i].prompt, int(counts[0]), (state.step, i, stage_of[i]))

    for i in range(len(state.slots)):
      queue_next(i)
    while waiting:
      start = time.perf_counter()
      finished = self.sampler.poll()
      timing["time/sample_s"] += time.perf_counter() - start
      if not finished and not self.sampler.busy:
        raise RuntimeError(f"Scheduler: the sampler is idle but {len(waiting)} prompts wait for responses")
      for i, j, response in finished:
        waiting[i][1].append((j, response))
      complete = sorted(i for i, (wanted, back) in waiting.items() if len(back) == wanted)
      if not complete:
        continue
      batches = [[r for _, r in sorted(waiting.pop(i)[1], key=lambda jr: jr[0])] for i in complete]
      self._verify([state.slots[i] for i in complete], batches, [stage_of[i] for i in complete], state.step, timing)
      for i in complete:
        stage_of[i] += 1
        queue_next(i)
    state.stages_run = max(stage_of, default=0)

  def _verify_counts(self) -> dict[str, float]:
    counts = getattr(self.verifier, "metrics", dict)()
    return {k: float(counts[k]) for k in _VERIFY_COUNTS if k in counts}

  def _run_stage(self, state: StepState, counts: np.ndarray, timing: dict[str, float]) -> None:
    active = np.flatnonzero(counts)
    slots = [state.slots[i] for i in active]
    wanted = counts[active].tolist()
    start = time.perf_counter()
    batches = self.sampler([s.prompt for s in slots], wanted, state.step)
    timing["time/sample_s"] += time.perf_counter() - start
    if len(batches) != len(slots) or any(len(b) != n for b, n in zip(batches, wanted)):
      raise ValueError(f"sampler returned {[len(b) for b in batches]} responses, asked for {wanted}")
    self._verify(slots, batches, [state.stages_run] * len(slots), state.step, timing)

  def _verify(self, slots, batches, stages: list[int], step: int, timing: dict[str, float]) -> None:
    """Scores batches[i] (the new responses of slots[i], sampled in its stage stages[i]) in one verifier
    call and appends them."""
    texts = [r.text for b in batches for r in b]
    answers = [s.prompt.answer for s, b in zip(slots, batches) for _ in b]
    start = time.perf_counter()
    rewards = np.asarray(self.verifier(texts, answers), np.float32)
    timing["time/verify_s"] += time.perf_counter() - start
    if rewards.shape != (len(texts),):
      raise ValueError(f"verifier returned shape {rewards.shape} for {len(texts)} texts")

    flat = iter(rewards.tolist())
    for slot, batch, stage in zip(slots, batches, stages):
      for r in batch:
        r.reward = next(flat)
        r.step = step
        r.reused = False
        r.stage = stage
      slot.responses.extend(batch)

  def _metrics(self, state: StepState, groups: list[Group], reused) -> dict:
    sampled = [s.num_sampled for s in state.slots]
    n_responses = sum(sampled)
    rewards = [r.reward for s in state.slots for r in s.responses]
    lengths = [r.num_tokens for s in state.slots for r in s.responses]
    before = [without_reused(g) for g in groups]
    hist = collections.Counter(sampled)
    return {
        "rollout/responses": float(n_responses),
        "rollout/tokens": float(sum(lengths)),
        "rollout/response_len_mean": float(np.mean(lengths)) if lengths else float("nan"),
        "rollout/response_len_max": float(max(lengths)) if lengths else float("nan"),
        "rollout/prompts_drawn": float(len(state.slots)),
        "rollout/responses_per_prompt": _ratio(n_responses, len(state.slots)),
        "rollout/responses_per_kept_prompt": _ratio(n_responses, len(groups)),
        "rollout/responses_per_prompt_hist": {str(n): hist[n] for n in sorted(hist)},
        "rollout/stages": float(state.stages_run),
        "rollout/prompts": float(len(groups)),
        "rollout/train_responses": float(sum(g.size for g in groups)),
        "rollout/masked_responses": float(sum(m.count(False) for m in (g.train_mask for g in groups))),
        "rollout/reused": float(len(reused)),
        "rollout/frac_zero_adv_groups_before_reuse": _ratio(sum(map(has_zero_advantage, before)), len(groups)),
        "rollout/frac_zero_adv_groups": _ratio(sum(map(has_zero_advantage, groups)), len(groups)),
        "rollout/frac_all_wrong_before_reuse": _ratio(sum(map(_all_wrong, before)), len(groups)),
        "rollout/frac_all_wrong": _ratio(sum(map(_all_wrong, groups)), len(groups)),
        "rollout/reward_mean": float(np.mean(rewards)) if rewards else float("nan"),
        "rollout/empty": float(not groups),
        "buffer/size": float(self.buffer.size),
        "buffer/staleness": float(np.mean([state.step - r.step for r in reused])) if reused else float("nan"),
    }
