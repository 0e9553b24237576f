"""`EngineSampler`: the engine behind the scheduler's `Sampler` interface (a drop-in for `PolicySampler`).

Two ways in:
  - barrier (`types.Sampler`): a call submits every (prompt, response index) as one request and drains
    the engine, so a whole stage runs continuously batched. Call c splits the sampler's rng once;
    response j of prompt i gets fold_in(fold_in(call_key, i), j).
  - streamed (`types.StreamingSampler`): `submit(tag, prompt, count, key_path)` queues `count`
    responses of one prompt, `poll()` runs one engine iteration and returns the responses finished in
    it, each with its tag. The scheduler queues a prompt's next stage as soon as its previous
    responses are verified (`rollout.scheduler`). Response j of a submit gets
    fold_in(...fold_in(fold_in(stream_key, key_path[0]), key_path[1])..., j), where stream_key is the
    sampler's rng at that moment (not advanced by streaming): with key_path = (step, prompt index,
    stage) a request's tokens depend on what it is, not on when it was queued or which slot served it.

Either way the responses depend on the seed, not on the slot count or the order slots free up.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax.engine.engine import Engine, EngineConfig, Request
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.sampling import SamplingParams
from ar3po_jax.types import Prompt, Response


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
      cache_sharding=None,
  ):
    self.model, self.params, self.tokenizer, self.sampling = model, params, tokenizer, sampling
    self.rng, self.config = rng, config
    self.stop_ids = None if stop_ids is None else tuple(stop_ids)
    self.cache_sharding = cache_sharding
    self._engines: dict[SamplingParams, Engine] = {}
    self._submitted = 0  # streamed requests so far: makes each request's engine uid unique

  def state_dict(self) -> dict:
    """The sampling key (the params come from the TrainState)."""
    if self.busy:
      raise RuntimeError("EngineSampler.state_dict: requests are still in flight")
    key = self.rng
    return {"impl": str(jax.random.key_impl(key)), "data": np.asarray(jax.random.key_data(key)).tolist()}

  def load_state_dict(self, state: dict) -> None:
    self.rng = jax.random.wrap_key_data(np.asarray(state["data"], np.uint32), impl=state["impl"])

  def engine(self, sampling: SamplingParams | None = None) -> Engine:
    sampling = sampling or self.sampling
    if sampling not in self._engines:
      self._engines[sampling] = Engine(
          self.model, self.params, self.config, sampling, self.stop_ids, cache_sharding=self.cache_sharding
      )
    engine = self._engines[sampling]
    engine.params = self.params
    return engine

  # ---- streamed (types.StreamingSampler)

  @property
  def busy(self) -> bool:
    return any(e.busy for e in self._engines.values())

  def submit(self, tag, prompt: Prompt, count: int, key_path: Sequence[int]) -> None:
    """Queues `count` responses of `prompt` at the rollout sampling settings; `poll` returns them."""
    if count < 1:
      raise ValueError(f"EngineSampler.submit: count must be >= 1, got {count}")
    key = self.rng
    for i in key_path:
      key = jax.random.fold_in(key, int(i))
    keys = np.asarray(request_keys(key, jnp.zeros(count, jnp.int32), jnp.arange(count, dtype=jnp.int32)))
    engine = self.engine()
    requests = []
    for j in range(count):
      uid = (tag, j, self._submitted)
      self._submitted += 1
      requests.append(Request(uid, prompt.token_ids, keys[j], self.sampling.max_new_tokens))
    engine.submit(requests)

  def poll(self) -> list[tuple[object, int, Response]]:
    """One engine iteration: (tag, response index j of its submit, response) for each that finished."""
    out = []
    for f in self.engine().poll():
      tag, j, _ = f.uid
      out.append((tag, j, self._response(f)))
    return out

  def _response(self, f) -> Response:
    return Response(
        token_ids=f.tokens, logprobs=f.logprobs, text=self.tokenizer.decode(f.tokens), truncated=f.truncated
    )

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
      response = self._response(f)
      response.step = step
      results[i].append(response)
    return results

  def metrics(self) -> dict[str, float]:
    """Every engine's counters summed (rollout and evaluation), utilization and tokens/s recomputed."""
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
    """The rollout engine's per-step metrics (`metrics.DOCS`) since the last call; resets every engine's
    counters, so evaluation's engines never count into a rollout step. Call once per training step."""
    rollout = self._engines.get(self.sampling)
    m = rollout.metrics() if rollout is not None else {}
    out = {
        name: m.get(name, float("nan"))
        for name in ("rollout/slot_utilization", "rollout/tokens_per_s", "engine/decode_calls", "engine/prefill_calls")
    }
    for e in self._engines.values():
      e.reset_metrics()
    return out
