"""Small shared fixtures for the model tests: a tiny config and left-padded random prompts."""

import jax
import numpy as np

from ar3po_jax.models.transformer import ModelConfig, Transformer, init_params

TINY = ModelConfig(vocab_size=32, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=8, d_ff=64, qkv_bias=True)


def tiny_model(seed: int = 0, **overrides):
  import dataclasses

  config = dataclasses.replace(TINY, **overrides)
  return Transformer(config), init_params(config, jax.random.key(seed))


def left_padded_prompts(lengths, slots, vocab=32, seed=0, low=4):
  rng = np.random.default_rng(seed)
  tokens = np.zeros((len(lengths), slots), np.int32)
  mask = np.zeros((len(lengths), slots), bool)
  for i, n in enumerate(lengths):
    tokens[i, slots - n :] = rng.integers(low, vocab, n)
    mask[i, slots - n :] = True
  return tokens, mask
