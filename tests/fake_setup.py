"""A FAKE task for in-process tests of the RL loop: a character tokenizer, a tiny random transformer,
digit prompts, and a verifier that rewards responses by their first character, so that groups are
mixed from the first step without any training."""

from __future__ import annotations

import jax
import numpy as np

from ar3po_jax.models.transformer import ModelConfig, Transformer, init_params
from ar3po_jax.types import Prompt

CHARS = "0123456789+=ab"


class CharTokenizer:
  """pad 0, bos 1, eos 2, then one id per character of CHARS."""

  pad_id, bos_id, eos_id = 0, 1, 2
  stop_ids = (2,)
  vocab_size = 3 + len(CHARS)
  path = ""

  def encode(self, text: str) -> list[int]:
    return [3 + CHARS.index(c) for c in text]

  def decode(self, ids) -> str:
    out = []
    for i in ids:
      i = int(i)
      if i == self.eos_id:
        break
      if i >= 3:
        out.append(CHARS[i - 3])
    return "".join(out)


class FirstCharVerifier:
  """1.0 when the response starts with an even digit or 'a' (about half of a random policy's)."""

  def __call__(self, texts, answers) -> np.ndarray:
    del answers
    return np.asarray([1.0 if t[:1] in ("0", "2", "4", "6", "8", "a") else 0.0 for t in texts], np.float32)


MODEL = ModelConfig(
    vocab_size=CharTokenizer.vocab_size, d_model=32, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=16, d_ff=64,
    qkv_bias=True, tie_embeddings=True,
)


def parts(seed: int = 0):
  """(tokenizer, model, params, train prompts, eval prompts), the same for the same seed."""
  tokenizer = CharTokenizer()
  model = Transformer(MODEL)
  params = init_params(MODEL, jax.random.key(seed))
  rng = np.random.default_rng(seed)

  def prompt(uid):
    a, b = rng.integers(0, 50, 2)
    text = f"{a}+{b}="
    ids = np.asarray([tokenizer.bos_id] + tokenizer.encode(text), np.int32)
    return Prompt(uid=uid, token_ids=ids, answer=str(a + b), text=text)

  train = [prompt(f"train/{i}") for i in range(12)]
  evals = [prompt(f"eval/{i}") for i in range(8)]
  return tokenizer, model, params, train, evals


def config(strategy: str = "ar3po", steps: int = 3):
  """configs/tiny.py shrunk to the fake task: 4 prompts a step, 8 new tokens, no checkpoints."""
  from ar3po_jax import config_validation
  from configs import tiny

  c = tiny.get_config(strategy)
  c.rl.steps = steps
  c.rl.row_buckets = 2
  c.rl.response_buckets = 1
  c.rollout.batch_prompts = 4
  c.rollout.group_size = 4
  c.rollout.max_new_tokens = 8
  c.rollout.ar3po.stages, c.rollout.ar3po.k = 2, 2
  c.rollout.dapo.gen_batch_prompts = 4
  c.rollout.dapo.overlong_buffer = 2
  c.rollout.aero.n_explore, c.rollout.aero.budget = 4, 6
  c.rl.lr = 1e-2
  c.rl.warmup_steps = 0
  c.eval.every = 2
  c.eval.num_prompts = 8
  c.eval.batch_size = 8
  c.checkpoint.enabled = False
  c.log.progress = False
  c.log.tensorboard = False
  return config_validation.resolve(c)
