"""The one sample-and-verify loop: every evaluation (in-training accuracy, the warm start's pass-rate
histogram, `python -m ar3po_jax.eval`) samples k responses per prompt with the sampling kernel and
scores them with the verifier here."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from ar3po_jax.sampling import SamplingParams
from ar3po_jax.types import Prompt, Verifier


def sample_and_verify(
    sampler,
    prompts: Sequence[Prompt],
    verifier: Verifier,
    samples: int,
    batch_rows: int,
    keep_texts: bool = False,
    sampling: SamplingParams | None = None,
) -> dict:
  """rewards [P, k] float32, lengths [P, k] int32, truncated [P, k] bool, and texts [P][k] when kept.

  Rows are prompt-major (prompt 0's k samples, then prompt 1's, ...) in launches of batch_rows rows;
  sampling: the sampler's own settings when None (pass a greedy copy for greedy decoding).
  """
  rows = [p for p in prompts for _ in range(samples)]
  rewards, lengths, truncated, texts = [], [], [], []
  for start in range(0, len(rows), batch_rows):
    chunk = rows[start : start + batch_rows]
    tokens, _, n_tokens, cut = sampler.generate([p.token_ids for p in chunk], sampling)
    chunk_texts = [sampler.tokenizer.decode(t[:n]) for t, n in zip(tokens, n_tokens)]
    rewards.append(verifier(chunk_texts, [p.answer for p in chunk]))
    lengths.append(n_tokens)
    truncated.append(cut)
    if keep_texts:
      texts += chunk_texts
  shape = (len(prompts), samples)
  if not rows:
    empty = {
        "rewards": np.zeros(shape, np.float32), "lengths": np.zeros(shape, np.int32), "truncated": np.zeros(shape, bool)
    }
    return {**empty, "texts": [[] for _ in prompts]} if keep_texts else empty
  out = {
      "rewards": np.concatenate(rewards).astype(np.float32).reshape(shape),
      "lengths": np.concatenate(lengths).astype(np.int32).reshape(shape),
      "truncated": np.concatenate(truncated).astype(bool).reshape(shape),
  }
  if keep_texts:
    out["texts"] = [texts[i * samples : (i + 1) * samples] for i in range(len(prompts))]
  return out


def greedy(sampler) -> SamplingParams:
  """The sampler's settings at temperature 0."""
  return dataclasses.replace(sampler.sampling, temperature=0.0)


def greedy_accuracy(sampler, prompts: Sequence[Prompt], verifier: Verifier, batch_size: int) -> float:
  """Fraction of prompts whose greedy response the verifier accepts (eval/accuracy)."""
  if not prompts:
    return float("nan")
  out = sample_and_verify(sampler, prompts, verifier, 1, batch_size, sampling=greedy(sampler))
  return float(np.mean(out["rewards"].reshape(-1)))


def pass_rates(
    sampler, prompts: Sequence[Prompt], verifier: Verifier, samples: int, batch_rows: int = 512
) -> np.ndarray:
  """Per-prompt fraction of `samples` responses (at the sampler's temperature) that are correct."""
  return sample_and_verify(sampler, prompts, verifier, samples, batch_rows)["rewards"].mean(axis=1)


def benchmark_metrics(
    sampler,
    eval_sets: dict[str, Sequence[Prompt]],
    verifier: Verifier,
    samples: int,
    batch_rows: int,
    sampling: SamplingParams | None = None,
    limit: int = 0,
) -> dict[str, float]:
  """`eval/<set>/avg@k` and `eval/<set>/pass@k` per held-out set: k = samples responses per prompt at
  `sampling` (the eval temperature and top-p), the first `limit` prompts of each set (0: all)."""
  from ar3po_jax.evaluation.metrics import summarize

  out = {}
  for name, prompts in eval_sets.items():
    prompts = list(prompts[:limit] if limit else prompts)
    if not prompts:
      continue
    rewards_PxK = sample_and_verify(sampler, prompts, verifier, samples, batch_rows, sampling=sampling)["rewards"]
    out.update({f"eval/{name}/{key}": value for key, value in summarize(rewards_PxK, ()).items()})
  return out
