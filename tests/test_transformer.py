import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ar3po_jax.models.transformer import (
    ModelConfig,
    grouped_attention,
    init_cache,
    positions_from_mask,
    rope_frequencies,
)
from tests.helpers import TINY, left_padded_prompts, tiny_model


def test_param_count_matches_config_and_names_follow_hf_layout():
  for tie in (True, False):
    model, params = tiny_model(tie_embeddings=tie)
    leaves = jax.tree_util.tree_leaves(params)
    assert sum(x.size for x in leaves) == model.config.num_params
    assert ("lm_head" in params) == (not tie)
  assert params["layers_0"]["attn"]["k_proj"]["kernel"].shape == (32, TINY.n_kv_heads * TINY.head_dim)
  assert "bias" in params["layers_0"]["attn"]["q_proj"]


def test_no_bias_without_qkv_bias():
  _, params = tiny_model(qkv_bias=False)
  assert "bias" not in params["layers_0"]["attn"]["q_proj"]


def test_bad_config_names_the_problem():
  with pytest.raises(ValueError, match="multiple of model.n_kv_heads"):
    dataclasses.replace(TINY, n_heads=3)
  with pytest.raises(ValueError, match="head_dim must be even"):
    dataclasses.replace(TINY, head_dim=7)


def test_left_padding_does_not_change_logits():
  model, params = tiny_model()
  tokens, mask = left_padded_prompts([5], 5)
  padded, padded_mask = left_padded_prompts([5], 9)
  padded[:, 4:] = tokens
  logits, _ = model.apply({"params": params}, tokens, positions_from_mask(mask), mask)
  logits_padded, _ = model.apply({"params": params}, padded, positions_from_mask(padded_mask), padded_mask)
  np.testing.assert_allclose(logits_padded[:, 4:], logits, atol=1e-5)


def test_kv_cache_decoding_equals_full_recomputation():
  model, params = tiny_model(seed=1)
  tokens, mask = left_padded_prompts([3, 6, 1], 6, seed=2)
  extra = np.random.default_rng(3).integers(4, 32, (3, 4)).astype(np.int32)
  full_tokens = np.concatenate([tokens, extra], 1)
  full_mask = np.concatenate([mask, np.ones_like(extra, bool)], 1)
  full_logits, _ = model.apply({"params": params}, full_tokens, positions_from_mask(full_mask), full_mask)

  cache = init_cache(model.config, 3, 10)
  kv_mask = np.concatenate([mask, np.zeros((3, 4), bool)], 1)
  _, cache_all = model.apply({"params": params}, tokens, positions_from_mask(mask), kv_mask, cache, 0)
  # The sampler's prefill asks for the last position's logits only; the cache is the same.
  logits, cache = model.apply({"params": params}, tokens, positions_from_mask(mask), kv_mask, cache, 0, last_only=True)
  assert logits.shape == (3, 1, model.config.vocab_size)
  np.testing.assert_allclose(logits[:, -1], full_logits[:, 5], atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), cache_all, cache)
  lengths = mask.sum(1)
  for t in range(4):
    kv_mask[:, 6 + t] = True
    step_logits, cache = model.apply(
        {"params": params}, extra[:, t : t + 1], (lengths + t)[:, None], kv_mask, cache, 6 + t
    )
    np.testing.assert_allclose(step_logits[:, 0], full_logits[:, 6 + t], atol=1e-5)


