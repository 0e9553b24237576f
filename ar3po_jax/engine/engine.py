"""A continuous-batching rollout engine: fixed decode slots, refilled as soon as a row ends.

The host drives the device in jitted calls of N decode steps (`steps_per_call`) over S slots
(`slots`). Between calls it takes the rows that ended (a stop token, or the request's length limit),
frees their slots, gives each free slot the next pending request and prefills that request's prompt
(in chunks of `prefill_chunk` tokens) into the slot's cache row. No call waits for the slowest row
of a batch: a slot idles at most the rest of one call after its row ends.

Our choices:
  - A request carries its own PRNG key; its t-th response token is drawn with fold_in(key, t).
    Which slot serves a request, and what else runs beside it, therefore does not change its tokens
    (up to float rounding of the batched matmuls: rows compute the same function, but not always
    the same bits).
  - The prompt's last token is not prefilled: the first decode step feeds it and draws response
    token 0 from its logits. A decode step is then always (token in, logits out, token drawn), and a
    prefill needs no output head.
  - Fixed shapes: a decode call compiles once per (S, N, width bucket), a prefill call once per
    (rows bucket, chunk, width bucket); widths are `num_buckets` evenly spaced lengths up to the
    cache length L (`ar3po_jax.engine.live` gives the attention cost per width), prefill rows are
    powers of two up to S. Sampling settings are static, as in `sampling.sample`.
  - Log-probs are float32 log_softmax(logits / temperature) of the drawn token, before top-p / top-k
    truncation (greedy uses temperature 1), as in `sampling.sample`.
  - The host reads each call's tokens back before the next call (one device-to-host sync per N
    steps); overlapping the next call with that read is not done.

Metrics (`metrics()`, cumulative since construction or `reset_metrics()`):
  rollout/slot_utilization   live row-steps / all row-steps of the decode calls
  rollout/tokens_per_s       response tokens / seconds inside engine iterations (prefill included)
  engine/decode_calls, engine/prefill_calls, engine/tokens, engine/seconds, engine/compiled_widths
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Hashable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax.engine.live import LiveTransformer
from ar3po_jax.models.transformer import Transformer, init_cache
from ar3po_jax.sampling import SamplingParams, filter_logits

FINISH_REASONS = ("stop", "length")


@dataclasses.dataclass(frozen=True)
class EngineConfig:
  """Static shapes of the engine (changing one compiles new variants).

  max_prompt_len: the longest prompt a request may have (tokens).
  max_new_tokens: the longest response; a request may ask for fewer.
  """

  slots: int = 64
  steps_per_call: int = 16
  max_prompt_len: int = 64
  max_new_tokens: int = 128
  prefill_chunk: int = 64
  num_buckets: int = 8

  def __post_init__(self):
    for name in ("slots", "steps_per_call", "max_prompt_len", "max_new_tokens", "prefill_chunk", "num_buckets"):
      if getattr(self, name) < 1:
        raise ValueError(f"EngineConfig.{name} must be >= 1, got {getattr(self, name)}")

  @property
  def cache_len(self) -> int:
    return _round_up(self.max_prompt_len + self.max_new_tokens, 8)

  @property
  def widths(self) -> tuple[int, ...]:
    """The attention width buckets: evenly spaced multiples of 8, the last the cache length."""
    granule = _round_up(-(-self.cache_len // self.num_buckets), 8)
    return tuple(sorted({min(self.cache_len, granule * i) for i in range(1, self.num_buckets + 1)}))

  def width_for(self, columns: int) -> int:
    for w in self.widths:
      if w >= columns:
        return w
    raise ValueError(f"{columns} cache columns exceed the cache length {self.cache_len}")


@dataclasses.dataclass
class Request:
  """One response to generate.

  uid: any hashable id, returned with the result.
  prompt: int32 [Tp] token ids, 1 <= Tp <= max_prompt_len.
  key: a PRNG key (typed or raw uint32 key data); token t is drawn with fold_in(key, t).
  max_new_tokens: this request's length limit (None: the engine's).
  """

  uid: Hashable
  prompt: np.ndarray
  key: jax.Array
  max_new_tokens: int | None = None


@dataclasses.dataclass
class Finished:
  """A finished request: tokens int32 [n] (the stop token included when one ended it),
  logprobs float32 [n], finish_reason "stop" (a stop token) or "length" (the limit)."""

  uid: Hashable
  tokens: np.ndarray
  logprobs: np.ndarray
  finish_reason: str

  @property
  def length(self) -> int:
    return int(len(self.tokens))

  @property
  def truncated(self) -> bool:
    return self.finish_reason == "length"


def _round_up(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


def stop_ids_of(sampling: SamplingParams) -> tuple[int, ...]:
  """The stop tokens of a SamplingParams, as plain ints."""
  return tuple(int(i) for i in sampling.stop_ids)


class DrawParams(NamedTuple):
  """The part of SamplingParams a decode step uses (static: the length limit and stop tokens are not,
  so changing those compiles nothing new)."""

  temperature: float
  top_p: float
  top_k: int
  pad_id: int

  @classmethod
  def of(cls, sampling: SamplingParams) -> "DrawParams":
    return cls(float(sampling.temperature), float(sampling.top_p), int(sampling.top_k), int(sampling.pad_id))


def draw(logits_SxV: jax.Array, keys_S: jax.Array, sampling: DrawParams) -> tuple[jax.Array, jax.Array]:
  """One token per row from its own key; returns (token_S int32, float32 logprob_S under the
  untruncated distribution at the sampling temperature)."""
  temperature = sampling.temperature if sampling.temperature > 0 else 1.0
  scaled_SxV = logits_SxV.astype(jnp.float32) / temperature
  logprobs_SxV = jax.nn.log_softmax(scaled_SxV, axis=-1)
  if sampling.temperature <= 0:
    token_S = jnp.argmax(logits_SxV, axis=-1)
  else:
    filtered_SxV = filter_logits(scaled_SxV, sampling.top_p, sampling.top_k)
    token_S = jax.vmap(lambda key, row: jax.random.categorical(key, row))(keys_S, filtered_SxV)
  token_S = token_S.astype(jnp.int32)
  return token_S, jnp.take_along_axis(logprobs_SxV, token_S[:, None], axis=-1)[:, 0]


@functools.partial(jax.jit, static_argnames=("model", "width"), donate_argnames=("cache",))
def prefill(weights, cache, tokens_PxC, positions_PxC, rows_P, *, model: Transformer, width: int):
  """Writes prompt chunks into their slots' cache rows (padding: row S or position L, dropped)."""
  live_model = LiveTransformer(model.config)
  _, cache = live_model.apply({"params": weights}, tokens_PxC, positions_PxC, cache, rows_P, width, head=False)
  return cache


