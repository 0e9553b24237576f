"""Hugging Face checkpoints (Qwen2 / Qwen2.5, Llama 3.x) in and out of the project's Flax decoder.

  from ar3po_jax.models import hf
  policy = hf.load_checkpoint("/ckpt/Qwen2.5-7B", dtype="bfloat16", mesh=mesh)
  logits_BxTxV = policy.logits(token_ids_BxT)
  hf.save_checkpoint(policy, "/out/step_1000")

Loading reads one safetensors shard at a time through a memory map and builds every parameter with
`jax.make_array_from_callback`, so each device receives only its own slice, converted to the chosen
dtype slice by slice: host memory never holds a second copy of the model, and on several hosts each
host reads only what its devices hold. Saving gathers one parameter at a time.

Torch Linear weights are [out, in]; the Flax kernels are [in, out], hence the transposes. Both
config.json styles are read: the classic `rope_theta` / `rope_scaling` fields and transformers 5's
`rope_parameters`; export writes the classic style, which every reader accepts.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
import shutil
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax import sharding as sharding_lib
from ar3po_jax.models import safetensors_io
from ar3po_jax.models.params_io import unflatten as _unflatten
from ar3po_jax.models.transformer import ModelConfig, Transformer, init_params

ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}
INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Copied beside an exported checkpoint so that it loads in HF tools without the original folder.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
# Non-parameter buffers that older exporters wrote; they are recomputed, never loaded.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


class CheckpointError(ValueError):
  pass


def _rope_scaling(hf: dict) -> tuple[float, float, float, int] | None:
  params = hf.get("rope_parameters") or {}
  scaling = hf.get("rope_scaling") or params
  kind = scaling.get("rope_type", scaling.get("type", "default"))
  if kind == "default":
    return None
  if kind != "llama3":
    raise CheckpointError(f"RoPE scaling type {kind!r} is not supported (only Llama 3.1's 'llama3')")
  return (
      float(scaling["factor"]),
      float(scaling["low_freq_factor"]),
      float(scaling["high_freq_factor"]),
      int(scaling["original_max_position_embeddings"]),
  )


def model_config_from_hf(hf: dict, dtype: str = "float32", activation_dtype: str | None = None) -> ModelConfig:
  """The ModelConfig for an HF config.json dict; refuses what the decoder does not implement."""
  model_type = hf.get("model_type")
  if model_type not in ARCHITECTURES:
    raise CheckpointError(f"model_type {model_type!r} is not supported; supported: {sorted(ARCHITECTURES)}")
  if hf.get("hidden_act", "silu") != "silu":
    raise CheckpointError(f"hidden_act {hf['hidden_act']!r} is not supported (SwiGLU with silu only)")
  if model_type == "qwen2" and hf.get("use_sliding_window"):
    raise CheckpointError("Qwen2 sliding-window attention is not supported (use_sliding_window=true)")
  # Llama's attention_bias also puts a bias on o_proj, which the decoder does not have.
  if model_type == "llama" and (hf.get("attention_bias") or hf.get("mlp_bias")):
    raise CheckpointError("Llama attention_bias / mlp_bias are not supported")
  params = hf.get("rope_parameters") or {}
  heads = int(hf["num_attention_heads"])
  return ModelConfig(
      vocab_size=int(hf["vocab_size"]),
      d_model=int(hf["hidden_size"]),
      n_layers=int(hf["num_hidden_layers"]),
      n_heads=heads,
      n_kv_heads=int(hf.get("num_key_value_heads") or heads),
      head_dim=int(hf.get("head_dim") or hf["hidden_size"] // heads),
      d_ff=int(hf["intermediate_size"]),
      qkv_bias=model_type == "qwen2",
      tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
      rope_theta=float(hf.get("rope_theta", params.get("rope_theta", 10_000.0))),
      norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
      dtype=activation_dtype or dtype,
      param_dtype=dtype,
      rope_scaling=_rope_scaling(hf),
  )


def hf_config_from_model(config: ModelConfig, base: dict | None = None, save_dtype: str | None = None) -> dict:
  """config.json for the decoder: base's other fields (token ids, max positions) kept."""
  out = dict(base or {})
  model_type = out.get("model_type") or ("qwen2" if config.qkv_bias else "llama")
  if model_type not in ARCHITECTURES:
    raise CheckpointError(f"cannot export as model_type {model_type!r}")
  if config.qkv_bias != (model_type == "qwen2"):
    raise CheckpointError(f"{model_type} cannot express qkv_bias={config.qkv_bias} (Qwen2 has q/k/v bias, Llama none)")
  out.pop("rope_parameters", None)
  out.update(
      architectures=[ARCHITECTURES[model_type]],
      model_type=model_type,
      vocab_size=config.vocab_size,
      hidden_size=config.d_model,
      intermediate_size=config.d_ff,
      num_hidden_layers=config.n_layers,
      num_attention_heads=config.n_heads,
      num_key_value_heads=config.n_kv_heads,
      head_dim=config.head_dim,
      hidden_act="silu",
      rms_norm_eps=config.norm_eps,
      rope_theta=config.rope_theta,
      tie_word_embeddings=config.tie_embeddings,
      torch_dtype=save_dtype or config.param_dtype,
  )
  out.setdefault("max_position_embeddings", 32_768)
  if "dtype" in out:
    out["dtype"] = out["torch_dtype"]
  if config.rope_scaling is None:
    out["rope_scaling"] = None
  else:
    factor, low, high, original = config.rope_scaling
    out["rope_scaling"] = {
        "rope_type": "llama3",
        "factor": factor,
        "low_freq_factor": low,
        "high_freq_factor": high,
        "original_max_position_embeddings": original,
    }
  if model_type == "llama":
    out.update(attention_bias=False, mlp_bias=False)
  return out


