r"""Makes the checkpoint-parity fixtures: tiny random Qwen2 and Llama models saved by `transformers`,
with the logits `transformers` computes for fixed token ids. The tests compare the Flax decoder
against these files and need no torch.

  pip install -r requirements-fixtures.txt
  python scripts/make_hf_fixtures.py            # writes tests/fixtures/hf/

Each fixture folder holds config.json, safetensors weights (sharded with an index where noted),
tokens.npy [B, T] int32 and logits.npy [B, T, V] float32. Weights are redrawn at unit-ish scale,
because transformers' 0.02-std init gives near-uniform logits that would hide a wrong wiring.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
import transformers

VARIANTS = {
    # Qwen2.5-style: q/k/v bias, GQA, tied embeddings (as the 0.5B-3B models).
    "qwen2_tied": dict(
        arch="qwen2",
        config=dict(tie_word_embeddings=True, rope_theta=10_000.0),
        shard=None,
    ),
    # Qwen2.5-7B style: untied head, large rope_theta; written in shards with an index file.
    "qwen2_sharded": dict(
        arch="qwen2",
        config=dict(tie_word_embeddings=False, rope_theta=1_000_000.0),
        shard="20KB",
    ),
    # Llama 3.1 style: llama3 RoPE scaling (a small original context so every band is exercised),
    # GQA, untied head, sharded.
    "llama31": dict(
        arch="llama",
        config=dict(
            tie_word_embeddings=False,
            rope_theta=10_000.0,
            rope_scaling=dict(
                rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position_embeddings=64,
            ),
        ),
        shard="24KB",
    ),
    # Llama 3.2 1B style: tied embeddings with llama3 scaling, and head_dim not hidden/heads.
    "llama32_tied": dict(
        arch="llama",
        config=dict(
            tie_word_embeddings=True,
            head_dim=16,
            rope_theta=500_000.0,
            rope_scaling=dict(
                rope_type="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
        ),
        shard=None,
    ),
}

COMMON = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-6,
    max_position_embeddings=256,
)
BATCH, TIME = 2, 20


def _randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("norm.weight") or "layernorm" in name:
        p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=generator))
      elif name.endswith("bias"):
        p.copy_(0.3 * torch.randn(p.shape, generator=generator))
      else:
        # Embeddings are also the tied output head: 0.3 keeps tied logits near the untied ones' scale.
        std = 0.3 if "embed" in name else p.shape[-1] ** -0.5
        p.copy_(std * torch.randn(p.shape, generator=generator))


def make(name: str, spec: dict, out_dir: str, seed: int) -> dict:
  generator = torch.Generator().manual_seed(seed)
  cls_config = transformers.Qwen2Config if spec["arch"] == "qwen2" else transformers.LlamaConfig
  cls_model = transformers.Qwen2ForCausalLM if spec["arch"] == "qwen2" else transformers.LlamaForCausalLM
  config = cls_config(**COMMON, **spec["config"])
  torch.manual_seed(seed)
  model = cls_model(config).float().eval()
  _randomize(model, generator)
  if config.tie_word_embeddings:
    model.tie_weights()
  tokens = torch.randint(0, COMMON["vocab_size"], (BATCH, TIME), generator=generator)
  with torch.no_grad():
    logits = model(input_ids=tokens).logits.float().numpy()
  path = os.path.join(out_dir, name)
  os.makedirs(path, exist_ok=True)
  kwargs = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
  model.save_pretrained(path, **kwargs)
  np.save(os.path.join(path, "tokens.npy"), tokens.numpy().astype(np.int32))
  np.save(os.path.join(path, "logits.npy"), logits.astype(np.float32))
  return {"arch": spec["arch"], "sharded": bool(spec["shard"]), "logit_abs_max": float(np.abs(logits).max())}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf"))
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  manifest = {"transformers": transformers.__version__, "torch": torch.__version__, "variants": {}}
  for i, (name, spec) in enumerate(VARIANTS.items()):
    manifest["variants"][name] = make(name, spec, args.out, args.seed + i)
  with open(os.path.join(args.out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
  print(json.dumps(manifest, indent=1))


if __name__ == "__main__":
  main()
