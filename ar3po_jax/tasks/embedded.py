"""The embedded task ("arithmetic"): everything the run needs before RL, made locally and cached in
the workdir: the arithmetic problems, a sentencepiece tokenizer trained on them, and the
warm-started policy. Its answers are integers, so the in-process exact check is the whole verifier.

Cache files are keyed by the config fields they depend on; a changed field retrains that piece
instead of silently reusing a stale one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Callable

import jax
import numpy as np

from ar3po_jax import distributed, evaluation
from ar3po_jax.datasets.prompts import Template
from ar3po_jax.models import params_io
from ar3po_jax.models.transformer import ModelConfig, Transformer, init_params
from ar3po_jax.policy import PolicySampler
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.sampling import SamplingParams
from ar3po_jax.tasks import warmstart
from ar3po_jax.tasks.arithmetic import ArithmeticTask
from ar3po_jax.tasks.registry import Setup, register_task
from ar3po_jax.tokenizers.spm import SentencePieceTokenizer, load_or_train
from ar3po_jax.types import Prompt


@dataclasses.dataclass
class Embedded:
  task: ArithmeticTask
  tokenizer: SentencePieceTokenizer
  model: Transformer
  params: dict
  train_prompts: list[Prompt]
  eval_prompts: list[Prompt]
  warm_start_report: dict


def _key(*parts) -> str:
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# Model fields that say how a run executes or exports, not what the warm start computes: adding or
# changing one must not invalidate cached warm starts (adding scan_layers and remat once did).
_NOT_IN_WARMSTART_KEY = (*ModelConfig.EXECUTION_FIELDS, "export_every")


def warmstart_key(config, task_fields: dict, tokenizer_file: str) -> str:
  model = {k: v for k, v in config.model.to_dict().items() if k not in _NOT_IN_WARMSTART_KEY}
  return _key(task_fields, model, config.warmstart.to_dict(), config.rollout.max_new_tokens, config.seed,
              tokenizer_file)


def prepare(config, workdir: str, log: Callable[[str], None] = print) -> Embedded:
  t = config.task
  task = ArithmeticTask.generate(t.seed, t.num_train, t.num_eval, tuple(t.level_weights), t.get("teacher_slip", 0.0))
  cache_dir = config.get("cache_dir") or os.path.join(workdir, "cache")
  # RL's pool is not the tokenizer's, and where real data lies does not concern this task: neither keys the cache.
  task_fields = {k: v for k, v in t.to_dict().items() if k not in ("rl_prompts", "data_root")}
  tok_path = config.tokenizer.path or os.path.join(
      cache_dir, f"tokenizer_{_key(task_fields, config.tokenizer.vocab_size)}.model")
  tokenizer = load_or_train(tok_path, task.corpus, config.tokenizer.vocab_size)
  model = Transformer(ModelConfig.from_config(config.model, tokenizer.vocab_size))
  log(f"model: {model.config.num_params:,} parameters; tokenizer: {tokenizer.vocab_size} pieces ({tok_path})")

  # RL draws from a fixed pool of distinct problems, small enough that prompts recur across epochs:
  # response reuse and AERO's posteriors only act on prompts seen before.
  pool = list({p.uid: p for p in task.train}.values())[: t.rl_prompts or None]
  template = Template()  # plain: BOS + the question
  train_prompts = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in pool]
  eval_prompts = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in task.eval]

  ws = config.warmstart
  cache_key = warmstart_key(config, task_fields, os.path.basename(tok_path))
  params_path = os.path.join(cache_dir, f"warmstart_{cache_key}.npz")
  report_path = os.path.join(cache_dir, f"warmstart_{cache_key}.json")
  if os.path.isfile(params_path) and os.path.isfile(report_path):
    params = params_io.load_npz(params_path)
    with open(report_path) as f:
      report = json.load(f)
    log(f"warm start: reusing {params_path}")
  else:
    params, report = _warm_start(config, task, tokenizer, model, eval_prompts, log)
    params_io.save_npz(params, params_path)
    with open(report_path, "w") as f:
      json.dump(report, f, indent=1)
  log(evaluation.format_histogram(report["pass_rates"], ws.pass_rate_samples))
  return Embedded(task, tokenizer, model, params, train_prompts, eval_prompts, report)


def _warm_start(config, task, tokenizer, model, eval_prompts, log):
  ws = config.warmstart
  tokens, mask, prompt_slots = warmstart.pack_examples(
      [p.question for p in task.train], [p.solution for p in task.train], tokenizer, config.rollout.max_new_tokens
  )
  params = init_params(model.config, jax.random.key(config.seed))
  log(f"warm start: {ws.steps} supervised steps at batch {ws.batch_size} on {len(task.train):,} worked solutions")
  params, loss, seconds = warmstart.warm_start(
      model,
      params,
      tokens,
      mask,
      prompt_slots,
      steps=ws.steps,
      batch_size=ws.batch_size,
      lr=ws.lr,
      warmup_steps=ws.warmup_steps,
      seed=config.seed,
      on_step=lambda i, loss: log(f"  warm start step {i:4d}  loss {loss:.3f}") if i % 200 == 0 else None,
  )
  sampler = PolicySampler(
      model,
      params,
      tokenizer,
      SamplingParams(config.rollout.max_new_tokens, 1.0, stop_ids=tokenizer.stop_ids, pad_id=tokenizer.pad_id),
      jax.random.key(config.seed + 1),
  )
  start = time.time()
  rates = evaluation.pass_rates(sampler, eval_prompts[: ws.pass_rate_prompts], ExactVerifier(), ws.pass_rate_samples)
  report = {
      "loss": loss,
      "seconds": seconds,
      "pass_rates": evaluation.pass_rate_summary(rates, ws.pass_rate_samples),
      "pass_rate_seconds": time.time() - start,
      "per_prompt": np.round(rates, 4).tolist(),
  }
  log(f"warm start: final loss {loss:.3f} in {seconds:.0f} s")
  return params, report


def config_problems(config) -> list[str]:
  t, ws, out = config.task, config.warmstart, []
  if not (ws.steps >= 0 and ws.batch_size >= 1):
    out.append("warmstart.steps >= 0 and warmstart.batch_size >= 1 required")
  if t.num_eval < config.eval.num_prompts:
    out.append(f"task.num_eval ({t.num_eval}) must be >= eval.num_prompts ({config.eval.num_prompts})")
  if t.num_train < 1:
    out.append(f"task.num_train must be >= 1, got {t.num_train}")
  if t.rl_prompts < 0:
    out.append(f"task.rl_prompts must be >= 0 (0: every training problem), got {t.rl_prompts}")
  if len(tuple(t.level_weights)) != 5:
    out.append(f"task.level_weights must have 5 entries, got {tuple(t.level_weights)}")
  slip = t.get("teacher_slip", 0.0)
  if not 0.0 <= slip <= 1.0:
    out.append(f"task.teacher_slip must lie in [0, 1], got {slip}")
  return out


@register_task("arithmetic")
class Arithmetic:
  """The embedded task as a `Setup`, identical on every process."""

  config_problems = staticmethod(config_problems)

  @staticmethod
  def build(config, workdir: str, log: Callable[[str], None] = print, mesh=None) -> Setup:
    del mesh  # the parameters are small and made here; the loop places them
    # Process 0 builds the cached tokenizer and warm start first, so that processes sharing a disk
    # read them rather than race to write them; its parameters then win, whatever each host computed.
    prepared = distributed.leader_first(lambda: prepare(config, workdir, log), "embedded.prepare")
    prepared.params = distributed.broadcast(prepared.params)
    distributed.check_same_on_all_hosts(
        [p.token_ids for p in prepared.train_prompts + prepared.eval_prompts], "the tokenized prompts"
    )
    return Setup(
        tokenizer=prepared.tokenizer,
        model=prepared.model,
        params=prepared.params,
        train_prompts=prepared.train_prompts,
        eval_sets={"heldout": prepared.eval_prompts},
        verifier=ExactVerifier(),
        title="the embedded arithmetic task",
        report=prepared.warm_start_report,
    )
