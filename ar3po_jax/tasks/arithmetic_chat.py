r"""The arithmetic task for a pretrained chat model: the project's generator (`tasks.arithmetic`)
rendered in the model's chat template with the boxed-answer instruction, on a Hugging Face
checkpoint (configs/hf.py:STRATEGY,arithmetic_chat).

  train, eval_ = arithmetic_chat.make_prompts(config.task, template, tokenizer)
  prepared = arithmetic_chat.prepare(config, workdir, log)     # checkpoint, tokenizer, prompts

Why this task: RL with a group baseline learns only from prompts the policy sometimes solves and
sometimes not. SmolLM2-135M-Instruct answers 0 of 32 GSM8K test problems greedily (issue 12), so
GSM8K gives it no signal; sums of small numbers it solves some of the time.

Measured (benchmarks/smollm2_levels.py, SmolLM2-135M-Instruct from scripts/smollm2_hf.py, float32,
temperature 1, 12 prompts x 4 samples a level, 128 new tokens): see SMOLLM2_PASS_RATES and
BENCHMARKS.md. Our choice of SMOLLM2_LEVEL_WEIGHTS follows from it: weight on the levels whose
prompts are mixed (solved by some but not all samples), none on levels it never solves.

Our choices: the worked solutions and the teacher's slip are unused (no warm start: the model is
pretrained); the training pool is the distinct problems of a fixed seed, disjoint from the held-out
split as in the embedded task; the verifier checks the last \boxed{} integer (`ExactVerifier`).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from ar3po_jax.prompts import FORMATS, INSTRUCTIONS, Template
from ar3po_jax.rollout.types import Prompt
from ar3po_jax.tasks import arithmetic

NAME = "arithmetic_chat"
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # its chat template's default
# Fraction of samples correct per level 1..5, measured as in the module docstring (None: not yet measured).
SMOLLM2_PASS_RATES: tuple[float, ...] | None = None
SMOLLM2_LEVEL_WEIGHTS = (2.0, 2.0, 1.0, 1.0, 0.0)


def to_prompts(problems: Sequence[arithmetic.Problem], template: Template, tokenizer) -> list[Prompt]:
  """The problems' questions in the template; uid = the question, as in the embedded task."""
  return [template.prompt(p.question, p.question, p.answer, tokenizer) for p in problems]


def level_problems(seed: int, level: int, count: int) -> list[arithmetic.Problem]:
  """`count` distinct problems of one level (the pass-rate histogram's sample)."""
  weights = [0.0] * arithmetic.NUM_LEVELS
  weights[level - 1] = 1.0
  return arithmetic.ArithmeticTask.generate(seed, 0, count, weights).eval


def make_problems(task_config) -> tuple[list[arithmetic.Problem], list[arithmetic.Problem]]:
  """(training pool, held-out split): distinct problems, the pool disjoint from the split."""
  t = task_config
  task = arithmetic.ArithmeticTask.generate(t.seed, t.num_train, t.num_eval, tuple(t.level_weights))
  pool = list({p.uid: p for p in task.train}.values())[: t.get("rl_prompts", 0) or None]
  return pool, task.eval


def make_prompts(task_config, template: Template, tokenizer) -> tuple[list[Prompt], list[Prompt]]:
  pool, held_out = make_problems(task_config)
  return to_prompts(pool, template, tokenizer), to_prompts(held_out, template, tokenizer)


