"""The host side of the sampling kernel: the `types.Sampler` the scheduler calls.

It expands (prompt, count) requests into rows, pads them to a row bucket, launches the jitted kernel
once per call and cuts the rows back into `Response`s with decoded text.

On several processes every process makes the same call with the same prompts: the rows become one
global array, each process supplying its own devices' shards, and every process gets all the
outputs back (see `distributed`), so the scheduler on every host sees the same responses.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax import batching, distributed
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.types import Prompt, Response
from ar3po_jax.sampling import SamplingParams, sample
from ar3po_jax.tokenizers import Tokenizer


class PolicySampler:
  """Samples from `self.params`, which the training loop replaces after every update.

  row_multiple: rows of every launch are a multiple of this (the data-parallel size).
  batch_sharding: where to place the prompt arrays (None: default device).
  cache_sharding: where the kernel keeps its KV cache (None: the compiler's choice).
  """

  def __init__(
      self,
      model: Transformer,
      params,
      tokenizer: Tokenizer,
      sampling: SamplingParams,
      rng: jax.Array,
      row_multiple: int = 1,
      batch_sharding=None,
      cache_sharding=None,
  ):
    self.model, self.params, self.tokenizer, self.sampling = model, params, tokenizer, sampling
    self.rng = rng
    self.row_multiple = row_multiple
    self.batch_sharding = batch_sharding
    self.cache_sharding = cache_sharding
    self.launch_shapes: set[tuple[int, int]] = set()

  def state_dict(self) -> dict:
    """The sampling key (the params come from the TrainState)."""
    key = self.rng
    return {"impl": str(jax.random.key_impl(key)), "data": np.asarray(jax.random.key_data(key)).tolist()}

  def load_state_dict(self, state: dict) -> None:
    self.rng = jax.random.wrap_key_data(np.asarray(state["data"], np.uint32), impl=state["impl"])

  def generate(self, prompt_ids: Sequence[np.ndarray], sampling: SamplingParams | None = None):
    """Raw kernel outputs (numpy) for one row per prompt, padding rows dropped."""
    sampling = sampling or self.sampling
    rows = batching.sampler_rows(len(prompt_ids), self.row_multiple)
    slots = batching.prompt_slots([len(p) for p in prompt_ids])
    tokens, mask = batching.left_pad(prompt_ids, slots, self.tokenizer.pad_id, rows)
    if self.batch_sharding is not None:
      tokens, mask = distributed.put((tokens, mask), self.batch_sharding)
    else:
      tokens, mask = jnp.asarray(tokens), jnp.asarray(mask)
    self.rng, key = jax.random.split(self.rng)
    self.launch_shapes.add((rows, slots))
    out = distributed.to_host(
        sample(self.params, tokens, mask, key, model=self.model, params_s=sampling, cache_sharding=self.cache_sharding)
    )
    n = len(prompt_ids)
    return out.tokens_BxTr[:n], out.logprobs_BxTr[:n], out.lengths_B[:n], out.truncated_B[:n]

  def __call__(self, prompts: Sequence[Prompt], counts: Sequence[int], step: int) -> list[list[Response]]:
    if len(prompts) != len(counts):
      raise ValueError(f"PolicySampler: {len(prompts)} prompts but {len(counts)} counts")
    row_prompts = [p.token_ids for p, c in zip(prompts, counts) for _ in range(int(c))]
    results: list[list[Response]] = [[] for _ in prompts]
    if not row_prompts:
      return results
    tokens, logprobs, lengths, truncated = self.generate(row_prompts)
    row = 0
    for i, count in enumerate(counts):
      for _ in range(int(count)):
        n = int(lengths[row])
        ids = tokens[row, :n].astype(np.int32)
        results[i].append(
            Response(
                token_ids=ids,
                logprobs=logprobs[row, :n].astype(np.float32),
                text=self.tokenizer.decode(ids),
                truncated=bool(truncated[row]),
                step=step,
            )
        )
        row += 1
    return results