@functools.partial(
    jax.jit, static_argnames=("model", "steps", "width", "sampling"), donate_argnames=("cache",)
)
def decode(
    weights,
    cache,
    token_S,
    pos_S,
    count_S,
    limit_S,
    live_S,
    key_data_S,
    stop_ids_K,
    *,
    model: Transformer,
    steps: int,
    width: int,
    sampling: DrawParams,
):
  """`steps` decode steps over all slots.

  token_S: the token each slot feeds next, at position pos_S (its cache column).
  count_S: response tokens the slot's request has so far; limit_S: its length limit.
  live_S: the slot decodes; idle slots compute on (fixed shape) but write nothing and emit nothing.
  key_data_S: the requests' raw keys; token t of a request is drawn with fold_in(key, t).
  stop_ids_K: int32, the tokens that end a row (an argument, so other stop tokens compile nothing).
  Returns (cache, tokens_SxN, logprobs_SxN, emitted_SxN, (token_S, pos_S, count_S, live_S) after).
  """
  cache_len = cache[0]["k"].shape[1]
  keys_S = jax.random.wrap_key_data(key_data_S)
  live_model = LiveTransformer(model.config)

  def step(carry, _):
    cache, token_S, pos_S, count_S, live_S = carry
    write_S = jnp.where(live_S, pos_S, cache_len)  # idle slots: out of range, dropped
    logits_Sx1xV, cache = live_model.apply({"params": weights}, token_S[:, None], write_S[:, None], cache, None, width)
    new_S, logprob_S = draw(logits_Sx1xV[:, 0], jax.vmap(jax.random.fold_in)(keys_S, count_S), sampling)
    new_S = jnp.where(live_S, new_S, sampling.pad_id)
    logprob_S = jnp.where(live_S, logprob_S, 0.0)
    count_S = count_S + live_S
    ended_S = live_S & (jnp.any(new_S[:, None] == stop_ids_K[None, :], axis=1) | (count_S >= limit_S))
    emitted_S = live_S
    pos_S = pos_S + live_S
    token_S = jnp.where(live_S, new_S, token_S)
    live_S = live_S & ~ended_S
    return (cache, token_S, pos_S, count_S, live_S), (new_S, logprob_S, emitted_S)

  carry = (cache, token_S, pos_S, count_S, live_S)
  (cache, token_S, pos_S, count_S, live_S), (tokens_NxS, logprobs_NxS, emitted_NxS) = jax.lax.scan(
      step, carry, None, length=steps
  )
  return cache, tokens_NxS.T, logprobs_NxS.T, emitted_NxS.T, (token_S, pos_S, count_S, live_S)


