"""The data that rollout, sampler and update exchange, and the two interfaces the scheduler drives.

prompts -> scheduler -> Sampler -> Verifier -> replay buffer -> groups -> update.

It lives at the package root, owned by none of them: the sampler and the update import it without
importing `rollout/`.

Everything here is host-side NumPy / Python: the scheduler never touches JAX, so it runs against a
simulated policy (`ar3po_jax.rollout.simulated`) exactly as it runs against the real sampling kernel.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Prompt:
  """One training problem.

  uid: stable across steps and epochs; keys the replay buffer and AERO's posterior.
  token_ids: the tokenized prompt, int32 [Tp] (no padding).
  answer: the ground truth the verifier checks against.
  """

  uid: str
  token_ids: np.ndarray
  answer: str
  text: str = ""


@dataclasses.dataclass
class Response:
  """One sampled (or reused) response to a prompt.

  token_ids: int32 [L], the response tokens, EOS included when one was emitted.
  logprobs: float32 [L], log-probs of token_ids under the policy that sampled them (pi_old).
  truncated: the response hit the length limit without emitting EOS.
  reward: filled in by the scheduler from the verifier (NaN until then): 1.0 correct, 0.0 not.
  penalty: reward shaping added on top of `reward` for training only (DAPO's overlong penalty, <= 0).
  step: the training step whose policy sampled it.
  reused: it came from the replay buffer, not from this step's sampling.
  stage: the stage (0-based) of its sampling step that sampled it; a reused response keeps its own.
  """

  token_ids: np.ndarray
  logprobs: np.ndarray
  text: str
  truncated: bool = False
  reward: float = float("nan")
  penalty: float = 0.0
  step: int = 0
  reused: bool = False
  stage: int = 0

  @property
  def num_tokens(self) -> int:
    return int(len(self.token_ids))


@dataclasses.dataclass
class Group:
  """The responses of one prompt that go into the update, with per-response treatment.

  train_mask[i]: response i gets gradient. False for Option II (stop-gradient) reused responses and
    for DAPO's masked overlong responses; such responses still count in the group's mean and std.
  posterior_mean: AERO's Beta posterior mean for this prompt, used as the baseline when the group is
    degenerate (all rewards equal); None for the other strategies.
  withheld_step: for a prompt of AR3PO's matched control (rollout.ar3po.reuse_control), the producing
    step of the buffered response it would have been given and was not; None otherwise.
  """

  prompt: Prompt
  responses: list[Response]
  train_mask: list[bool]
  posterior_mean: float | None = None
  withheld_step: int | None = None

  @property
  def rewards(self) -> np.ndarray:
    """The training rewards: verifier score plus shaping penalty."""
    return np.asarray([r.reward + r.penalty for r in self.responses], np.float32)

  @property
  def correct(self) -> np.ndarray:
    return np.asarray([r.reward for r in self.responses], np.float32)

  @property
  def size(self) -> int:
    return len(self.responses)


@dataclasses.dataclass
class RolloutResult:
  """What one step's rollout hands to the update: the final groups and the rollout cost metrics, and
  the step's record for the run's analyses (`ar3po_jax.rollout.records`; None when not built)."""

  groups: list[Group]
  metrics: dict[str, float]
  records: dict | None = None


class Sampler(Protocol):
  """Samples counts[i] responses for prompts[i], at the current policy; rewards not yet filled."""

  def __call__(self, prompts: Sequence[Prompt], counts: Sequence[int], step: int) -> list[list[Response]]:
    ...


class Verifier(Protocol):
  """Scores response texts against ground truths: float32 rewards in {0, 1}, one per response."""

  def __call__(self, texts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    ...


class StreamingSampler(Protocol):
  """A sampler the scheduler can feed one prompt at a time (`ar3po_jax.engine.sampler.EngineSampler`).

  submit(tag, prompt, count, key_path): queue `count` responses of `prompt`; their draws depend only on
    the sampler's seed and `key_path` (the scheduler passes (step, prompt index, stage)).
  poll(): advance the device by one bounded call; (tag, j, response) for each response finished in it,
    j its index within its submit; rewards not yet filled.
  busy: requests are queued or in flight.
  """

  busy: bool

  def submit(self, tag, prompt: Prompt, count: int, key_path: Sequence[int]) -> None:
    ...

  def poll(self) -> list[tuple[object, int, Response]]:
    ...
