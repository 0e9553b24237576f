"""A decoder-only transformer of the Llama / Qwen2 family, in Flax linen.

RMSNorm, rotary position embeddings (with Llama 3.1's frequency scaling), grouped-query attention,
SwiGLU, optional q/k/v bias (Qwen2), tied or untied embeddings. Parameter names follow the Hugging
Face layout (`layers_0/attn/q_proj/kernel`) so checkpoint import and regex sharding rules read alike.

One forward function serves training, scoring and decoding: the KV cache is an explicit argument,
never hidden module state, so the sampling kernel can carry it through `lax.while_loop` and give it
an explicit sharding. Without a cache the layer attends within the given tokens (training, scoring);
with one it writes the new keys and values at `cache_index` and attends over the whole cache.

Shapes: B batch, T new tokens, S cache slots, N query heads, K key/value heads, H head dim,
D model width, F feed-forward width, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

_MASKED = -1e30  # finite, so a fully masked (padding) query row gives no NaN


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int
  d_model: int
  n_layers: int
  n_heads: int
  n_kv_heads: int
  head_dim: int
  d_ff: int
  qkv_bias: bool = False
  tie_embeddings: bool = True
  rope_theta: float = 10_000.0
  norm_eps: float = 1e-6
  dtype: str = "float32"  # activations
  param_dtype: str = "float32"
  # Llama 3.1 style RoPE scaling: (factor, low_freq_factor, high_freq_factor, original_max_positions).
  rope_scaling: tuple[float, float, float, int] | None = None
  # Cacheless passes (training, scoring) run the layers as one lax.scan over their weights stacked
  # inside the pass: XLA sees one layer instead of n_layers copies (SmolLM2's update with a flattened
  # optimizer compiled in 126 s against 157 s unrolled on a CPU; benchmarks/scan_compile.py). The
  # parameter tree is the same either way; the sampler's cached passes stay unrolled.
  scan_layers: bool = False
  # With scan_layers: keep only each layer's input for the backward pass and recompute the rest of
  # its activations there (jax.checkpoint on the scanned layer): one more forward pass of compute for
  # activation memory of one layer instead of n_layers.
  remat: bool = False

  # The fields above that change how a pass executes, not the numbers it computes: a checkpoint, a
  # cached warm start or an HF folder's config.json does not depend on them.
  EXECUTION_FIELDS = ("scan_layers", "remat")

  def __post_init__(self):
    problems = []
    for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff"):
      if getattr(self, name) < 1:
        problems.append(f"model.{name} must be >= 1, got {getattr(self, name)}")
    if self.n_kv_heads >= 1 and self.n_heads % self.n_kv_heads:
      problems.append(f"model.n_heads ({self.n_heads}) must be a multiple of model.n_kv_heads ({self.n_kv_heads})")
    if self.head_dim % 2:
      problems.append(f"model.head_dim must be even for rotary embeddings, got {self.head_dim}")
    if self.remat and not self.scan_layers:
      problems.append("model.remat needs model.scan_layers (it checkpoints the scanned layer)")
    if problems:
      raise ValueError("; ".join(problems))

  @classmethod
  def from_config(cls, model_config: Any, vocab_size: int | None = None) -> "ModelConfig":
    """From the `config.model` ConfigDict; vocab_size fills in a config value of 0."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in model_config.items() if k in fields}
    if not values.get("vocab_size"):
      values["vocab_size"] = vocab_size or 0
    if values.get("rope_scaling") is not None:
      values["rope_scaling"] = tuple(values["rope_scaling"])
    return cls(**values)

  @property
  def num_params(self) -> int:
    attn = self.d_model * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
    if self.qkv_bias:
      attn += self.head_dim * (self.n_heads + 2 * self.n_kv_heads)
    per_layer = attn + 3 * self.d_model * self.d_ff + 2 * self.d_model
    embed = self.vocab_size * self.d_model * (1 if self.tie_embeddings else 2)
    return self.n_layers * per_layer + embed + self.d_model