def problems(config) -> list[str]:
  """What is wrong with this task's fields."""
  out = []
  t, m = config.task, config.model
  checkpoint = m.get("checkpoint")
  if not checkpoint:
    out.append("model.checkpoint (or model.hf_path) must name a Hugging Face checkpoint folder")
  elif not os.path.isfile(os.path.join(checkpoint, "config.json")):
    out.append(f"model.checkpoint {checkpoint!r} has no config.json")
  weights = np.asarray(tuple(t.level_weights), np.float64)
  if weights.shape != (arithmetic.NUM_LEVELS,) or np.any(weights < 0) or weights.sum() <= 0:
    out.append(f"task.level_weights must be {arithmetic.NUM_LEVELS} non-negative numbers, not all 0; got {tuple(t.level_weights)}")
  if t.num_train < 1 or t.num_eval < 1:
    out.append(f"task.num_train and task.num_eval must be >= 1, got {t.num_train}, {t.num_eval}")
  if config.tokenizer.get("format", "plain") not in FORMATS:
    out.append(f"tokenizer.format must be one of {sorted(FORMATS)}, got {config.tokenizer.format!r}")
  if config.tokenizer.get("instruction", "none") not in INSTRUCTIONS:
    out.append(f"tokenizer.instruction must be one of {sorted(INSTRUCTIONS)}, got {config.tokenizer.instruction!r}")
  if config.tokenizer.get("instruction", "none") != "boxed":
    out.append(f"tokenizer.instruction must be 'boxed' for {NAME} (the verifier reads \\boxed{{}}), got {config.tokenizer.instruction!r}")
  return out


def prepare(config, workdir: str, log: Callable[[str], None] = print, mesh=None):
  """The checkpoint, its bound tokenizer and the task's prompts, as `real.Prepared`; the held-out split
  is the eval set "arithmetic", followed by any config.eval.benchmarks."""
  from ar3po_jax import datasets, real, sharding
  from ar3po_jax.hf_tokenizer import load_tokenizer
  from ar3po_jax.models import hf

  mesh = mesh or sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  m = config.model
  policy = hf.load_checkpoint(m.checkpoint, m.param_dtype, m.dtype, mesh)
  real.check_architecture(m, policy.config)
  log(f"model: {m.checkpoint} ({policy.config.num_params:,} parameters, params {m.param_dtype}, compute {m.dtype})")
  template = Template.from_config(config.tokenizer)
  tokenizer = template.bind(load_tokenizer(config.tokenizer.path or m.checkpoint))
  train_prompts, eval_prompts = make_prompts(config.task, template, tokenizer)
  log(f"task: {len(train_prompts):,} distinct training problems, {len(eval_prompts)} held out, level weights {tuple(config.task.level_weights)}")
  eval_sets = {"arithmetic": eval_prompts}
  for name, spec in config.eval.get("benchmarks", {}).items():
    found, _ = datasets.load(spec.loader, spec.path, real._fields(spec), "raise", spec.get("limit", 0))
    eval_sets[name] = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in found]
  task = {"name": NAME, "level_weights": list(config.task.level_weights), "num_train": len(train_prompts)}
  all_eval = [p for prompts in eval_sets.values() for p in prompts]
  return real.Prepared(task, tokenizer, policy.model, policy.params, train_prompts, all_eval, {}, policy, eval_sets)


class ArithmeticChat:
  """The task as the task registry (ar3po_jax/tasks/registry.py) takes it: `register_task(NAME)` on this
  class. The verifier is the in-process exact check: every answer is an integer."""

  config_problems = staticmethod(problems)

  @staticmethod
  def build(config, workdir: str, log: Callable[[str], None] = print, mesh=None):
    from ar3po_jax.models import hf
    from ar3po_jax.rewards.exact import ExactVerifier
    from ar3po_jax.tasks.registry import Setup

    p = prepare(config, workdir, log, mesh)

    def export(params, path: str) -> None:
      hf.save_checkpoint(hf.Policy.create(p.model.config, params, p.policy.hf_config, p.policy.source), path)

    return Setup(
        tokenizer=p.tokenizer,
        model=p.model,
        params=p.params,
        train_prompts=p.train_prompts,
        eval_sets=p.eval_sets,
        verifier=ExactVerifier(),
        title=f"{NAME} ({os.path.basename(os.path.normpath(config.model.checkpoint))})",
        export=export,
        report={"task": p.task},
    )
