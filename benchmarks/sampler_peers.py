"""The three generators the sampler benchmark compares, behind one signature:

  generate(prompts_BxTp: np.ndarray int32, new_tokens: int) -> np.ndarray int32 [B, new_tokens]

Every one decodes greedily, exactly `new_tokens` tokens (no end-of-sequence stop: the eos id is
one the vocabulary never produces), from the same prompts and the same weights, and returns only
after the tokens are on the host, so a timed call is the whole user-visible cost.

The peers load the weights through their own loaders from the Hugging Face checkpoint that
`hf.save_checkpoint` wrote: transformers' `from_pretrained`, Tunix's Qwen2 safetensors loader.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax.models.transformer import ModelConfig, Transformer
from ar3po_jax.sampling import SamplingParams, sample


def ours(config: ModelConfig, params: dict):
  model = Transformer(config)
  weights = jax.device_put(params)

  def generate(prompts_BxTp: np.ndarray, new_tokens: int) -> np.ndarray:
    prompts = jnp.asarray(prompts_BxTp, jnp.int32)
    s = SamplingParams(max_new_tokens=new_tokens, temperature=0.0, stop_ids=config.vocab_size, pad_id=0)
    out = sample(weights, prompts, jnp.ones(prompts.shape, bool), jax.random.key(0), model=model, params_s=s)
    return np.asarray(out.tokens_BxTr)

  return generate


def first_logits_ours(config: ModelConfig, params: dict, prompts_BxTp: np.ndarray) -> np.ndarray:
  from ar3po_jax.models import hf

  return np.asarray(hf.Policy.create(config, params).logits(prompts_BxTp)[:, -1])


class _IdTokenizer:
  """Tunix's sampler takes strings; this one spells token ids as decimal words, so the prompts
  reach the model unchanged. No BOS (bos_id 0 is falsy to Tunix), pad 0, which no prompt holds."""

  def __init__(self, eos_id: int):
    self._eos = eos_id

  def encode(self, text: str, **_) -> list[int]:
    return [int(w) for w in text.split()]

  def decode(self, ids, **_) -> str:
    return " ".join(str(int(i)) for i in ids)

  def bos_id(self) -> int:
    return 0

  def eos_id(self) -> int:
    return self._eos

  def pad_id(self) -> int:
    return 0


def _tunix_model(config: ModelConfig, checkpoint: str):
  from tunix.models.qwen2 import model as qwen2_model, params as qwen2_params

  tunix_config = qwen2_model.ModelConfig(
      num_layers=config.n_layers,
      vocab_size=config.vocab_size,
      embed_dim=config.d_model,
      hidden_dim=config.d_ff,
      num_heads=config.n_heads,
      head_dim=config.head_dim,
      num_kv_heads=config.n_kv_heads,
      rope_theta=int(config.rope_theta),
      norm_eps=config.norm_eps,
      use_tied_embedding=config.tie_embeddings,
  )
  return qwen2_params.create_model_from_safe_tensors(checkpoint, tunix_config, dtype=jnp.float32)


def tunix(config: ModelConfig, checkpoint: str, max_prompt: int, max_new_tokens: int):
  from tunix.generate import sampler as tunix_sampler

  model = _tunix_model(config, checkpoint)
  cache = tunix_sampler.CacheConfig(
      cache_size=max_prompt + max_new_tokens, num_layers=config.n_layers, num_kv_heads=config.n_kv_heads, head_dim=config.head_dim
  )
  never = config.vocab_size
  sampler = tunix_sampler.Sampler(model, _IdTokenizer(never), cache)

  def generate(prompts_BxTp: np.ndarray, new_tokens: int) -> np.ndarray:
    texts = [" ".join(map(str, row)) for row in prompts_BxTp]
    out = sampler(texts, max_generation_steps=new_tokens, max_prompt_length=prompts_BxTp.shape[1], eos_tokens=[never], temperature=0.0)
    return np.stack([np.asarray(t[:new_tokens]) for t in out.tokens]).astype(np.int32)

  return generate


def first_logits_tunix(config: ModelConfig, checkpoint: str, prompts_BxTp: np.ndarray) -> np.ndarray:
  model = _tunix_model(config, checkpoint)
  B, T = prompts_BxTp.shape
  positions = jnp.broadcast_to(jnp.arange(T), (B, T))
  causal = jnp.broadcast_to(jnp.tril(jnp.ones((T, T), bool)), (B, T, T))
  logits, _ = model(jnp.asarray(prompts_BxTp), positions, None, causal)
  return np.asarray(logits[:, -1])


@functools.cache
def _torch(threads: int):
  import torch

  torch.set_num_threads(threads)
  return torch


def _hf_model(checkpoint: str, threads: int):
  torch = _torch(threads)
  from transformers import Qwen2ForCausalLM

  return torch, Qwen2ForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()


def transformers(checkpoint: str, threads: int):
  torch, model = _hf_model(checkpoint, threads)

  # The exported checkpoint names no eos token, so generate stops only at max_new_tokens (an
  # out-of-vocabulary eos id would crash its logits processors).
  def generate(prompts_BxTp: np.ndarray, new_tokens: int) -> np.ndarray:
    ids = torch.from_numpy(np.asarray(prompts_BxTp, np.int64))
    with torch.inference_mode():
      out = model.generate(
          ids,
          attention_mask=torch.ones_like(ids),
          max_new_tokens=new_tokens,
          do_sample=False,
          pad_token_id=0,
      )
    return out[:, ids.shape[1] :].numpy().astype(np.int32)

  return generate


def first_logits_transformers(checkpoint: str, threads: int, prompts_BxTp: np.ndarray) -> np.ndarray:
  torch, model = _hf_model(checkpoint, threads)
  with torch.inference_mode():
    return model(torch.from_numpy(np.asarray(prompts_BxTp, np.int64))).logits[:, -1].numpy()
