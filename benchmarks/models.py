"""The models the sampler benchmarks run on, shared by benchmarks/sampler.py, sampler_profile.py and
engine.py (those define absl flags at import, so they cannot import one another)."""

from __future__ import annotations

from ar3po_jax.models.transformer import ModelConfig

# Qwen2-style, about 21M parameters. The vocabulary is kept at 8192 so that the embedding (tied
# with the output head) is a fifth of the parameters, not most of them as with Qwen's 152k.
MODEL_20M = ModelConfig(
    vocab_size=8192, d_model=512, n_layers=6, n_heads=8, n_kv_heads=2, head_dim=64, d_ff=1408, qkv_bias=True,
    tie_embeddings=True,
)
MODEL_TINY = ModelConfig(
    vocab_size=512, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128, qkv_bias=True,
    tie_embeddings=True,
)
