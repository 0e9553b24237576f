"""A simulated policy: each prompt has a fixed pass rate p, each response is correct with prob. p.

It satisfies the `Sampler` protocol, so the real Scheduler, strategies, buffer and ExactVerifier run
unchanged against it: a correct response reads `\\boxed{ANSWER}`, a wrong one `\\boxed{WRONG}`.
Lengths are independent of correctness; a drawn length above max_new_tokens is cut there and the
response marked truncated. Token ids are zero views of one read-only array and log-probs are zeros
(no per-response allocation: 10k prompts x 8 responses per stage stay cheap).

`ScriptedSampler` instead replays predetermined outcomes per prompt (for tests of exact groups); the
data stream over a fixed pool is the training loop's own `datasets.stream.PromptStream`.

Pass-rate specs: "constant:P", "uniform" (U[0,1]), "beta:A,B", "file:PATH" (one rate per line, or
a JSON list). Length specs: "constant:L", "uniform:LO,HI" (inclusive), "geometric:MEAN".
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable, Mapping, Sequence

import numpy as np

from ar3po_jax.types import Prompt, Response

LengthSampler = Callable[[np.random.Generator, int], np.ndarray]


def pass_rates(spec: str, num_prompts: int, rng: np.random.Generator) -> np.ndarray:
  """num_prompts pass rates in [0, 1] drawn by spec; a file shorter than num_prompts is cycled."""
  kind, _, arg = spec.partition(":")
  if kind == "constant":
    rates = np.full(num_prompts, float(arg))
  elif kind == "uniform" and not arg:
    rates = rng.uniform(0.0, 1.0, num_prompts)
  elif kind == "beta":
    a, b = (float(x) for x in arg.split(","))
    rates = rng.beta(a, b, num_prompts)
  elif kind == "file":
    text = pathlib.Path(arg).read_text().strip()
    listed = json.loads(text) if text.startswith("[") else [float(x) for x in text.split()]
    if not listed:
      raise ValueError(f"pass-rate file {arg} holds no rates")
    rates = np.resize(np.asarray(listed, np.float64), num_prompts)
  else:
    raise ValueError(f"pass-rate spec {spec!r}: use constant:P, uniform, beta:A,B or file:PATH")
  if not ((rates >= 0) & (rates <= 1)).all():
    raise ValueError(f"pass-rate spec {spec!r} gave rates outside [0, 1]")
  return rates


def length_sampler(spec: str) -> LengthSampler:
  """A function (rng, n) -> n raw response lengths (>= 1 token) for the spec."""
  kind, _, arg = spec.partition(":")
  if kind == "constant":
    length = int(arg)
    return lambda rng, n: np.full(n, max(1, length), np.int64)
  if kind == "uniform":
    lo, hi = (int(x) for x in arg.split(","))
    return lambda rng, n: np.maximum(1, rng.integers(lo, hi + 1, n))
  if kind == "geometric":
    mean = float(arg)
    return lambda rng, n: rng.geometric(1.0 / max(mean, 1.0), n).astype(np.int64)
  raise ValueError(f"length spec {spec!r}: use constant:L, uniform:LO,HI or geometric:MEAN")


def make_prompts(num_prompts: int, prompt_len: int = 8) -> list[Prompt]:
  token_ids = np.zeros(prompt_len, np.int32)
  token_ids.flags.writeable = False
  return [Prompt(uid=f"sim-{i}", token_ids=token_ids, answer=str(i), text=f"problem {i}") for i in range(num_prompts)]


class SimulatedSampler:
  """Samples Bernoulli(p[uid]) correctness and random lengths; rewards are left to the verifier."""

  def __init__(
      self,
      rates: Mapping[str, float],
      rng: np.random.Generator,
      max_new_tokens: int,
      lengths: LengthSampler | str = "uniform:1,48",
  ):
    self.rates = rates
    self.rng = rng
    self.max_new_tokens = int(max_new_tokens)
    self.lengths = length_sampler(lengths) if isinstance(lengths, str) else lengths
    self._zeros_i32 = np.zeros(self.max_new_tokens, np.int32)
    self._zeros_f32 = np.zeros(self.max_new_tokens, np.float32)
    self._zeros_i32.flags.writeable = False
    self._zeros_f32.flags.writeable = False

  def __call__(self, prompts: Sequence[Prompt], counts: Sequence[int], step: int) -> list[list[Response]]:
    counts = np.asarray(counts, np.int64)
    p = np.repeat(np.asarray([self.rates[q.uid] for q in prompts], np.float64), counts)
    correct = (self.rng.random(p.shape[0]) < p).tolist()
    raw = self.lengths(self.rng, p.shape[0])
    truncated = (raw > self.max_new_tokens).tolist()
    lengths = np.minimum(raw, self.max_new_tokens).tolist()
    zeros_i32, zeros_f32 = self._zeros_i32, self._zeros_f32
    out, i = [], 0
    for prompt, n in zip(prompts, counts.tolist()):
      right, wrong = f"\\boxed{{{prompt.answer}}}", "\\boxed{WRONG}"
      out.append([
          Response(
              token_ids=zeros_i32[: lengths[j]],
              logprobs=zeros_f32[: lengths[j]],
              text=right if correct[j] else wrong,
              truncated=truncated[j],
              step=step,
          )
          for j in range(i, i + n)
      ])
      i += n
    return out


class ScriptedSampler:
  """Replays a script: outcomes[uid] is a string of '1' (correct) / '0' (wrong), consumed in order.

  Response i of a prompt has text "<uid>#<i> \\boxed{...}" so tests can tell responses apart, and
  length lengths[uid][i] (default 4; above max_new_tokens: cut there and marked truncated).
  `calls` records (uids, counts) of every call.
  """

  def __init__(self, outcomes: Mapping[str, str], max_new_tokens: int = 48, lengths: Mapping[str, Sequence[int]] | None = None):
    self.outcomes = dict(outcomes)
    self.lengths = dict(lengths or {})
    self.max_new_tokens = int(max_new_tokens)
    self.used: dict[str, int] = {}
    self.calls: list[tuple[list[str], list[int]]] = []

  def __call__(self, prompts: Sequence[Prompt], counts: Sequence[int], step: int) -> list[list[Response]]:
    self.calls.append(([q.uid for q in prompts], [int(n) for n in counts]))
    out = []
    for prompt, n in zip(prompts, counts):
      start = self.used.get(prompt.uid, 0)
      script = self.outcomes[prompt.uid]
      if start + n > len(script):
        raise ValueError(f"ScriptedSampler: script of {prompt.uid} ({script!r}) exhausted asking {n} at {start}")
      self.used[prompt.uid] = start + n
      scripted_lengths = self.lengths.get(prompt.uid, ())
      batch = []
      for i in range(start, start + n):
        raw = scripted_lengths[i] if i < len(scripted_lengths) else 4
        length = min(raw, self.max_new_tokens)
        answer = prompt.answer if script[i] == "1" else "WRONG"
        batch.append(
            Response(
                token_ids=np.full(length, i, np.int32),
                logprobs=np.zeros(length, np.float32),
                text=f"{prompt.uid}#{i} \\boxed{{{answer}}}",
                truncated=raw > self.max_new_tokens,
                step=step,
            )
        )
      out.append(batch)
    return out
