"""The math verifier the scheduler calls: extraction and the fast path in-process, the rest in a pool.

Only (gold, prediction) pairs the fast path cannot decide cross to the worker pool, deduplicated
within a batch (a group's responses often share an answer), so a batch of integer answers never
touches IPC or sympy.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Sequence

import numpy as np

from ar3po_jax.rewards.config import VerifyConfig
from ar3po_jax.rewards.extract import extract_answer, ground_truth_answer
from ar3po_jax.rewards.fast import fast_equivalent
from ar3po_jax.rewards.pool import OK, TIMEOUT, WorkerPool

_SYMPY_MODULE = "ar3po_jax.rewards.equivalence"


UNDECIDED = "undecided"


def check_pair(gold: str, pred: str, config: VerifyConfig) -> bool | str:
  """The pool's task: True/False, or UNDECIDED for exact values too large to settle (scored 0).

  Importing sympy here, not at module level, keeps it out of the parent.
  """
  from ar3po_jax.rewards.equivalence import equivalent
  from ar3po_jax.rewards.rational import Undecided

  try:
    return equivalent(gold, pred, config)
  except Undecided:
    return UNDECIDED


def _as_text(x: Any) -> str:
  if isinstance(x, str):
    return x
  if isinstance(x, bytes):
    return x.decode("utf-8", "replace")
  return "" if x is None else str(x)


class MathVerifier:
  """`ar3po_jax.types.Verifier` for math answers: 1.0 when the response's final answer equals the truth.

  timeout_s: the hard wall-clock limit of one sympy-path check (the fast path needs none); a check
    that exceeds it, or crashes its worker, scores 0 and is counted in `verify/timeouts` or
    `verify/errors`; one whose exact values cannot be settled within a fixed budget (a tower such as
    `9^{9^{9^9}}` against a number it agrees with as far as it can be computed) scores 0 and is counted
    in `verify/undecided`.
  num_workers: worker processes for the sympy path (default: the CPU count, at most 8), started on
    the first answer that needs one.
  Other keyword arguments are `VerifyConfig` knobs (or pass `config=`).

  Workers are forkserver (or spawn) children, so like any such child they re-import the main
  script: a script that verifies must keep its entry point under `if __name__ == "__main__":`, and
  keeps worker start cheap by importing heavy modules (JAX) there rather than at module level.
  """

  def __init__(
      self,
      timeout_s: float = 2.0,
      num_workers: int | None = None,
      config: VerifyConfig | None = None,
      memory_limit_mb: int | None = 4096,
      start_method: str | None = None,
      **knobs,
  ):
    if timeout_s <= 0:
      raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    self.config = VerifyConfig(**knobs) if config is None else (
        VerifyConfig(**{**config.__dict__, **knobs}) if knobs else config
    )
    self.timeout_s = timeout_s
    self.num_workers = num_workers or max(1, min(8, os.cpu_count() or 1))
    self._memory_limit_mb = memory_limit_mb
    self._start_method = start_method
    self._pool: WorkerPool | None = None
    self._lock = threading.Lock()
    self._counts = dict.fromkeys((
        "total", "correct", "fast_path", "pool", "no_answer", "too_long", "fast_errors", "undecided"
    ), 0)

  def _get_pool(self) -> WorkerPool:
    if self._pool is None:
      self._pool = WorkerPool(
          check_pair,
          self.num_workers,
          self.timeout_s,
          memory_limit_mb=self._memory_limit_mb,
          start_method=self._start_method,
          preload=(_SYMPY_MODULE,),
      )
    return self._pool

  def __call__(self, texts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    if len(texts) != len(answers):
      raise ValueError(f"MathVerifier: {len(texts)} texts but {len(answers)} answers")
    config = self.config
    rewards = np.zeros(len(texts), np.float32)
    hard: dict[tuple[str, str], list[int]] = {}
    counts = dict.fromkeys(self._counts, 0)
    for i, (text, answer) in enumerate(zip(texts, answers)):
      pred = extract_answer(_as_text(text), config.order, config.fallback, config.max_response_chars)
      gold = ground_truth_answer(_as_text(answer))
      if not pred or not gold:
        counts["no_answer"] += 1
        continue
      if len(pred) > config.max_answer_chars or len(gold) > config.max_answer_chars:
        counts["too_long"] += 1
        continue
      try:
        decided = fast_equivalent(gold, pred, config)
      except Exception:  # a fast-path bug must cost one reward, never the training step
        counts["fast_errors"] += 1
        continue
      if decided is None:
        hard.setdefault((gold, pred), []).append(i)
      else:
        counts["fast_path"] += 1
        rewards[i] = float(decided)
    if hard:
      counts["pool"] += sum(map(len, hard.values()))
      with self._lock:
        outcomes = self._get_pool().map([(gold, pred, config) for gold, pred in hard])
      for indices, (status, value) in zip(hard.values(), outcomes):
        rewards[indices] = float(status == OK and value is True)
        counts["undecided"] += len(indices) * (status == OK and value == UNDECIDED)
    counts["total"] = len(texts)
    counts["correct"] = int(rewards.sum())
    with self._lock:
      for key, value in counts.items():
        self._counts[key] += value
    return rewards

  def metrics(self) -> dict[str, float]:
    """Cumulative counters since construction; `verify/fast_path_frac` is over all responses."""
    with self._lock:
      c = dict(self._counts)
      pool = self._pool
    total = max(c["total"], 1)
    return {
        "verify/total": float(c["total"]),
        "verify/accuracy": c["correct"] / total,
        "verify/fast_path": float(c["fast_path"]),
        "verify/fast_path_frac": c["fast_path"] / total,
        "verify/pool": float(c["pool"]),
        "verify/no_answer": float(c["no_answer"]),
        "verify/too_long": float(c["too_long"]),
        "verify/undecided": float(c["undecided"]),
        "verify/timeouts": float(pool.timeouts if pool else 0),
        "verify/errors": float((pool.errors if pool else 0) + c["fast_errors"]),
        "verify/worker_restarts": float(pool.restarts if pool else 0),
    }

  def close(self) -> None:
    with self._lock:
      if self._pool is not None:
        self._pool.close()
        self._pool = None

  def __enter__(self) -> "MathVerifier":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


_SHARED: dict[tuple, MathVerifier] = {}
_SHARED_LOCK = threading.Lock()


def _close_shared() -> None:
  for verifier in _SHARED.values():
    verifier.close()


atexit.register(_close_shared)


def shared_verifier(timeout_s: float = 2.0, **knobs) -> MathVerifier:
  """The process-wide verifier for these settings, created on first use and closed at exit."""
  key = (timeout_s, tuple(sorted(knobs.items())))
  with _SHARED_LOCK:
    if key not in _SHARED:
      _SHARED[key] = MathVerifier(timeout_s=timeout_s, **knobs)
    return _SHARED[key]


def math_reward(response: str, ground_truth: str, timeout_s: float = 2.0, **knobs) -> float:
  """1.0 when the final answer of response equals ground_truth, else 0.0.

  Runs through `shared_verifier`, so it has the same hard time limit and never raises; callers with
  many responses should call a `MathVerifier` on the whole batch to verify them in parallel.
  """
  return float(shared_verifier(timeout_s, **knobs)([response], [ground_truth])[0])
