"""Held-out evaluation with the sampling kernel: greedy accuracy and per-prompt pass rates."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ar3po_jax.policy import PolicySampler
from ar3po_jax.types import Prompt, Verifier


def greedy_accuracy(sampler: PolicySampler, prompts: Sequence[Prompt], verifier: Verifier, batch_size: int) -> float:
  """Fraction of prompts whose greedy response the verifier accepts (eval/accuracy)."""
  greedy = dataclasses.replace(sampler.sampling, temperature=0.0)
  correct = []
  for start in range(0, len(prompts), batch_size):
    chunk = prompts[start : start + batch_size]
    tokens, _, lengths, _ = sampler.generate([p.token_ids for p in chunk], greedy)
    texts = [sampler.tokenizer.decode(t[:n]) for t, n in zip(tokens, lengths)]
    correct.append(verifier(texts, [p.answer for p in chunk]))
  return float(np.mean(np.concatenate(correct))) if correct else float("nan")


def pass_rates(sampler: PolicySampler, prompts: Sequence[Prompt], verifier: Verifier, samples: int, batch_rows: int = 512) -> np.ndarray:
  """Per-prompt fraction of `samples` responses (at the sampler's temperature) that are correct."""
  rows = [p for p in prompts for _ in range(samples)]
  rewards = []
  for start in range(0, len(rows), batch_rows):
    chunk = rows[start : start + batch_rows]
    tokens, _, lengths, _ = sampler.generate([p.token_ids for p in chunk])
    texts = [sampler.tokenizer.decode(t[:n]) for t, n in zip(tokens, lengths)]
    rewards.append(verifier(texts, [p.answer for p in chunk]))
  return np.concatenate(rewards).reshape(len(prompts), samples).mean(axis=1)


def pass_rate_summary(rates: np.ndarray, samples: int) -> dict[str, float | list[int]]:
  """Fractions of prompts never, sometimes and always solved, and the histogram over k/samples."""
  counts = np.rint(rates * samples).astype(int)
  return {
      "frac_pass_0": float(np.mean(counts == 0)),
      "frac_pass_mixed": float(np.mean((counts > 0) & (counts < samples))),
      "frac_pass_1": float(np.mean(counts == samples)),
      "histogram": np.bincount(counts, minlength=samples + 1).tolist(),
  }


def format_histogram(summary: dict, samples: int, width: int = 40) -> str:
  hist = summary["histogram"]
  total = max(sum(hist), 1)
  lines = [f"pass rate over {samples} samples (held-out prompts: {total})"]
  for k, n in enumerate(hist):
    lines.append(f"  {k}/{samples}  {n:5d}  {'#' * round(width * n / total)}")
  lines.append(
      f"  never solved {summary['frac_pass_0']:.0%}   mixed {summary['frac_pass_mixed']:.0%}   always solved {summary['frac_pass_1']:.0%}"
  )
  return "\n".join(lines)
