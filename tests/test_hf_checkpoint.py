"""HF checkpoint import/export: logit parity with transformers (from committed fixtures, no torch),
round trips, config mapping, placement on a mesh, and an optional live transformers cross-check."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import pytest

from ar3po_jax.models import hf, safetensors_io
from ar3po_jax.models.transformer import ModelConfig, init_params

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "hf"
VARIANTS = ("qwen2_tied", "qwen2_sharded", "llama31", "llama32_tied")
REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", VARIANTS)
def test_logits_match_transformers_reference(name):
  d = FIXTURES / name
  policy = hf.load_checkpoint(str(d))
  logits = np.asarray(policy.logits(np.load(d / "tokens.npy")))
  reference = np.load(d / "logits.npy")
  assert logits.dtype == np.float32 and logits.shape == reference.shape
  assert np.abs(logits - reference).max() <= 1e-4


def test_fixture_variants_cover_the_features():
  configs = {n: hf.model_config_from_hf(json.loads((FIXTURES / n / "config.json").read_text())) for n in VARIANTS}
  assert configs["qwen2_tied"].qkv_bias and configs["qwen2_tied"].tie_embeddings
  assert not configs["qwen2_sharded"].tie_embeddings and (FIXTURES / "qwen2_sharded" / hf.INDEX_FILE).exists()
  assert configs["llama31"].rope_scaling == (8.0, 1.0, 4.0, 64) and not configs["llama31"].qkv_bias
  assert configs["llama32_tied"].head_dim * configs["llama32_tied"].n_heads != configs["llama32_tied"].d_model
  assert all(c.n_kv_heads < c.n_heads for c in configs.values())


def _flat(policy):
  return {k: np.asarray(v) for k, v in hf._flat_names(policy.params).items()}


@pytest.mark.parametrize("name,shard_bytes", [("llama31", 1 << 30), ("qwen2_tied", 6000)])
def test_round_trip_is_exact(tmp_path, name, shard_bytes):
  first = hf.load_checkpoint(str(FIXTURES / name))
  hf.save_checkpoint(first, str(tmp_path), max_shard_bytes=shard_bytes)
  assert (tmp_path / hf.INDEX_FILE).exists() == (shard_bytes < 1 << 20)
  assert (tmp_path / "generation_config.json").exists()  # travels with the export
  second = hf.load_checkpoint(str(tmp_path))
  assert second.config == first.config
  a, b = _flat(first), _flat(second)
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_bfloat16_save_and_load(tmp_path):
  policy = hf.load_checkpoint(str(FIXTURES / "qwen2_sharded"))
  hf.save_checkpoint(policy, str(tmp_path), dtype="bfloat16", max_shard_bytes=10_000)
  assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
  as_bf16 = hf.load_checkpoint(str(tmp_path), dtype="bfloat16")
  as_f32 = hf.load_checkpoint(str(tmp_path))  # bf16 on disk, widened on load
  original = _flat(policy)
  for k, v in _flat(as_bf16).items():
    assert v.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(v, original[k].astype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(_flat(as_f32)[k], v.astype(np.float32))
  reference = np.load(FIXTURES / "qwen2_sharded" / "logits.npy")
  logits = np.asarray(as_bf16.logits(np.load(FIXTURES / "qwen2_sharded" / "tokens.npy")))
  assert logits.dtype == np.float32 and np.abs(logits - reference).max() < 0.5


def test_policy_from_fresh_params_exports_and_reloads(tmp_path):
  config = ModelConfig(
      vocab_size=40, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8, d_ff=24, qkv_bias=False,
      tie_embeddings=False,
  )
  policy = hf.Policy.create(config, init_params(config, jax.random.key(0)))
  hf.save_checkpoint(policy, str(tmp_path))
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["model_type"] == "llama" and saved["architectures"] == ["LlamaForCausalLM"]
  again = hf.load_checkpoint(str(tmp_path))
  tokens = np.arange(10, dtype=np.int32).reshape(2, 5)
  np.testing.assert_array_equal(np.asarray(again.logits(tokens)), np.asarray(policy.logits(tokens)))


def test_classic_config_json_fields():
  llama31_8b = {
      "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-5,
      "rope_theta": 500000.0, "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
      "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  }
  c = hf.model_config_from_hf(llama31_8b, "bfloat16")
  assert (c.head_dim, c.n_kv_heads, c.rope_theta, c.norm_eps) == (128, 8, 500000.0, 1e-5)
  assert c.rope_scaling == (8.0, 1.0, 4.0, 8192) and c.param_dtype == c.dtype == "bfloat16"
  assert c.num_params == 8_030_261_248  # Llama-3.1-8B's published count
  qwen25_7b = {
      "model_type": "qwen2", "vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
      "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "rms_norm_eps": 1e-6,
      "rope_theta": 1000000.0, "tie_word_embeddings": False, "rope_scaling": None, "use_sliding_window": False,
  }
  c = hf.model_config_from_hf(qwen25_7b)
  assert c.qkv_bias and c.rope_scaling is None and c.head_dim == 128
  assert c.num_params == 7_615_616_512  # Qwen2.5-7B's published count
  exported = hf.hf_config_from_model(c, qwen25_7b)
  assert hf.model_config_from_hf(exported) == c


@pytest.mark.parametrize(
    "change,message",
    [
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "yarn"),
        ({"model_type": "mistral"}, "mistral"),
        ({"use_sliding_window": True}, "sliding"),
        ({"hidden_act": "gelu"}, "gelu"),
    ],
)
def test_unsupported_configs_are_refused(change, message):
  base = json.loads((FIXTURES / "qwen2_tied" / "config.json").read_text())
  with pytest.raises(hf.CheckpointError, match=message):
    hf.model_config_from_hf({**base, **change})


def test_missing_and_unexpected_tensors_are_named(tmp_path):
  src = FIXTURES / "qwen2_tied"
  st = safetensors_io.SafetensorsFile(str(src / "model.safetensors"))
  keep = [k for k in st.keys() if k != "model.norm.weight"] + ["extra.weight"]
  specs = [(k, st.shape(k) if k in st.keys() else (2,), np.float32) for k in keep]
  safetensors_io.write(
      str(tmp_path / "model.safetensors"), specs, lambda k: st.get(k) if k in st.keys() else np.zeros(2, np.float32)
  )
  (tmp_path / "config.json").write_text((src / "config.json").read_text())
  with pytest.raises(hf.CheckpointError, match=r"final_norm/scale.*extra\.weight"):
    hf.load_checkpoint(str(tmp_path))


def test_load_onto_a_mesh_places_parameters_by_rule():
  code = """