def rope_frequencies(config: ModelConfig) -> jax.Array:
  """Inverse frequencies [H/2], with Llama 3.1's piecewise scaling when configured."""
  inv_freq = 1.0 / (config.rope_theta ** (jnp.arange(0, config.head_dim, 2, dtype=jnp.float32) / config.head_dim))
  if config.rope_scaling is None:
    return inv_freq
  factor, low_freq_factor, high_freq_factor, original_max = config.rope_scaling
  wavelen = 2 * math.pi / inv_freq
  low_freq_wavelen = original_max / low_freq_factor
  high_freq_wavelen = original_max / high_freq_factor
  smooth = (original_max / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
  scaled = jnp.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
  in_between = (wavelen <= low_freq_wavelen) & (wavelen >= high_freq_wavelen)
  return jnp.where(in_between, (1 - smooth) * inv_freq / factor + smooth * inv_freq, scaled)


def apply_rope(x_BxTxNxH: jax.Array, positions_BxT: jax.Array, inv_freq: jax.Array) -> jax.Array:
  """Rotate-half rotary embedding (the Hugging Face convention, for checkpoint parity)."""
  angles_BxTxH2 = positions_BxT[..., None].astype(jnp.float32) * inv_freq
  angles_BxTxH = jnp.concatenate([angles_BxTxH2, angles_BxTxH2], axis=-1)[:, :, None, :]
  x = x_BxTxNxH.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  return (x * jnp.cos(angles_BxTxH) + rotated * jnp.sin(angles_BxTxH)).astype(x_BxTxNxH.dtype)


class RMSNorm(nn.Module):
  eps: float
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.initializers.ones, (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (normed * scale.astype(jnp.float32)).astype(x.dtype)


def _dense(features: int, name: str, config: ModelConfig, use_bias: bool = False, std: float = 0.02) -> nn.Dense:
  return nn.Dense(
      features,
      use_bias=use_bias,
      name=name,
      dtype=jnp.dtype(config.dtype),
      param_dtype=jnp.dtype(config.param_dtype),
      kernel_init=nn.initializers.normal(std),
  )


def project_qkv(x_BxTxD, positions_BxT, c: ModelConfig):
  """Queries, keys and values of the tokens, rotated to their positions; called inside a compact module,
  whose q_proj, k_proj and v_proj parameters it creates."""
  B, T, _ = x_BxTxD.shape
  q = _dense(c.n_heads * c.head_dim, "q_proj", c, c.qkv_bias)(x_BxTxD).reshape(B, T, c.n_heads, c.head_dim)
  k = _dense(c.n_kv_heads * c.head_dim, "k_proj", c, c.qkv_bias)(x_BxTxD).reshape(B, T, c.n_kv_heads, c.head_dim)
  v = _dense(c.n_kv_heads * c.head_dim, "v_proj", c, c.qkv_bias)(x_BxTxD).reshape(B, T, c.n_kv_heads, c.head_dim)
  inv_freq = rope_frequencies(c)
  return apply_rope(q, positions_BxT, inv_freq), apply_rope(k, positions_BxT, inv_freq), v


def grouped_attention(q_BxTxNxH, keys_BxSxKxH, values_BxSxKxH, allowed_BxTxS, out_dtype):
  """Grouped-query attention of T queries over S keys, where allowed_BxTxS says which key each query may
  read; scores and softmax in float32. Returns [B, T, N * H] in out_dtype. Pure: the training model and
  the engine's live model (ar3po_jax/engine/live.py) differ only in how they build the keys and mask."""
  B, T, N, H = q_BxTxNxH.shape
  K = keys_BxSxKxH.shape[2]
  q_BxTxKxGxH = q_BxTxNxH.reshape(B, T, K, N // K, H)
  scores_BxKxGxTxS = jnp.einsum(
      "btkgh,bskh->bkgts", q_BxTxKxGxH, keys_BxSxKxH.astype(q_BxTxNxH.dtype), preferred_element_type=jnp.float32
  ) / math.sqrt(H)
  scores_BxKxGxTxS = jnp.where(allowed_BxTxS[:, None, None], scores_BxKxGxTxS, _MASKED)
  probs = jax.nn.softmax(scores_BxKxGxTxS, axis=-1).astype(values_BxSxKxH.dtype)
  out_BxTxKxGxH = jnp.einsum("bkgts,bskh->btkgh", probs, values_BxSxKxH)
  return out_BxTxKxGxH.reshape(B, T, N * H).astype(out_dtype)


class Attention(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD, positions_BxT, kv_mask_BxS, cache, cache_index):
    c = self.config
    T = x_BxTxD.shape[1]
    out_std = 0.02 / math.sqrt(2 * c.n_layers)
    q, k, v = project_qkv(x_BxTxD, positions_BxT, c)

    if cache is None:
      keys_BxSxKxH, values_BxSxKxH, new_cache = k, v, None
    else:
      keys_BxSxKxH = jax.lax.dynamic_update_slice_in_dim(cache["k"], k.astype(cache["k"].dtype), cache_index, axis=1)
      values_BxSxKxH = jax.lax.dynamic_update_slice_in_dim(cache["v"], v.astype(cache["v"].dtype), cache_index, axis=1)
      new_cache = {"k": keys_BxSxKxH, "v": values_BxSxKxH}

    S = keys_BxSxKxH.shape[1]
    query_slot_T = cache_index + jnp.arange(T)
    causal_TxS = jnp.arange(S)[None, :] <= query_slot_T[:, None]
    # A [B, T, S] mask is a full key mask per query (segments of a packed row); causality still applies.
    key_mask_BxTxS = kv_mask_BxS[:, None, :] if kv_mask_BxS.ndim == 2 else kv_mask_BxS
    allowed_BxTxS = causal_TxS[None] & key_mask_BxTxS
    out_BxTxD = grouped_attention(q, keys_BxSxKxH, values_BxSxKxH, allowed_BxTxS, x_BxTxD.dtype)
    return _dense(c.d_model, "o_proj", c, std=out_std)(out_BxTxD), new_cache


class MLP(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD):
    c = self.config
    gate = _dense(c.d_ff, "gate_proj", c)(x_BxTxD)
    up = _dense(c.d_ff, "up_proj", c)(x_BxTxD)
    return _dense(c.d_model, "down_proj", c, std=0.02 / math.sqrt(2 * c.n_layers))(nn.silu(gate) * up)


class Block(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD, positions_BxT, kv_mask_BxS, cache, cache_index):
    c = self.config
    h, new_cache = Attention(c, name="attn")(
        RMSNorm(c.norm_eps, jnp.dtype(c.param_dtype), name="input_norm")(x_BxTxD),
        positions_BxT, kv_mask_BxS, cache, cache_index,
    )
    x_BxTxD = x_BxTxD + h
    x_BxTxD = x_BxTxD + MLP(c, name="mlp")(
        RMSNorm(c.norm_eps, jnp.dtype(c.param_dtype), name="post_attn_norm")(x_BxTxD)
    )
    return x_BxTxD, new_cache


class Transformer(nn.Module):
  """tokens [B, T] -> float32 logits [B, T, V] (and the updated cache when one is given).

  positions_BxT: each token's position in its own sequence (left padding does not count).
  kv_mask_BxS: which key slots hold real tokens: the given tokens without a cache, the cache slots
    with one (S = cache length). Without a cache it may also be a [B, T, T] mask of the keys each
    query may see (a packed row: only its own segment, `sampling.segment_attention_mask`); the causal
    mask applies on top either way.
  cache: None, or a list over layers of {"k", "v"} arrays [B, S, K, H]; cache_index is the slot of
    the first given token.
  last_only: logits of the last position only, [B, 1, V] (a prefill needs no others; the output
    head on every prompt token was a quarter of a prefill).
  """

  config: ModelConfig

  @nn.compact
  def __call__(self, tokens_BxT, positions_BxT, kv_mask_BxS, cache=None, cache_index=0, last_only=False):
    c = self.config
    embed = nn.Embed(
        c.vocab_size,
        c.d_model,
        name="embed",
        dtype=jnp.dtype(c.dtype),
        param_dtype=jnp.dtype(c.param_dtype),
        embedding_init=nn.initializers.normal(0.02),
    )
    x_BxTxD = embed(tokens_BxT)
    new_cache = []
    if c.scan_layers and cache is None and not self.is_initializing():
      x_BxTxD = self._scanned_layers(x_BxTxD, positions_BxT, kv_mask_BxS)
    else:
      for i in range(c.n_layers):
        x_BxTxD, layer_cache = Block(c, name=f"layers_{i}")(
            x_BxTxD, positions_BxT, kv_mask_BxS, None if cache is None else cache[i], cache_index
        )
        new_cache.append(layer_cache)
    if last_only:
      x_BxTxD = x_BxTxD[:, -1:]
    # The final norm and the head run in float32 whatever the activation dtype: bfloat16 logits carry 8 bits of
    # mantissa, i.e. log-prob errors of ~0.03 nat at logits of ~8, which the sampler's pi_old and the
    # trainer's pi would not share (verl and TRL compute the head's log-softmax in float32 too).
    x_BxTxD = RMSNorm(c.norm_eps, jnp.dtype(c.param_dtype), name="final_norm")(x_BxTxD.astype(jnp.float32))
    if c.tie_embeddings:
      float32_model = jnp.dtype(c.dtype) == jnp.float32 and jnp.dtype(c.param_dtype) == jnp.float32
      logits_BxTxV = embed.attend(x_BxTxD.astype(embed.embedding.dtype)) if float32_model else jnp.dot(
          x_BxTxD.astype(jnp.float32), embed.embedding.astype(jnp.float32).T
      )
    else:
      head = nn.Dense(
          c.vocab_size, use_bias=False, name="lm_head", dtype=jnp.float32, param_dtype=jnp.dtype(c.param_dtype),
          kernel_init=nn.initializers.normal(0.02),
      )
      logits_BxTxV = head(x_BxTxD.astype(jnp.float32))
    logits_BxTxV = logits_BxTxV.astype(jnp.float32)
    return (logits_BxTxV, None) if cache is None else (logits_BxTxV, new_cache)

  def _scanned_layers(self, x_BxTxD, positions_BxT, kv_mask_BxS):
    """The blocks `layers_0..n-1` as one scan: their weights stacked on a leading layer axis (a copy of
    the block weights per pass, which the gradient flows back through to each layer's own leaves)."""
    c = self.config
    params = self.variables["params"]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *(params[f"layers_{i}"] for i in range(c.n_layers)))
    block = Block(c, parent=None)  # unbound: applied to one layer's weights per scan step

    def one_layer(x, layer_params):
      y, _ = block.apply({"params": layer_params}, x, positions_BxT, kv_mask_BxS, None, 0)
      return y.astype(x.dtype), None

    if c.remat:
      one_layer = jax.checkpoint(one_layer)
    x_BxTxD, _ = jax.lax.scan(one_layer, x_BxTxD, stacked)
    return x_BxTxD


def positions_from_mask(mask_BxT: jax.Array) -> jax.Array:
  """Per-row positions that skip left padding: the first real token is position 0."""
  return jnp.maximum(jnp.cumsum(mask_BxT.astype(jnp.int32), axis=-1) - 1, 0)


def init_cache(config: ModelConfig, batch: int, length: int, dtype=None) -> list[dict[str, jax.Array]]:
  dtype = jnp.dtype(dtype or config.dtype)
  shape = (batch, length, config.n_kv_heads, config.head_dim)
  return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in range(config.n_layers)]


def init_params(config: ModelConfig, rng: jax.Array) -> dict:
  model = Transformer(config)
  tokens = jnp.zeros((1, 2), jnp.int32)
  return model.init(rng, tokens, jnp.zeros((1, 2), jnp.int32), jnp.ones((1, 2), bool))["params"]
