"""The embedded task's reward: an exact check of the last boxed integer in the response.

This is the fast path the full math verifier also takes for integer answers; it needs no sympy and no
worker process, so the embedded run verifies thousands of responses per second in-process.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

_BOXED_INT = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")


def last_boxed_integer(text: str) -> int | None:
  """The integer inside the last `\\boxed{...}` of text, or None if the last box holds no integer."""
  boxes = text.rsplit("\\boxed{", 1)
  if len(boxes) < 2:
    return None
  match = _BOXED_INT.match("\\boxed{" + boxes[1])
  return int(match.group(1)) if match else None


def boxed_integer_reward(text: str, answer: str) -> float:
  """1.0 when the last boxed value of text is the integer `answer`, else 0.0."""
  value = last_boxed_integer(text)
  try:
    return float(value is not None and value == int(answer.strip()))
  except ValueError:
    return 0.0


class ExactVerifier:
  """The `ar3po_jax.types.Verifier` for integer answers, in-process."""

  def __call__(self, texts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    if len(texts) != len(answers):
      raise ValueError(f"ExactVerifier: {len(texts)} texts but {len(answers)} answers")
    return np.asarray([boxed_integer_reward(t, a) for t, a in zip(texts, answers)], np.float32)

  def metrics(self) -> dict[str, float]:
    return {}