def test_grouped_attention_against_a_loop_over_heads():
  # 4 query heads share 2 key/value heads (query head n reads kv head n // 2); a per-head softmax loop in
  # numpy is the reference. Query 0 of row 1 may read no key at all: it must come out finite (uniform).
  rng = np.random.default_rng(0)
  B, T, S, N, K, H = 2, 3, 5, 4, 2, 8
  q = rng.normal(size=(B, T, N, H)).astype(np.float32)
  k = rng.normal(size=(B, S, K, H)).astype(np.float32)
  v = rng.normal(size=(B, S, K, H)).astype(np.float32)
  allowed = rng.random((B, T, S)) < 0.7
  allowed[:, :, 0] = True
  allowed[1, 0] = False
  got = np.asarray(grouped_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(allowed),
                                     jnp.float32))
  want = np.zeros((B, T, N, H), np.float32)
  for b in range(B):
    for t in range(T):
      for n in range(N):
        scores = k[b, :, n // 2] @ q[b, t, n] / np.sqrt(H)
        scores = np.where(allowed[b, t], scores, -1e30)
        w = np.exp(scores - scores.max())
        want[b, t, n] = (w / w.sum()) @ v[b, :, n // 2]
  assert got.shape == (B, T, N * H)
  np.testing.assert_allclose(got, want.reshape(B, T, N * H), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[1, 0], v[1].mean(axis=0)[np.arange(N) // 2].reshape(-1), rtol=1e-5, atol=1e-5)


def test_llama3_rope_scaling_slows_only_low_frequencies():
  base = ModelConfig(
      vocab_size=8, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=64, d_ff=16, rope_theta=500_000.0
  )
  scaled = dataclasses.replace(base, rope_scaling=(8.0, 1.0, 4.0, 8192))
  f0, f1 = np.asarray(rope_frequencies(base)), np.asarray(rope_frequencies(scaled))
  wavelen = 2 * np.pi / f0
  assert np.allclose(f1[wavelen < 8192 / 4], f0[wavelen < 8192 / 4])  # high frequencies untouched
  assert np.allclose(f1[wavelen > 8192], f0[wavelen > 8192] / 8.0)  # low frequencies divided by factor
  middle = (wavelen >= 8192 / 4) & (wavelen <= 8192)
  assert middle.any() and np.all((f1[middle] < f0[middle]) & (f1[middle] > f0[middle] / 8.0))


def test_bfloat16_activations_run_and_stay_close():
  model, params = tiny_model()
  model_bf16, _ = tiny_model(dtype="bfloat16")
  tokens, mask = left_padded_prompts([4, 6], 6)
  a, _ = model.apply({"params": params}, tokens, positions_from_mask(mask), mask)
  b, _ = model_bf16.apply({"params": params}, tokens, positions_from_mask(mask), mask)
  assert b.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(b)[mask], np.asarray(a)[mask], atol=0.1)


def test_head_is_float32_with_bfloat16_activations():
  """bfloat16 logits would all be bfloat16 numbers; the float32 head gives finer ones, and the
  log-probs of a bfloat16 model then stay close to the float32 model's."""
  for tie in (True, False):
    model32, params = tiny_model(tie_embeddings=tie)
    model16, _ = tiny_model(tie_embeddings=tie, dtype="bfloat16")
    tokens, mask = left_padded_prompts([5, 3], 6, seed=2)
    logits16, _ = model16.apply({"params": params}, tokens, positions_from_mask(mask), mask)
    logits32, _ = model32.apply({"params": params}, tokens, positions_from_mask(mask), mask)
    logits16 = np.asarray(logits16)
    assert logits16.dtype == np.float32
    assert np.any(logits16 != logits16.astype(jnp.bfloat16).astype(np.float32))
    logp16, logp32 = jax.nn.log_softmax(logits16, -1), jax.nn.log_softmax(np.asarray(logits32), -1)
    np.testing.assert_allclose(logp16, logp32, atol=0.05)


def _loss_and_grads(model, params, tokens, mask):
  def loss(p):
    logits, _ = model.apply({"params": p}, tokens, positions_from_mask(mask), mask)
    return jnp.sum(jax.nn.log_softmax(logits, -1)[..., 3] * mask)

  return jax.value_and_grad(loss)(params)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_scanned_layers_match_the_unrolled_ones_in_value_and_gradient(dtype):
  model, params = tiny_model(n_layers=3, dtype=dtype)
  scanned, scanned_params = tiny_model(n_layers=3, dtype=dtype, scan_layers=True)
  # Same parameter tree (checkpoints, HF import and sharding rules do not know the difference).
  assert jax.tree.structure(scanned_params) == jax.tree.structure(params)
  tokens, mask = left_padded_prompts([5, 3, 6], 6, seed=3)
  value, grads = _loss_and_grads(model, params, tokens, mask)
  value_s, grads_s = _loss_and_grads(scanned, params, tokens, mask)
  tol = 1e-5 if dtype == "float32" else 2e-2
  np.testing.assert_allclose(value_s, value, rtol=tol)
  for (path, g), g_s in zip(jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(grads_s)):
    np.testing.assert_allclose(g_s, g, rtol=tol, atol=tol, err_msg=jax.tree_util.keystr(path))
  assert float(jnp.abs(grads["layers_2"]["mlp"]["down_proj"]["kernel"]).sum()) > 0  # each layer gets its own gradient


def test_scanned_layers_take_a_packed_rows_mask_and_a_cache_stays_unrolled():
  model, params = tiny_model()
  scanned, _ = tiny_model(scan_layers=True)
  tokens, mask = left_padded_prompts([6, 6], 6, seed=4)
  segments = np.array([[0, 0, 0, 1, 1, 1]] * 2)
  allowed_BxTxT = (segments[:, :, None] == segments[:, None, :]) & np.tril(np.ones((6, 6), bool))
  positions = np.array([[0, 1, 2, 0, 1, 2]] * 2)
  a, _ = model.apply({"params": params}, tokens, positions, allowed_BxTxT)
  b, _ = scanned.apply({"params": params}, tokens, positions, allowed_BxTxT)
  np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
  cache = init_cache(TINY, 2, 8)
  _, new_cache = scanned.apply({"params": params}, tokens, positions_from_mask(mask), np.ones((2, 8), bool),
                               cache, 0)
  assert len(new_cache) == TINY.n_layers  # the decode path keeps its per-layer cache


def test_the_scanned_program_does_not_grow_with_depth():
  """What the scan is for: the program holds one layer whatever n_layers is."""
  def dots(n_layers, scan):
    model, params = tiny_model(n_layers=n_layers, scan_layers=scan)
    tokens, mask = left_padded_prompts([4, 4], 4)
    text = jax.jit(lambda p: _loss_and_grads(model, p, tokens, mask)).lower(params).as_text()
    return text.count("dot_general")

  assert dots(6, scan=True) == dots(2, scan=True)
  assert dots(6, scan=False) > 2 * dots(2, scan=False)


def test_remat_recomputes_the_same_gradient_and_needs_scanned_layers():
  model, params = tiny_model(n_layers=3, scan_layers=True)
  remat, _ = tiny_model(n_layers=3, scan_layers=True, remat=True)
  tokens, mask = left_padded_prompts([5, 3, 6], 6, seed=5)
  value, grads = _loss_and_grads(model, params, tokens, mask)
  value_r, grads_r = _loss_and_grads(remat, params, tokens, mask)
  np.testing.assert_allclose(value_r, value, rtol=1e-6)
  for g, g_r in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_r)):
    np.testing.assert_allclose(g_r, g, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="model.remat needs model.scan_layers"):
    tiny_model(remat=True)
