"""A progress bar for sampling loops: problems done and generated tokens per second.

  from ar3po_jax.evaluation import progress, sample_and_verify

  sampler = progress.Tracked(sampler, problems=len(prompts), samples=k, desc="gsm8k")
  out = sample_and_verify(sampler, prompts, verifier, k, batch_rows)   # the bar advances per launch
  sampler.close()

`Tracked` wraps anything with the sampler's `generate(prompt_ids, sampling)` (returning tokens,
log-probs, lengths, truncated) and forwards every other attribute, so loops that take a sampler take
it unchanged. Rows are counted as they come back and shown as whole problems (a problem is done when
all its k samples are), tokens/s counts response tokens including the stop token, from the first
launch's start, compile time included (the first launch of a shape compiles).
"""

from __future__ import annotations

import sys
import time

import numpy as np


class Tracked:
  def __init__(self, sampler, problems: int, samples: int = 1, desc: str = "", disable: bool | None = None, file=None):
    import tqdm

    if samples < 1:
      raise ValueError(f"samples must be >= 1, got {samples}")
    self._sampler = sampler
    self.samples = samples
    self.rows = 0
    self.tokens = 0
    self._start: float | None = None
    file = file or sys.stderr
    # disable=None: tqdm's own rule (off when the stream is not a terminal) would hide the bar in
    # logs, which is where long evaluations are watched; so on unless asked.
    self.bar = tqdm.tqdm(
        total=problems, desc=desc, unit="problem", disable=bool(disable), file=file, dynamic_ncols=True)

  def generate(self, prompt_ids, sampling=None):
    if self._start is None:
      self._start = time.perf_counter()
    out = self._sampler.generate(prompt_ids, sampling)
    self.update(len(prompt_ids), int(np.sum(out[2])))
    return out

  def update(self, rows: int, tokens: int) -> None:
    self.rows += rows
    self.tokens += tokens
    done = self.rows // self.samples
    self.bar.update(done - self.bar.n)
    self.bar.set_postfix_str(f"{self.tokens_per_second:.1f} tok/s", refresh=True)

  @property
  def tokens_per_second(self) -> float:
    elapsed = time.perf_counter() - self._start if self._start is not None else 0.0
    return self.tokens / elapsed if elapsed > 0 else 0.0

  def close(self) -> None:
    self.bar.close()

  def __getattr__(self, name):
    # Only called for attributes not found on Tracked itself: the sampler's tokenizer, sampling, params...
    if name == "_sampler":
      raise AttributeError(name)
    return getattr(self._sampler, name)