def parameter_map(config: ModelConfig) -> list[tuple[str, str, bool]]:
  """(Flax parameter path, HF tensor name, transposed) for every parameter of the decoder."""
  out = [("embed/embedding", "model.embed_tokens.weight", False)]
  for i in range(config.n_layers):
    flax, torch = f"layers_{i}", f"model.layers.{i}"
    for proj in ("q", "k", "v", "o"):
      out.append((f"{flax}/attn/{proj}_proj/kernel", f"{torch}.self_attn.{proj}_proj.weight", True))
      if config.qkv_bias and proj != "o":
        out.append((f"{flax}/attn/{proj}_proj/bias", f"{torch}.self_attn.{proj}_proj.bias", False))
    for proj in ("gate", "up", "down"):
      out.append((f"{flax}/mlp/{proj}_proj/kernel", f"{torch}.mlp.{proj}_proj.weight", True))
    out.append((f"{flax}/input_norm/scale", f"{torch}.input_layernorm.weight", False))
    out.append((f"{flax}/post_attn_norm/scale", f"{torch}.post_attention_layernorm.weight", False))
  out.append(("final_norm/scale", "model.norm.weight", False))
  if not config.tie_embeddings:
    out.append(("lm_head/kernel", "lm_head.weight", True))
  return out


@functools.partial(jax.jit, static_argnames=("model",))
def _forward(params, tokens_BxT, *, model: Transformer):
  B, T = tokens_BxT.shape
  positions_BxT = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
  logits_BxTxV, _ = model.apply({"params": params}, tokens_BxT, positions_BxT, jnp.ones((B, T), bool))
  return logits_BxTxV


