r"""The arithmetic task for a pretrained chat model: the project's generator (`tasks.arithmetic`)
rendered in the model's chat template with the boxed-answer instruction, on a Hugging Face
checkpoint (configs/hf.py:STRATEGY,arithmetic_chat).

  train, eval_ = arithmetic_chat.make_prompts(config.task, template, tokenizer)
  setup = arithmetic_chat.build(config, workdir, log, mesh)     # registered: tasks.build_setup(config, ...)

Why this task: RL with a group baseline learns only from prompts the policy sometimes solves and
sometimes not. SmolLM2-135M-Instruct answers 0 of 32 GSM8K test problems greedily (issue 12), so
GSM8K gives it no signal; issue 12 measured it solving single-digit sums in about 15% of samples at
temperature 1 (48 prompts x 4 samples).

Measured (benchmarks/smollm2_levels.py, SmolLM2-135M-Instruct as scripts/smollm2_hf.py builds it:
the Q4_1 GGUF dequantized to float32; temperature 1, 128 new tokens, on a 2-core CPU shared by many
jobs): level 1 (340+6) 0 of 48 samples correct (12 prompts x 4), 73% of responses cut at 128 tokens
(it reasons at length, and wrongly: "990 + 6 ... multiplying 990 by 6"); single-digit sums
(`single_digit_sums`, level 0) 0 of 32 (8 x 4), 66% cut (it writes "3+5=8", never boxes it, then
drifts into noise at temperature 1). Levels 2 to 5 were not measured (no easier than level 1). So
at this budget and temperature this model has no mixed prompts on any level: the Q4_1 weights may be
weaker than the release issue 12 measured (15% on single-digit sums). SMOLLM2_LEVEL_WEIGHTS is
therefore NOT chosen from a histogram: it weights the easiest levels, a placeholder until levels 0
to 2 are measured with a longer budget or a lower temperature (on a quiet machine or a GPU).

Our choices: the worked solutions and the teacher's slip are unused (no warm start: the model is
pretrained); the training pool is the distinct problems of a fixed seed, disjoint from the held-out
split as in the embedded task; the verifier checks the last \boxed{} integer (`ExactVerifier`).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from ar3po_jax.datasets.prompts import FORMATS, INSTRUCTIONS, Template
from ar3po_jax.tasks import arithmetic
from ar3po_jax.tasks.registry import Setup, register_task
from ar3po_jax.types import Prompt

NAME = "arithmetic_chat"
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # its chat template's default
# Fraction of samples correct by level, measured as in the module docstring (absent: not measured).
SMOLLM2_PASS_RATES = {0: 0.0, 1: 0.0}
SMOLLM2_LEVEL_WEIGHTS = (2.0, 2.0, 1.0, 1.0, 0.0)  # placeholder (see above): the easiest levels first


def to_prompts(problems: Sequence[arithmetic.Problem], template: Template, tokenizer) -> list[Prompt]:
  """The problems' questions in the template; uid = the question, as in the embedded task."""
  return [template.prompt(p.question, p.question, p.answer, tokenizer) for p in problems]


def single_digit_sums(seed: int, count: int) -> list[arithmetic.Problem]:
  """`count` distinct sums of two digits 1..9 (at most 81): easier than the generator's level 1, the
  regime where issue 12 measured SmolLM2 solving some samples. Reported as level 0."""
  rng = np.random.default_rng([seed, 2])
  pairs = [(a, b) for a in range(1, 10) for b in range(1, 10)]
  chosen = [pairs[i] for i in rng.permutation(len(pairs))[:count]]
  return [
      arithmetic.Problem(
          f"Compute {a}+{b}.", 0, f"Compute {a}+{b}.", f"{a}+{b}={a + b}. \\boxed{{{a + b}}}", str(a + b), f"{a}+{b}")
      for a, b in chosen
  ]


