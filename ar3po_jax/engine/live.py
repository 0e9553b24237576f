"""The model's forward pass over a slot-major KV cache, reading only its live columns.

The engine keeps one cache row per decode slot: per layer, keys and values [S, L, K, H] (S slots,
L = the longest prompt plus the response limit). A request fills its slot's row from column 0: the
token at position p of the request lives in column p, with no left padding. Every row therefore
writes its new keys and values at its own columns (a scatter of T columns per row, not the static
kernel's one `dynamic_update_slice` at a column shared by all rows), and the query at position p may
attend to column j iff j <= p. Columns past a row's own position still hold an earlier request's
keys; the mask hides them, and a request writes every column before any of its queries reads it.

Attention over the live cache: a call reads columns [0, W) only, where W (`width`) is a static
length bucket the host picks per call as the smallest bucket that holds every live row's furthest
column in that call. The weights are the model's own (`models.transformer`): this module mirrors the
`Transformer` parameter tree (same module names) and reuses its RMSNorm, MLP, query/key/value
projection (`project_qkv`) and attention core (`grouped_attention`); only the cache write and read,
and the mask built from them, differ.

Cost model, per decode step of S slots (P parameters, n_layers layers, K key/value heads of H dims,
cache elements of b bytes):
  weights:    2 P FLOPs per row and one read of the P weights per step, as in the static kernel;
  attention:  4 S W K H (N/K) FLOPs per layer (scores and weighted sum over W columns, N query heads),
              and a read of 2 S W K H b bytes per layer (keys and values), plus the copy of the
              [S, W] slice that XLA may make for the matmul, again O(S W);
  cache write: 2 S K H b bytes per layer (one column per row, scattered).
The static kernel pays the attention term with W = Tp + Tr on every step from the first; here W is
the bucket above the longest live row (prompt + tokens so far + the call's steps). With slots at
mixed ages that maximum stays near the oldest live row, so the saving is largest early in a run and
with short prompts; a paged or ragged kernel (cost from the SUM of live lengths, not S times their
maximum) would be the next step and needs a custom kernel (Pallas), which this module does not use.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from ar3po_jax.models.transformer import MLP, ModelConfig, RMSNorm, _dense, grouped_attention, project_qkv


class LiveAttention(nn.Module):
  """Grouped-query attention writing [B, T] new columns and reading columns [0, width)."""

  config: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD, positions_BxT, cache, rows_B, width: int):
    c = self.config
    B, T, _ = x_BxTxD.shape
    out_std = 0.02 / math.sqrt(2 * c.n_layers)
    q, k, v = project_qkv(x_BxTxD, positions_BxT, c)

    # Scatter the new columns: row b's token t goes to cache[rows_B[b], positions_BxT[b, t]].
    # Out-of-range rows or columns (padding rows, padding tokens, idle slots) are dropped.
    slot_BxT = jnp.broadcast_to((jnp.arange(B) if rows_B is None else rows_B)[:, None], (B, T))
    new_cache = {
        "k": cache["k"].at[slot_BxT, positions_BxT].set(k.astype(cache["k"].dtype), mode="drop"),
        "v": cache["v"].at[slot_BxT, positions_BxT].set(v.astype(cache["v"].dtype), mode="drop"),
    }
    if rows_B is None:  # decode: row b is slot b, a static slice of the live columns
      keys_BxWxKxH = new_cache["k"][:, :width]
      values_BxWxKxH = new_cache["v"][:, :width]
    else:  # prefill of some slots: gather their rows (padding rows clip to the last slot; unused)
      keys_BxWxKxH = new_cache["k"][:, :width].at[rows_B].get(mode="clip")
      values_BxWxKxH = new_cache["v"][:, :width].at[rows_B].get(mode="clip")

    allowed_BxTxW = jnp.arange(width)[None, None, :] <= positions_BxT[:, :, None]
    out_BxTxD = grouped_attention(q, keys_BxWxKxH, values_BxWxKxH, allowed_BxTxW, x_BxTxD.dtype)
    return _dense(c.d_model, "o_proj", c, std=out_std)(out_BxTxD), new_cache


class LiveBlock(nn.Module):
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD, positions_BxT, cache, rows_B, width: int):
    c = self.config
    norm = lambda name: RMSNorm(c.norm_eps, jnp.dtype(c.param_dtype), name=name)  # noqa: E731
    h, new_cache = LiveAttention(c, name="attn")(norm("input_norm")(x_BxTxD), positions_BxT, cache, rows_B, width)
    x_BxTxD = x_BxTxD + h
    x_BxTxD = x_BxTxD + MLP(c, name="mlp")(norm("post_attn_norm")(x_BxTxD))
    return x_BxTxD, new_cache


class LiveTransformer(nn.Module):
  """tokens [B, T] at positions [B, T] -> (float32 logits [B, T, V] or None, the updated cache).

  Takes the `Transformer`'s parameters unchanged.
  cache: list over layers of {"k", "v"} [S, L, K, H] (`models.transformer.init_cache(config, S, L)`).
  rows_B: the cache row of each input row; None means row b is slot b (then B == S).
  width: static; the columns [0, width) attention reads. Every position written must be < width.
  head: False skips the final norm and output head (a prefill needs no logits: the engine feeds a
    prompt's last token in its first decode step).
  A position >= L (or a row >= S) marks padding: its keys and values are not written.
  """

  config: ModelConfig

  @nn.compact
  def __call__(self, tokens_BxT, positions_BxT, cache, rows_B=None, width: int = 0, head: bool = True):
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
    for i in range(c.n_layers):
      x_BxTxD, layer_cache = LiveBlock(c, name=f"layers_{i}")(x_BxTxD, positions_BxT, cache[i], rows_B, width)
      new_cache.append(layer_cache)
    if not head:
      return None, new_cache
    x_BxTxD = RMSNorm(c.norm_eps, jnp.dtype(c.param_dtype), name="final_norm")(x_BxTxD)
    if c.tie_embeddings:
      logits_BxTxV = embed.attend(x_BxTxD.astype(embed.embedding.dtype))
    else:
      logits_BxTxV = _dense(c.vocab_size, "lm_head", c)(x_BxTxD)
    return logits_BxTxV.astype(jnp.float32), new_cache