@dataclasses.dataclass
class Policy:
  """A decoder with its weights. hf_config: the config.json it came from (kept for export);
  source: the checkpoint folder (its tokenizer files travel with an export)."""

  config: ModelConfig
  model: Transformer
  params: dict
  hf_config: dict = dataclasses.field(default_factory=dict)
  source: str = ""

  @classmethod
  def create(cls, config: ModelConfig, params: dict, hf_config: dict | None = None, source: str = "") -> "Policy":
    return cls(config, Transformer(config), params, dict(hf_config or {}), source)

  def logits(self, token_ids_BxT) -> jax.Array:
    """float32 logits [B, T, V] of a full causal forward pass, every position a real token."""
    tokens_BxT = jnp.asarray(token_ids_BxT, jnp.int32)
    if tokens_BxT.ndim != 2:
      raise ValueError(f"token_ids must be [batch, time], got shape {tokens_BxT.shape}")
    return _forward(self.params, tokens_BxT, model=self.model)


def _shard_files(path: str) -> list[str]:
  index = os.path.join(path, INDEX_FILE)
  if os.path.isfile(index):
    with open(index) as f:
      weight_map = json.load(f)["weight_map"]
    return [os.path.join(path, name) for name in sorted(set(weight_map.values()))]
  single = os.path.join(path, SINGLE_FILE)
  if os.path.isfile(single):
    return [single]
  found = sorted(glob.glob(os.path.join(path, "*.safetensors")))
  if not found:
    raise CheckpointError(f"{path}: no {INDEX_FILE}, {SINGLE_FILE} or *.safetensors file")
  return found


