"""The one sample-and-verify loop, against a scripted sampler: row order, launches, greedy and pass rates."""

import numpy as np

from ar3po_jax import evaluation
from ar3po_jax.sampling import SamplingParams
from ar3po_jax.types import Prompt


class _Tok:
  def decode(self, ids):
    return " ".join(str(int(i)) for i in ids)


class _ScriptedSampler:
  """Row r's response is one token: (prompt id * 10 + how many times that prompt was sampled so far)."""

  def __init__(self):
    self.tokenizer, self.sampling = _Tok(), SamplingParams(4, 1.0, stop_ids=(2,), pad_id=0)
    self.launches, self.seen = [], {}

  def generate(self, prompt_ids, sampling=None):
    self.launches.append((len(prompt_ids), (sampling or self.sampling).temperature))
    out = []
    for ids in prompt_ids:
      p = int(ids[0])
      n = self.seen[p] = self.seen.get(p, -1) + 1
      out.append(p * 10 + n)
    tokens = np.asarray(out, np.int32)[:, None]
    return tokens, np.zeros_like(tokens, np.float32), np.ones(len(out), np.int32), np.zeros(len(out), bool)


def _verify_even(texts, answers):
  return np.asarray([int(t) % 2 == 0 for t in texts], np.float32)


PROMPTS = [Prompt(f"p{i}", np.asarray([i], np.int32), "") for i in range(3)]


def test_rows_are_prompt_major_in_launches_of_batch_rows():
  sampler = _ScriptedSampler()
  out = evaluation.sample_and_verify(sampler, PROMPTS, _verify_even, samples=3, batch_rows=4, keep_texts=True)
  assert sampler.launches == [(4, 1.0), (4, 1.0), (1, 1.0)]
  assert out["texts"] == [["0", "1", "2"], ["10", "11", "12"], ["20", "21", "22"]]
  np.testing.assert_array_equal(out["rewards"], [[1, 0, 1], [1, 0, 1], [1, 0, 1]])
  assert out["rewards"].dtype == np.float32 and out["lengths"].shape == (3, 3) and out["truncated"].dtype == bool


def test_greedy_accuracy_and_pass_rates_use_the_same_loop():
  sampler = _ScriptedSampler()
  assert evaluation.greedy_accuracy(sampler, PROMPTS, _verify_even, batch_size=2) == 1.0  # first samples: 0, 10, 20
  assert sampler.launches == [(2, 0.0), (1, 0.0)]
  np.testing.assert_allclose(evaluation.pass_rates(sampler, PROMPTS, _verify_even, samples=2), [0.5, 0.5, 0.5])


def test_histogram_summary():
  summary = evaluation.pass_rate_summary(np.asarray([0.0, 0.5, 1.0, 1.0]), 2)
  assert summary == {"frac_pass_0": 0.25, "frac_pass_mixed": 0.25, "frac_pass_1": 0.5, "histogram": [1, 1, 2]}
  assert "always solved 50%" in evaluation.format_histogram(summary, 2)


def test_benchmark_metrics_per_set_at_the_given_sampling():
  sampler = _ScriptedSampler()
  sets = {"a": PROMPTS[:2], "b": PROMPTS[2:], "empty": []}
  sampling = SamplingParams(4, 0.6, stop_ids=(2,), pad_id=0)
  verify = lambda texts, answers: np.asarray([int(x) % 4 == 0 for x in texts], np.float32)  # noqa: E731
  found = evaluation.benchmark_metrics(sampler, sets, verify, 2, 8, sampling)
  # set a: responses 0, 1 | 10, 11 -> one correct of four, one prompt of two solved; set b: 20, 21.
  assert found == {"eval/a/avg@2": 0.25, "eval/a/pass@2": 0.5, "eval/b/avg@2": 0.5, "eval/b/pass@2": 1.0}
  assert sampler.launches == [(4, 0.6), (2, 0.6)]
  limited = evaluation.benchmark_metrics(_ScriptedSampler(), sets, _verify_even, 1, 8, sampling, limit=1)
  assert set(limited) == {"eval/a/avg@1", "eval/a/pass@1", "eval/b/avg@1", "eval/b/pass@1"}
