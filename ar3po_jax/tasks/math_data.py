"""Real math tasks: a Hugging Face checkpoint, its tokenizer, a math training set and the evaluation
benchmarks (configs/paper.py), registered under every known data set name (`datasets.KNOWN`) and
"math" (then `task.loader` names the layout, or `task.fields` maps it).

  prepared = math_data.prepare(config, workdir, log)
  setup = math_data.MathData.build(config, workdir, log, mesh)    # what the RL loop takes

The tokenizer is bound to the template's stop token, so the sampler ends answers where the chat
format does. Parameters are placed on the config's mesh as they are read (each host its shards).
The verifier is `MathVerifier` (config.verify), and the trained policy exports as an HF checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from ar3po_jax import datasets
from ar3po_jax.datasets.prompts import FORMATS, INSTRUCTIONS, Template, field_overrides
from ar3po_jax.models import hf
from ar3po_jax.models.transformer import Transformer
from ar3po_jax.tasks.registry import Setup, register_task
from ar3po_jax.types import Prompt

ARCH_FIELDS = (
    "vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff", "qkv_bias", "tie_embeddings")


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


def data_path(config, path: str) -> str:
  """A data file's path: relative ones are taken from task.data_root (configs/common.py)."""
  return os.path.join(config.task.get("data_root", "") or "", path)


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
  elif not os.path.isfile(data_path(config, t.path)):
    out.append(f"task.path {data_path(config, t.path)!r} does not exist (task.data_root: {t.get('data_root', '')!r})")
  if t.get("on_error", "raise") not in ("raise", "skip"):
    out.append(f"task.on_error must be 'raise' or 'skip', got {t.on_error!r}")
  if config.tokenizer.get("format", "plain") not in FORMATS:
    out.append(f"tokenizer.format must be one of {sorted(FORMATS)}, got {config.tokenizer.format!r}")
  if config.tokenizer.get("instruction", "none") not in INSTRUCTIONS:
    out.append(f"tokenizer.instruction must be one of {sorted(INSTRUCTIONS)}, got {config.tokenizer.instruction!r}")
  for name, spec in config.eval.get("benchmarks", {}).items():
    if not os.path.isfile(data_path(config, spec.path)):
      out.append(f"eval.benchmarks.{name}.path {data_path(config, spec.path)!r} does not exist")
  # The embedded run trains its tokenizer at tokenizer.path when the file is absent; here it must exist.
  if config.tokenizer.get("path") and not os.path.exists(config.tokenizer.path):
    out.append(f"tokenizer.path {config.tokenizer.path!r} does not exist")
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


def _prompts(problems, template: Template, tokenizer, max_tokens: int) -> tuple[list[Prompt], int]:
  prompts = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in problems]
  kept = [p for p in prompts if not max_tokens or len(p.token_ids) <= max_tokens]
  return kept, len(prompts) - len(kept)


def prepare(config, workdir: str, log: Callable[[str], None] = print, mesh=None) -> Prepared:
  from ar3po_jax import sharding
  from ar3po_jax.tokenizers import load_tokenizer

  mesh = mesh or sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  m = config.model
  policy = hf.load_for_config(m, mesh)
  check_architecture(m, policy.config)
  log(f"model: {m.checkpoint} ({policy.config.num_params:,} parameters, params {m.param_dtype}, compute {m.dtype})")
  template = Template.from_config(config.tokenizer)
  tokenizer = template.bind(load_tokenizer(config.tokenizer.path or m.checkpoint))
  if tokenizer.vocab_size > policy.config.vocab_size:
    raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {policy.config.vocab_size}")

  t = config.task
  max_tokens = t.get("max_prompt_tokens", 0)
  train_path = data_path(config, t.path)
  train, stats = datasets.load(
      t.get("loader", "") or t.name, train_path, field_overrides(t), t.get("on_error", "raise"), t.get("limit", 0))
  train_prompts, too_long = _prompts(train, template, tokenizer, max_tokens)
  log(f"task: {len(train_prompts):,} training prompts from {train_path} "
      f"({stats.num_skipped} rows skipped, {too_long} over {max_tokens} tokens)")

  eval_sets = {}
  for name, spec in config.eval.get("benchmarks", {}).items():
    problems_, _ = datasets.load(
        spec.loader, data_path(config, spec.path), field_overrides(spec), t.get("on_error", "raise"),
        spec.get("limit", 0))
    eval_sets[name], _ = _prompts(problems_, template, tokenizer, 0)
  eval_prompts = [p for prompts in eval_sets.values() for p in prompts]
  task = {"name": t.name, "path": train_path, "load": stats.to_dict(), "dropped_too_long": too_long}
  return Prepared(task, tokenizer, policy.model, policy.params, train_prompts, eval_prompts, {}, policy, eval_sets)


@register_task("math", *datasets.KNOWN)
class MathData:
  """A real math data set on a Hugging Face checkpoint as a `Setup` (collective: every host reads its
  own parameter shards)."""

  config_problems = staticmethod(problems)

  @staticmethod
  def build(config, workdir: str, log: Callable[[str], None] = print, mesh=None) -> Setup:
    from ar3po_jax.rewards import MathVerifier

    p = prepare(config, workdir, log, mesh)
    policy, model = p.policy, p.model

    def export(params, path: str) -> None:
      hf.save_checkpoint(hf.Policy.create(model.config, params, policy.hf_config, policy.source), path)

    verifier = MathVerifier(timeout_s=config.verify.timeout_s, fallback=config.verify.fallback or None)
    return Setup(
        tokenizer=p.tokenizer,
        model=model,
        params=p.params,
        train_prompts=p.train_prompts,
        eval_sets=p.eval_sets,
        verifier=verifier,
        title=config.task.name,
        export=export,
        report={"task": p.task},
        on_close=verifier.close,
    )
