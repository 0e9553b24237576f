"""progress.Tracked: a sampler wrapper whose bar counts whole problems and generated tokens."""

from __future__ import annotations

import io
import types

import numpy as np
import pytest

from ar3po_jax.evaluation import progress, sample_and_verify


class FakeSampler:
  """Rows of length 2 + (row index % 3); the tokenizer decodes ids to digits."""

  def __init__(self):
    self.tokenizer = types.SimpleNamespace(decode=lambda ids: "".join(str(int(i)) for i in ids))
    self.sampling = "greedy"
    self.calls = []

  def generate(self, prompt_ids, sampling=None):
    self.calls.append(len(prompt_ids))
    n = len(prompt_ids)
    lengths = np.asarray([2 + i % 3 for i in range(n)], np.int32)
    return np.ones((n, 4), np.int32), np.zeros((n, 4), np.float32), lengths, np.zeros(n, bool)


def test_counts_whole_problems_and_tokens():
  stream = io.StringIO()
  tracked = progress.Tracked(FakeSampler(), problems=3, samples=2, desc="bench", file=stream)
  tracked.generate([np.zeros(1)] * 3)  # rows 0-2: problem 0 done, problem 1 half done
  assert (tracked.rows, tracked.bar.n, tracked.tokens) == (3, 1, 2 + 3 + 4)
  tracked.generate([np.zeros(1)] * 3)
  assert (tracked.rows, tracked.bar.n, tracked.tokens) == (6, 3, 18)
  tracked.close()
  text = stream.getvalue()
  assert "bench" in text and "3/3" in text and "tok/s" in text
  assert tracked.tokens_per_second > 0


def test_is_a_drop_in_sampler_for_the_eval_loop():
  fake = FakeSampler()
  tracked = progress.Tracked(fake, problems=3, samples=2, file=io.StringIO())
  prompts = [types.SimpleNamespace(token_ids=np.zeros(2, np.int32), answer="11") for _ in range(3)]
  out = sample_and_verify(
      tracked, prompts, lambda texts, answers: np.asarray([t == a for t, a in zip(texts, answers)], float), 2, 4)
  assert fake.calls == [4, 2] and tracked.bar.n == 3 and tracked.tokens == int(out["lengths"].sum())
  # Launches of 4 and 2 rows: lengths 2, 3, 4, 2 then 2, 3; the text is "11" (correct) at length 2.
  assert out["rewards"].tolist() == [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
  assert tracked.sampling == "greedy"  # other attributes pass through
  with pytest.raises(ValueError, match="samples"):
    progress.Tracked(fake, problems=1, samples=0)