import numpy as np, jax
from ar3po_jax import sharding
from ar3po_jax.models import hf
mesh = sharding.make_mesh(1, 2, 2)
d = 'tests/fixtures/hf/llama31'
p = hf.load_checkpoint(d, mesh=mesh)
q = p.params['layers_0']['attn']['q_proj']['kernel']
assert tuple(q.sharding.spec) == ('fsdp', 'tensor'), q.sharding.spec
assert len(q.addressable_shards) == 4 and q.addressable_shards[0].data.shape == (16, 16)
err = np.abs(np.asarray(p.logits(np.load(d + '/tokens.npy'))) - np.load(d + '/logits.npy')).max()
assert err <= 1e-4, err
print('ok')
"""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
  out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_export_reads_back_in_transformers(tmp_path):
  """Optional: where transformers is installed, it loads our export and agrees on the logits."""
  transformers = pytest.importorskip("transformers")
  torch = pytest.importorskip("torch")
  policy = hf.load_checkpoint(str(FIXTURES / "llama31"))
  hf.save_checkpoint(policy, str(tmp_path), max_shard_bytes=20_000)
  model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
  tokens = np.load(FIXTURES / "llama31" / "tokens.npy")
  with torch.no_grad():
    theirs = model(input_ids=torch.from_numpy(tokens.astype(np.int64))).logits.numpy()
  assert np.abs(theirs - np.asarray(policy.logits(tokens))).max() <= 1e-4
