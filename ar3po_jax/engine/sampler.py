"""`EngineSampler`: the engine behind the scheduler's `Sampler` interface (a drop-in for `PolicySampler`).

A call submits every (prompt, response index) as one request and drains the engine, so a whole
stage runs continuously batched; the scheduler needs no change. Streaming stages (a prompt's next
stage queued as soon as its previous responses are verified) need the scheduler to use
`Engine.submit` / `Engine.poll` directly; see the engine package docstring.

Keys: call c of the sampler splits its rng once; response j of prompt i gets
fold_in(fold_in(call_key, i), j), so a call's responses depend on its seed and the order of its
prompts, not on the slot count or on which slot served them.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax.engine.engine import Engine, EngineConfig, Request
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.types import Prompt, Response
from ar3po_jax.sampling import SamplingParams


@jax.jit
def request_keys(call_key: jax.Array, prompt_index_R: jax.Array, sample_index_R: jax.Array) -> jax.Array:
  """Raw key data [R, ...] of fold_in(fold_in(call_key, prompt_index), sample_index), in one launch."""
  fold = jax.vmap(lambda i, j: jax.random.fold_in(jax.random.fold_in(call_key, i), j))
  return jax.random.key_data(fold(prompt_index_R, sample_index_R))


class EngineSampler:
  """Samples from `self.params` (replaced by the training loop after every update) with an Engine.

  One engine (and its KV cache) per SamplingParams variant; `generate` mirrors
  `PolicySampler.generate` for the evaluation code.
  """

  def __init__(
      self,
      model: Transformer,
      params,
      tokenizer,
      sampling: SamplingParams,
      rng: jax.Array,
      config: EngineConfig,
      stop_ids: Sequence[int] | None = None,
  ):
    self.model, self.params, self.tokenizer, self.sampling = model, params, tokenizer, sampling
    self.rng, self.config = rng, config
    self.stop_ids = None if stop_ids is None else tuple(stop_ids)
    self._engines: dict[SamplingParams, Engine] = {}
    self._metrics_base: dict[str, float] = {}

  def engine(self, sampling: SamplingParams | None = None) -> Engine:
    sampling = sampling or self.sampling
    if sampling not in self._engines:
      self._engines[sampling] = Engine(self.model, self.params, self.config, sampling, self.stop_ids)
    engine = self._engines[sampling]
    engine.params = self.params
    return engine

  def _run(self, prompt_ids: Sequence[np.ndarray], prompt_index: np.ndarray, sample_index: np.ndarray, sampling=None):
    self.rng, call_key = jax.random.split(self.rng)
    keys = request_keys(call_key, jnp.asarray(prompt_index, jnp.int32), jnp.asarray(sample_index, jnp.int32))
    keys = np.asarray(keys)
    engine = self.engine(sampling)
    limit = (sampling or self.sampling).max_new_tokens
    return engine.generate([Request(r, p, keys[r], limit) for r, p in enumerate(prompt_ids)])

  def generate(self, prompt_ids: Sequence[np.ndarray], sampling: SamplingParams | None = None):
    """(tokens [n, Tr], logprobs [n, Tr], lengths [n], truncated [n]) as numpy, like PolicySampler."""
    Tr = (sampling or self.sampling).max_new_tokens
    n = len(prompt_ids)
    done = self._run(prompt_ids, np.arange(n), np.zeros(n, np.int64), sampling)
    tokens = np.full((n, Tr), (sampling or self.sampling).pad_id, np.int32)
    logprobs = np.zeros((n, Tr), np.float32)
    for i, f in enumerate(done):
      tokens[i, : f.length], logprobs[i, : f.length] = f.tokens, f.logprobs
    return tokens, logprobs, np.asarray([f.length for f in done], np.int32), np.asarray([f.truncated for f in done])

  def __call__(self, prompts: Sequence[Prompt], counts: Sequence[int], step: int) -> list[list[Response]]:
    if len(prompts) != len(counts):
      raise ValueError(f"EngineSampler: {len(prompts)} prompts but {len(counts)} counts")
    pairs = [(i, j) for i, c in enumerate(counts) for j in range(int(c))]
    results: list[list[Response]] = [[] for _ in prompts]
    if not pairs:
      return results
    prompt_index, sample_index = np.asarray(pairs).T
    done = self._run([prompts[i].token_ids for i, _ in pairs], prompt_index, sample_index)
    for (i, _), f in zip(pairs, done):
      results[i].append(
          Response(
              token_ids=f.tokens,
              logprobs=f.logprobs,
              text=self.tokenizer.decode(f.tokens),
              truncated=f.truncated,
              step=step,
          )
      )
    return results

  def metrics(self) -> dict[str, float]:
    """The engines' metrics summed since the last `take_metrics` (utilization and tokens/s recomputed)."""
    total: dict[str, float] = {}
    for e in self._engines.values():
      for k, v in e.metrics().items():
        total[k] = total.get(k, 0.0) + v
    rows = sum(e._row_steps for e in self._engines.values())
    live = sum(e._live_row_steps for e in self._engines.values())
    total["rollout/slot_utilization"] = live / rows if rows else float("nan")
    secs = total.get("engine/seconds", 0.0)
    total["rollout/tokens_per_s"] = total.get("engine/tokens", 0.0) / secs if secs else float("nan")
    return total

  def take_metrics(self) -> dict[str, float]:
    """`metrics()` then resets the counters: call once per training step."""
    out = self.metrics()
    for e in self._engines.values():
      e.reset_metrics()
    return out
