"""Tiny Hugging Face style artifacts built in-process: a character-level tokenizer.json with Qwen's
special tokens, and a random Qwen2 checkpoint folder that uses it."""

from __future__ import annotations

import json
import os

import jax

from ar3po_jax.models import hf
from ar3po_jax.models.transformer import ModelConfig, init_params

CHARS = "0123456789 +-*/=.,?:$\\{}()abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def tokenizer_json() -> str:
  from tokenizers import Tokenizer, decoders, models

  backend = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(CHARS)}, merges=[]))
  backend.decoder = decoders.Fuse()
  backend.add_special_tokens(list(SPECIAL))
  return backend.to_str()


def write_tokenizer(folder: str) -> None:
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "tokenizer.json"), "w") as f:
    f.write(tokenizer_json())
  with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
    json.dump({"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": {"content": "<|endoftext|>"}}, f)


def write_checkpoint(folder: str, seed: int = 0) -> hf.Policy:
  """A random 1-layer Qwen2 checkpoint with the tiny tokenizer beside it."""
  config = ModelConfig(
      vocab_size=len(CHARS) + len(SPECIAL), d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8, d_ff=32,
      qkv_bias=True,
  )
  policy = hf.Policy.create(config, init_params(config, jax.random.key(seed)))
  hf.save_checkpoint(policy, folder)
  write_tokenizer(folder)
  return policy