def level_problems(seed: int, level: int, count: int) -> list[arithmetic.Problem]:
  """`count` distinct problems of one level (the pass-rate histogram's sample); level 0: single-digit sums."""
  if level == 0:
    return single_digit_sums(seed, count)
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
    out.append(f"task.level_weights must be {arithmetic.NUM_LEVELS} non-negative numbers, not all 0; "
               f"got {tuple(t.level_weights)}")
  if t.num_train < 1 or t.num_eval < 1:
    out.append(f"task.num_train and task.num_eval must be >= 1, got {t.num_train}, {t.num_eval}")
  if config.tokenizer.get("format", "plain") not in FORMATS:
    out.append(f"tokenizer.format must be one of {sorted(FORMATS)}, got {config.tokenizer.format!r}")
  if config.tokenizer.get("instruction", "none") not in INSTRUCTIONS:
    out.append(f"tokenizer.instruction must be one of {sorted(INSTRUCTIONS)}, got {config.tokenizer.instruction!r}")
  if config.tokenizer.get("instruction", "none") != "boxed":
    out.append(f"tokenizer.instruction must be 'boxed' for {NAME} (the verifier reads \\boxed{{}}), "
               f"got {config.tokenizer.instruction!r}")
  from ar3po_jax.tasks.math_data import data_path

  for name, spec in config.eval.get("benchmarks", {}).items():
    if not os.path.isfile(data_path(config, spec.path)):
      out.append(f"eval.benchmarks.{name}.path {data_path(config, spec.path)!r} does not exist")
  return out


def build(config, workdir: str, log: Callable[[str], None] = print, mesh=None) -> Setup:
  """The checkpoint, its bound tokenizer and the task's prompts as a `Setup`; the held-out split is the
  eval set "arithmetic", followed by any config.eval.benchmarks (paths relative to task.data_root)."""
  from ar3po_jax import datasets, sharding
  from ar3po_jax.datasets.prompts import field_overrides
  from ar3po_jax.models import hf
  from ar3po_jax.rewards.exact import ExactVerifier
  from ar3po_jax.tasks import math_data
  from ar3po_jax.tokenizers import load_tokenizer

  mesh = mesh or sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  m = config.model
  policy = hf.load_checkpoint(m.checkpoint, m.param_dtype, m.dtype, mesh)
  math_data.check_architecture(m, policy.config)
  log(f"model: {m.checkpoint} ({policy.config.num_params:,} parameters, params {m.param_dtype}, compute {m.dtype})")
  template = Template.from_config(config.tokenizer)
  tokenizer = template.bind(load_tokenizer(config.tokenizer.path or m.checkpoint))
  if tokenizer.vocab_size > policy.config.vocab_size:
    raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {policy.config.vocab_size}")
  train_prompts, eval_prompts = make_prompts(config.task, template, tokenizer)
  log(f"task: {len(train_prompts):,} distinct training problems, {len(eval_prompts)} held out, "
      f"level weights {tuple(config.task.level_weights)}")
  eval_sets = {"arithmetic": eval_prompts}
  for name, spec in config.eval.get("benchmarks", {}).items():
    found, _ = datasets.load(
        spec.loader, math_data.data_path(config, spec.path), field_overrides(spec), "raise", spec.get("limit", 0))
    eval_sets[name] = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in found]

  def export(params, path: str) -> None:
    hf.save_checkpoint(hf.Policy.create(policy.model.config, params, policy.hf_config, policy.source), path)

  return Setup(
      tokenizer=tokenizer,
      model=policy.model,
      params=policy.params,
      train_prompts=train_prompts,
      eval_sets=eval_sets,
      verifier=ExactVerifier(),
      title=f"{NAME} ({os.path.basename(os.path.normpath(m.checkpoint))})",
      export=export,
      report={
          "task": {"name": NAME, "level_weights": list(config.task.level_weights), "num_train": len(train_prompts)}
      },
  )


@register_task(NAME)
class ArithmeticChat:
  """The task as the registry takes it. The verifier is the in-process exact check: every answer is an
  integer."""

  config_problems = staticmethod(problems)
  build = staticmethod(build)