def _flat_names(tree) -> dict[str, Any]:
  return {sharding_lib.path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def read_hf_config(path: str) -> dict:
  config_path = os.path.join(path, "config.json")
  if not os.path.isfile(config_path):
    raise CheckpointError(f"{path}: no config.json (is this a Hugging Face checkpoint folder?)")
  with open(config_path) as f:
    return json.load(f)


def load_checkpoint(
    path: str,
    dtype: str = "float32",
    activation_dtype: str | None = None,
    mesh: jax.sharding.Mesh | None = None,
    rules=sharding_lib.DEFAULT_RULES,
    scan_layers: bool = False,
    remat: bool = False,
) -> Policy:
  """The checkpoint in `path` as a Policy with parameters in `dtype`.

  mesh: place each parameter on its `sharding.tree_shardings` sharding as it is read (None: the
    default device). activation_dtype: the compute dtype (default: dtype). scan_layers, remat: the
    ModelConfig fields (how training passes run; the parameters are the same).
  """
  hf_config = read_hf_config(path)
  config = dataclasses.replace(
      model_config_from_hf(hf_config, dtype, activation_dtype), scan_layers=scan_layers, remat=remat)
  abstract = _flat_names(jax.eval_shape(lambda: init_params(config, jax.random.key(0))))
  if mesh is not None:
    shardings = _flat_names(sharding_lib.tree_shardings(_unflatten(abstract), mesh, rules))
  else:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shardings = dict.fromkeys(abstract, device)
  wanted = {hf_name: (flax_name, transposed) for flax_name, hf_name, transposed in parameter_map(config)}
  loaded: dict[str, jax.Array] = {}
  unexpected = []
  for file in _shard_files(path):
    st = safetensors_io.SafetensorsFile(file)
    for hf_name in st.keys():
      if hf_name not in wanted:
        tied_head = config.tie_embeddings and hf_name == "lm_head.weight"
        if not tied_head and not hf_name.endswith(_IGNORED_SUFFIXES):
          unexpected.append(hf_name)
        continue
      flax_name, transposed = wanted[hf_name]
      stored = st.get(hf_name)
      view = stored.T if transposed else stored
      target = abstract[flax_name]
      if view.shape != target.shape:
        raise CheckpointError(
            f"{file}: {hf_name} has shape {stored.shape}; the config implies {target.shape} for {flax_name}"
        )
      if flax_name in loaded:
        raise CheckpointError(f"{file}: {hf_name} appears in more than one shard")
      loaded[flax_name] = jax.make_array_from_callback(
          target.shape, shardings[flax_name], lambda index, v=view, d=target.dtype: np.asarray(v[index], dtype=d)
      )
    del st  # drops the memory map before the next shard is opened
  missing = sorted(set(abstract) - set(loaded))
  if missing or unexpected:
    raise CheckpointError(
        f"{path}: checkpoint does not match its config.json: missing {missing[:8]}"
        f"{' ...' if len(missing) > 8 else ''}; unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"
    )
  return Policy.create(config, _unflatten(loaded), hf_config, os.path.abspath(path))


def load_for_config(model_config, mesh: jax.sharding.Mesh | None = None) -> Policy:
  """`load_checkpoint` of a run's `config.model`: its folder, dtypes and execution fields."""
  execution = {f: bool(model_config.get(f, False)) for f in ModelConfig.EXECUTION_FIELDS}
  return load_checkpoint(model_config.checkpoint, model_config.param_dtype, model_config.dtype, mesh, **execution)


def _to_host(leaf) -> np.ndarray:
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
  return np.asarray(jax.device_get(leaf))


def _plan_shards(specs: list[tuple[str, tuple[int, ...], np.dtype]], max_shard_bytes: int) -> list[list]:
  shards: list[list] = [[]]
  size = 0
  for spec in specs:
    nbytes = int(np.prod(spec[1], dtype=np.int64)) * spec[2].itemsize
    if shards[-1] and size + nbytes > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(spec)
    size += nbytes
  return shards


def save_checkpoint(
    policy: Policy, path: str, dtype: str | None = None, max_shard_bytes: int = 4 << 30, copy_tokenizer: bool = True
) -> None:
  """Writes config.json and safetensors shards (with an index when there is more than one).

  dtype: the stored dtype (default: the parameters' own). Every process must call this (sharded
  parameters are gathered collectively); only process 0 writes.
  """
  config = policy.config
  save_dtype = np.dtype(jnp.dtype(dtype or config.param_dtype))
  flat = _flat_names(policy.params)
  entries = parameter_map(config)
  if set(flat) != {flax_name for flax_name, _, _ in entries}:
    raise CheckpointError(
        f"policy parameters do not match its config: {sorted(set(flat) ^ {e[0] for e in entries})[:8]}"
    )
  specs = [
      (hf_name, tuple(reversed(flat[f].shape)) if t else tuple(flat[f].shape), save_dtype)
      for f, hf_name, t in entries
  ]
  by_hf = {hf_name: (flax_name, t) for flax_name, hf_name, t in entries}

  def fetch(hf_name: str) -> np.ndarray:
    flax_name, transposed = by_hf[hf_name]
    host = _to_host(flat[flax_name]).astype(save_dtype)
    return host.T if transposed else host

  shards = _plan_shards(specs, max_shard_bytes)
  primary = jax.process_index() == 0
  if not primary:
    for hf_name, _, _ in specs:
      if not getattr(flat[by_hf[hf_name][0]], "is_fully_addressable", True):
        fetch(hf_name)
    return
  os.makedirs(path, exist_ok=True)
  weight_map, total = {}, 0
  names = (
      [SINGLE_FILE] if len(shards) == 1
      else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
  )
  for name, shard in zip(names, shards):
    total += safetensors_io.write(os.path.join(path, name), shard, fetch)
    weight_map.update({spec[0]: name for spec in shard})
  if len(shards) > 1:
    with open(os.path.join(path, INDEX_FILE), "w") as f:
      json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
  else:
    stale = os.path.join(path, INDEX_FILE)
    if os.path.exists(stale):
      os.remove(stale)
  hf_config = hf_config_from_model(config, policy.hf_config, str(save_dtype))
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(hf_config, f, indent=2)
  if copy_tokenizer and policy.source and os.path.abspath(policy.source) != os.path.abspath(path):
    for name in TOKENIZER_FILES:
      if os.path.isfile(os.path.join(policy.source, name)):
        shutil.copyfile(os.path.join(policy.source, name), os.path.join(path, name))