class Engine:
  """Continuous batching over `config.slots` decode slots with a streaming interface.

  submit(requests) queues requests (FIFO); poll() runs one iteration (refill free slots, prefill,
  one decode call) and returns the requests that finished in it; drain() polls until every
  submitted request finished. `params` may be replaced between polls (the training loop's update):
  rows in flight then continue under the new weights, so replace them only when idle for on-policy
  rollouts.
  """

  def __init__(
      self,
      model: Transformer,
      params,
      config: EngineConfig,
      sampling: SamplingParams,
      stop_ids: Sequence[int] | None = None,
      cache_sharding=None,
  ):
    self.model, self.params, self.config, self.sampling = model, params, config, sampling
    self.cache_sharding = cache_sharding  # where the KV cache [S, L, K, H] lives (None: default device)
    self.stop_ids = tuple(int(i) for i in stop_ids) if stop_ids is not None else stop_ids_of(sampling)
    if not self.stop_ids:
      raise ValueError("Engine: stop_ids must name at least one token")
    S = config.slots
    self._cache = None  # created on first use, then carried (donated) from call to call
    self._pending: collections.deque[Request] = collections.deque()
    self._request: list[Request | None] = [None] * S
    self._prefilled = np.zeros(S, np.int64)  # prompt tokens written to the slot's cache row
    self._token = np.zeros(S, np.int32)
    self._pos = np.zeros(S, np.int32)
    self._count = np.zeros(S, np.int32)
    self._limit = np.ones(S, np.int32)
    self._live = np.zeros(S, bool)
    self._key_data: np.ndarray | None = None
    self._out_tokens: list[list[np.ndarray]] = [[] for _ in range(S)]
    self._out_logprobs: list[list[np.ndarray]] = [[] for _ in range(S)]
    self.reset_metrics()

  # ---- streaming interface

  def submit(self, requests: Sequence[Request]) -> None:
    c = self.config
    for r in requests:
      prompt = np.asarray(r.prompt, np.int32).reshape(-1)
      if not 1 <= len(prompt) <= c.max_prompt_len:
        raise ValueError(
            f"request {r.uid!r}: prompt of {len(prompt)} tokens, must be 1 to max_prompt_len={c.max_prompt_len}"
        )
      limit = c.max_new_tokens if r.max_new_tokens is None else int(r.max_new_tokens)
      if not 1 <= limit <= c.max_new_tokens:
        raise ValueError(f"request {r.uid!r}: max_new_tokens={limit} must be 1 to {c.max_new_tokens}")
      key = jax.random.key_data(r.key) if jax.dtypes.issubdtype(r.key.dtype, jax.dtypes.prng_key) else r.key
      self._pending.append(Request(r.uid, prompt, np.asarray(key, np.uint32), limit))

  @property
  def busy(self) -> bool:
    return bool(self._pending) or any(r is not None for r in self._request)

  def poll(self) -> list[Finished]:
    """One iteration: refill, prefill, one decode call of N steps; the requests finished in it."""
    if not self.busy:
      return []
    start = time.perf_counter()
    self._refill()
    self._prefill_all()
    finished = self._decode_call()
    self._seconds += time.perf_counter() - start
    return finished

  def drain(self) -> list[Finished]:
    finished = []
    while self.busy:
      finished.extend(self.poll())
    return finished

  def generate(self, requests: Sequence[Request]) -> list[Finished]:
    """Runs `requests` to the end (with any already queued); results in the order of `requests`."""
    self.submit(requests)
    by_uid = {f.uid: f for f in self.drain()}
    return [by_uid[r.uid] for r in requests]

  # ---- metrics

  def reset_metrics(self) -> None:
    self._row_steps = self._live_row_steps = self._tokens = 0
    self._decode_calls = self._prefill_calls = 0
    self._seconds = 0.0
    self._widths: set[int] = set()

  def metrics(self) -> dict[str, float]:
    return {
        "rollout/slot_utilization": self._live_row_steps / self._row_steps if self._row_steps else float("nan"),
        "rollout/tokens_per_s": self._tokens / self._seconds if self._seconds else float("nan"),
        "engine/decode_calls": float(self._decode_calls),
        "engine/prefill_calls": float(self._prefill_calls),
        "engine/tokens": float(self._tokens),
        "engine/seconds": self._seconds,
        "engine/compiled_widths": float(len(self._widths)),
    }

  # ---- internals

  def _ensure_cache(self):
    if self._cache is None:
      self._cache = init_cache(self.model.config, self.config.slots, self.config.cache_len)
      if self.cache_sharding is not None:
        self._cache = jax.device_put(self._cache, self.cache_sharding)
    if self._key_data is None and self._pending:
      self._key_data = np.zeros((self.config.slots,) + self._pending[0].key.shape, np.uint32)

  def _refill(self) -> None:
    self._ensure_cache()
    for s in range(self.config.slots):
      if self._request[s] is None and self._pending:
        r = self._pending.popleft()
        self._request[s] = r
        self._prefilled[s] = 0
        self._key_data[s] = r.key
        self._out_tokens[s], self._out_logprobs[s] = [], []

  def _prefill_all(self) -> None:
    """Prefills every assigned slot's prompt but its last token, one chunk per row per call."""
    c = self.config
    C, S, L = c.prefill_chunk, c.slots, c.cache_len
    while True:
      todo = [s for s in range(S) if self._request[s] is not None and not self._live[s]
              and self._prefilled[s] < len(self._request[s].prompt) - 1]
      if not todo:
        break
      rows = min(S, 1 << (len(todo) - 1).bit_length())
      tokens = np.zeros((rows, C), np.int32)
      positions = np.full((rows, C), L, np.int32)
      slot_ids = np.full((rows,), S, np.int32)
      furthest = 0
      for i, s in enumerate(todo[:rows]):
        begin, end = self._prefilled[s], min(self._prefilled[s] + C, len(self._request[s].prompt) - 1)
        tokens[i, : end - begin] = self._request[s].prompt[begin:end]
        positions[i, : end - begin] = np.arange(begin, end)
        slot_ids[i] = s
        self._prefilled[s] = end
        furthest = max(furthest, end)
      width = c.width_for(furthest)
      self._cache = prefill(self.params, self._cache, tokens, positions, slot_ids, model=self.model, width=width)
      self._prefill_calls += 1
    for s in range(S):  # prompts written: their slots start decoding at the last prompt token
      r = self._request[s]
      if r is not None and not self._live[s] and self._prefilled[s] >= len(r.prompt) - 1:
        self._token[s] = r.prompt[-1]
        self._pos[s] = len(r.prompt) - 1
        self._count[s] = 0
        self._limit[s] = r.max_new_tokens
        self._live[s] = True

  def _decode_call(self) -> list[Finished]:
    c = self.config
    N = c.steps_per_call
    live = np.flatnonzero(self._live)
    if not len(live):
      return []
    # The furthest column any live row writes (and reads) in this call.
    furthest = int(np.max(np.minimum(self._pos[live] + N, self._pos[live] - self._count[live] + self._limit[live])))
    width = c.width_for(furthest)
    self._widths.add(width)
    self._cache, tokens, logprobs, emitted, after = decode(
        self.params, self._cache, self._token, self._pos, self._count, self._limit, self._live, self._key_data,
        np.asarray(self.stop_ids, np.int32),
        model=self.model, steps=N, width=width, sampling=DrawParams.of(self.sampling),
    )
    tokens, logprobs, emitted = np.asarray(tokens), np.asarray(logprobs), np.asarray(emitted)
    was_live = self._live.copy()
    self._token, self._pos, self._count, self._live = (np.array(a) for a in after)
    self._decode_calls += 1
    self._row_steps += emitted.size
    self._live_row_steps += int(emitted.sum())
    self._tokens += int(emitted.sum())

    finished = []
    for s in np.flatnonzero(was_live):
      n = int(emitted[s].sum())
      self._out_tokens[s].append(tokens[s, :n])
      self._out_logprobs[s].append(logprobs[s, :n].astype(np.float32))
      if not self._live[s]:
        out = np.concatenate(self._out_tokens[s]).astype(np.int32)
        reason = "stop" if int(out[-1]) in self.stop_ids else "length"
        finished.append(Finished(self._request[s].uid, out, np.concatenate(self._out_logprobs[s]), reason))
        self._request[s] = None
    return finished
