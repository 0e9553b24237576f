"""The real-data counterpart of `embedded.prepare`: a Hugging Face checkpoint, its tokenizer, a
math training set and the evaluation benchmarks, for configs whose task.name is not 'arithmetic'
(configs/paper.py).

  prepared = real.prepare(config, workdir, log)   # same fields as embedded.Embedded

The returned object has the fields `train.run` reads from `embedded.Embedded` (tokenizer, model,
params, train_prompts, eval_prompts), with the tokenizer bound to the template's stop token, so
the sampler ends answers where the chat format does. Parameters are placed on the config's mesh as
they are read.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from ar3po_jax import datasets
from ar3po_jax.models import hf
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.prompts import FORMATS, INSTRUCTIONS, Template
from ar3po_jax.types import Prompt

ARCH_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff", "qkv_bias", "tie_embeddings")


@dataclasses.dataclass
class Prepared:
  task: dict  # name, path and load statistics of the training set
  tokenizer: Any
  model: Transformer
  params: dict
  train_prompts: list[Prompt]
  eval_prompts: list[Prompt]
  warm_start_report: dict
  policy: hf.Policy
  eval_sets: dict[str, list[Prompt]]


def problems(config) -> list[str]:
  """What is wrong with the real-data fields (the shared sections are `config_validation`'s)."""
  out = []
  t, m = config.task, config.model
  if not m.get("checkpoint"):
    out.append("model.checkpoint must name a Hugging Face checkpoint folder")
  elif not os.path.isfile(os.path.join(m.checkpoint, "config.json")):
    out.append(f"model.checkpoint {m.checkpoint!r} has no config.json")
  if not t.get("path"):
    out.append("task.path must name the training data file")
  elif not os.path.isfile(t.path):
    out.append(f"task.path {t.path!r} does not exist")
  if t.get("on_error", "raise") not in ("raise", "skip"):
    out.append(f"task.on_error must be 'raise' or 'skip', got {t.on_error!r}")
  if config.tokenizer.get("format", "plain") not in FORMATS:
    out.append(f"tokenizer.format must be one of {sorted(FORMATS)}, got {config.tokenizer.format!r}")
  if config.tokenizer.get("instruction", "none") not in INSTRUCTIONS:
    out.append(f"tokenizer.instruction must be one of {sorted(INSTRUCTIONS)}, got {config.tokenizer.instruction!r}")
  for name, spec in config.eval.get("benchmarks", {}).items():
    if not os.path.isfile(spec.path):
      out.append(f"eval.benchmarks.{name}.path {spec.path!r} does not exist")
  return out


def check_architecture(model_config, loaded) -> None:
  """The config's architecture fields, where set, must be the checkpoint's."""
  wrong = [
      f"model.{f}: config {model_config[f]!r}, checkpoint {getattr(loaded, f)!r}"
      for f in ARCH_FIELDS
      if model_config.get(f) not in (None, 0) and model_config[f] != getattr(loaded, f)
  ]
  if wrong:
    raise hf.CheckpointError("checkpoint does not match the config: " + "; ".join(wrong))


def _fields(spec) -> dict | None:
  fields = {k: v for k, v in spec.get("fields", {}).items() if v and not (k == "answer_format" and v == "raw")}
  return fields or None


def _prompts(problems, template: Template, tokenizer, max_tokens: int) -> tuple[list[Prompt], int]:
  prompts = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in problems]
  kept = [p for p in prompts if not max_tokens or len(p.token_ids) <= max_tokens]
  return kept, len(prompts) - len(kept)


def prepare(config, workdir: str, log: Callable[[str], None] = print, mesh=None) -> Prepared:
  from ar3po_jax import sharding
  from ar3po_jax.hf_tokenizer import load_tokenizer

  mesh = mesh or sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  m = config.model
  policy = hf.load_checkpoint(m.checkpoint, m.param_dtype, m.dtype, mesh)
  check_architecture(m, policy.config)
  log(f"model: {m.checkpoint} ({policy.config.num_params:,} parameters, params {m.param_dtype}, compute {m.dtype})")
  template = Template.from_config(config.tokenizer)
  tokenizer = template.bind(load_tokenizer(config.tokenizer.path or m.checkpoint))
  if tokenizer.vocab_size > policy.config.vocab_size:
    raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {policy.config.vocab_size}")

  t = config.task
  max_tokens = t.get("max_prompt_tokens", 0)
  train, stats = datasets.load(t.name, t.path, _fields(t), t.get("on_error", "raise"), t.get("limit", 0))
  train_prompts, too_long = _prompts(train, template, tokenizer, max_tokens)
  log(f"task: {len(train_prompts):,} training prompts from {t.path} ({stats.num_skipped} rows skipped, {too_long} over {max_tokens} tokens)")

  eval_sets = {}
  for name, spec in config.eval.get("benchmarks", {}).items():
    problems_, _ = datasets.load(spec.loader, spec.path, _fields(spec), t.get("on_error", "raise"), spec.get("limit", 0))
    eval_sets[name], _ = _prompts(problems_, template, tokenizer, 0)
  eval_prompts = [p for prompts in eval_sets.values() for p in prompts]
  task = {"name": t.name, "path": t.path, "load": stats.to_dict(), "dropped_too_long": too_long}
  return Prepared(task, tokenizer, policy.model, policy.params, train_prompts, eval_prompts, {}, policy, eval_sets)
