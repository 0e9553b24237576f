r"""The arithmetic task for a pretrained chat model: the project's generator (`tasks.arithmetic`)
rendered in the model's chat template with an answer instruction, on a Hugging Face
checkpoint (configs/hf.py:STRATEGY,arithmetic_chat).

  train, eval_ = arithmetic_chat.make_prompts(config.task, template, tokenizer)
  setup = arithmetic_chat.build(config, workdir, log, mesh)     # registered: tasks.build_setup(config, ...)

Why this task: RL with a group baseline learns only from prompts the policy sometimes solves and
sometimes not. SmolLM2-135M-Instruct answers 0 of 32 GSM8K test problems greedily (issue 12), so
GSM8K gives it no signal.

Measured (benchmarks/smollm2_levels.py, SmolLM2-135M-Instruct as scripts/smollm2_hf.py builds it: the
Q4_1 GGUF dequantized to float32; 2-core CPU shared with other jobs, load average 5 to 10):

  python -m benchmarks.smollm2_levels --checkpoint=/tmp/smollm2_hf --prompts=12 --samples=4 \
      --max_new_tokens=64 --temperature=0.7 --levels=0,1,2 --answer_format=number

  answer_format=number, temperature 0.7, 64 tokens (12 prompts x 4 samples a level):
    level 0 (3+5)    pass rate 0.562  histogram of correct per prompt (0..4) [2, 0, 3, 7, 0]  mixed 83%
    level 1 (340+6)  pass rate 0.104  histogram [8, 3, 1, 0, 0]                               mixed 33%
    level 2          pass rate 0.104  histogram [10, 0, 1, 1, 0]                              mixed 17%
  answer_format=boxed (the boxed instruction), temperature 1, 128 tokens (last session): level 1 0 of 48
  samples (73% cut at 128 tokens: it reasons at length, and wrongly), level 0 0 of 32 (it writes
  "3+5=8", never boxes it, then drifts into noise).
So the model can add but ignores the box: asked for the bare number it answers "3 + 5 = 8" in about 22
tokens. The task therefore asks for the final number alone and reads the last number when there is no
box (`NumberVerifier`), and mixes single-digit sums and level 1 at 3:1 (SMOLLM2_SINGLE_DIGIT_WEIGHT,
SMOLLM2_LEVEL_WEIGHTS), which expects about 70% of prompts mixed at 4 samples. Levels 3 to 5 were not
measured. 12 prompts a level is a small sample: the histograms guide the mix, they are not precise rates.

Our choices: the worked solutions and the teacher's slip are unused (no warm start: the model is
pretrained); the training pool is the distinct problems of a fixed seed, disjoint from the held-out
split as in the embedded task; task.answer_format picks the instruction and the verifier ("boxed": the
last \boxed{} integer, `ExactVerifier`; "number": the bare final number, `NumberVerifier`), a field
of the task rather than of the loop.
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
SMOLLM2_PASS_RATES = {0: 0.562, 1: 0.104, 2: 0.104}
# Levels 1..5 (task.level_weights) and level 0 (task.single_digit_weight), chosen from the histogram: level 0
# is mixed on 83% of prompts, level 1 on 33%, level 2 on 17%; 3:1 of levels 0 and 1 expects about 70% mixed.
SMOLLM2_SINGLE_DIGIT_WEIGHT = 3.0
SMOLLM2_LEVEL_WEIGHTS = (1.0, 0.0, 0.0, 0.0, 0.0)
# The sampling the pass rates were measured at; configs/hf.py's task samples and evaluates the same way.
SMOLLM2_MEASURED = {"answer_format": "number", "temperature": 0.7, "max_new_tokens": 64}
# task.answer_format: where the model is asked to put its answer, and where the verifier reads it.
#   boxed   the template's boxed instruction (tokenizer.instruction="boxed"); reward: the last \boxed{} integer.
#   number  NUMBER_INSTRUCTION after the question (tokenizer.instruction="none"); reward: the last \boxed{}
#           integer, else the last number of the response (the verifier's lenient "last_number" fallback).
ANSWER_FORMATS = ("boxed", "number")
NUMBER_INSTRUCTION = "Reply with the final number only."
SINGLE_DIGIT_HELD_OUT = 27  # a third of the 81 single-digit sums


def question_text(question: str, answer_format: str) -> str:
  """The user message's question for an answer format (the template adds its own instruction to it)."""
  if answer_format not in ANSWER_FORMATS:
    raise ValueError(f"task.answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
  return question if answer_format == "boxed" else f"{question}\n{NUMBER_INSTRUCTION}"


def template_instruction(answer_format: str) -> str:
  """The template instruction (config.tokenizer.instruction) an answer format needs."""
  return "boxed" if answer_format == "boxed" else "none"


class NumberVerifier:
  """Reward 1 when the response's answer is the integer gold: its last \\boxed{} content, else (lenient)
  its last number (`rewards.extract`'s "last_number" fallback, commas dropped), in-process.

  Our choice, and its hazard (rewards/extract.py): the last number of a response that never commits to
  an answer can be a step of a derivation. It is used only with NUMBER_INSTRUCTION, which asks for the
  number alone, so a response that rambles on is usually scored on its last, unrelated number."""

  def __call__(self, texts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    from ar3po_jax.rewards.extract import extract_answer

    if len(texts) != len(answers):
      raise ValueError(f"NumberVerifier: {len(texts)} texts but {len(answers)} answers")
    out = np.zeros(len(texts), np.float32)
    for i, (text, answer) in enumerate(zip(texts, answers)):
      found = extract_answer(text, ("boxed",), "last_number")
      try:
        out[i] = float(found is not None and int(found.replace(",", "").strip()) == int(answer.strip()))
      except ValueError:  # a fraction or decimal, or a box that holds no integer
        out[i] = 0.0
    return out

  def metrics(self) -> dict[str, float]:
    return {}


def make_verifier(answer_format: str):
  from ar3po_jax.rewards.exact import ExactVerifier

  question_text("", answer_format)  # validates
  return ExactVerifier() if answer_format == "boxed" else NumberVerifier()


def to_prompts(
    problems: Sequence[arithmetic.Problem], template: Template, tokenizer, answer_format: str = "boxed"
) -> list[Prompt]:
  """The problems' questions in the template; uid = the question, as in the embedded task."""
  return [template.prompt(p.question, question_text(p.question, answer_format), p.answer, tokenizer) for p in problems]


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


def _share(count: int, weight: float, total: float) -> int:
  return int(round(count * weight / total)) if total > 0 else 0


def make_problems(task_config) -> tuple[list[arithmetic.Problem], list[arithmetic.Problem]]:
  """(training pool, held-out split): distinct problems, the pool disjoint from the split.

  Levels 1 to 5 come from the generator by `task.level_weights`; `task.single_digit_weight` (default 0)
  adds level 0, the single-digit sums, on the same scale. Level 0 has only 81 problems: at most
  SINGLE_DIGIT_HELD_OUT of them are held out and the rest trained on, and when level 0 runs short the other
  levels shrink with it so that both the pool and the split keep the weights' proportions (they are then
  smaller than task.rl_prompts / task.num_eval). The pool interleaves the levels, so a cap keeps them mixed."""
  t = task_config
  w0, weights = float(t.get("single_digit_weight", 0.0)), tuple(t.level_weights)
  rest_weight = float(sum(weights))
  total = w0 + rest_weight

  def split(count: int, available: int) -> tuple[int, int]:
    """(level-0 count, other levels' count) for `count` problems when level 0 has `available`."""
    want = _share(count, w0, total)
    if want <= available:
      return want, count - want
    return available, _share(available, rest_weight, w0)

  sums = single_digit_sums(t.seed, 81) if w0 > 0 else []
  n0_eval, n_eval = split(t.num_eval, SINGLE_DIGIT_HELD_OUT)
  held_out0, train0 = sums[:n0_eval], sums[n0_eval:]
  pool_size = t.get("rl_prompts", 0) or t.num_train
  n0_pool, n_pool = split(pool_size, len(train0))
  pool, held_out = [], []
  if rest_weight > 0:
    task = arithmetic.ArithmeticTask.generate(t.seed, max(t.num_train, n_pool), n_eval, weights)
    pool, held_out = list({p.uid: p for p in task.train}.values())[:n_pool], task.eval
  return _interleave(train0[:n0_pool], pool), _interleave(held_out0, held_out)


def _interleave(a: list, b: list) -> list:
  """a and b merged in proportion, in order (so any prefix holds both in about their ratio)."""
  if not a or not b:
    return a + b
  keyed = [((i + 0.5) / len(a), 0, x) for i, x in enumerate(a)] + [((i + 0.5) / len(b), 1, x) for i, x in enumerate(b)]
  return [x for *_, x in sorted(keyed, key=lambda k: k[:2])]


def make_prompts(task_config, template: Template, tokenizer) -> tuple[list[Prompt], list[Prompt]]:
  pool, held_out = make_problems(task_config)
  answer_format = task_config.get("answer_format", "boxed")
  return to_prompts(pool, template, tokenizer, answer_format), to_prompts(held_out, template, tokenizer, answer_format)


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
  w0 = t.get("single_digit_weight", 0.0)
  if w0 < 0:
    out.append(f"task.single_digit_weight must be >= 0, got {w0}")
  if weights.shape != (arithmetic.NUM_LEVELS,) or np.any(weights < 0) or weights.sum() + max(w0, 0) <= 0:
    out.append(f"task.level_weights must be {arithmetic.NUM_LEVELS} non-negative numbers, not all 0 unless "
               f"task.single_digit_weight > 0; got {tuple(t.level_weights)}")
  if t.num_train < 1 or t.num_eval < 1:
    out.append(f"task.num_train and task.num_eval must be >= 1, got {t.num_train}, {t.num_eval}")
  if config.tokenizer.get("format", "plain") not in FORMATS:
    out.append(f"tokenizer.format must be one of {sorted(FORMATS)}, got {config.tokenizer.format!r}")
  if config.tokenizer.get("instruction", "none") not in INSTRUCTIONS:
    out.append(f"tokenizer.instruction must be one of {sorted(INSTRUCTIONS)}, got {config.tokenizer.instruction!r}")
  answer_format = t.get("answer_format", "boxed")
  if answer_format not in ANSWER_FORMATS:
    out.append(f"task.answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
  elif config.tokenizer.get("instruction", "none") != template_instruction(answer_format):
    out.append(f"tokenizer.instruction must be {template_instruction(answer_format)!r} for {NAME} with "
               f"task.answer_format={answer_format!r} (the task asks for the answer itself), "
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
  from ar3po_jax.tasks import math_data
  from ar3po_jax.tokenizers import load_tokenizer

  mesh = mesh or sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  m = config.model
  policy = hf.load_for_config(m, mesh)
  math_data.check_architecture(m, policy.config)
  log(f"model: {m.checkpoint} ({policy.config.num_params:,} parameters, params {m.param_dtype}, compute {m.dtype})")
  template = Template.from_config(config.tokenizer)
  tokenizer = template.bind(load_tokenizer(config.tokenizer.path or m.checkpoint))
  if tokenizer.vocab_size > policy.config.vocab_size:
    raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {policy.config.vocab_size}")
  train_prompts, eval_prompts = make_prompts(config.task, template, tokenizer)
  log(f"task: {len(train_prompts):,} distinct training problems, {len(eval_prompts)} held out, "
      f"level weights {tuple(config.task.level_weights)}, single-digit weight "
      f"{config.task.get('single_digit_weight', 0.0)}, answer format {config.task.get('answer_format', 'boxed')}")
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
      verifier=make_verifier(config.task.get("answer_format", "boxed")),
      title=f"{NAME} ({os.path.basename(os.path.normpath(m.checkpoint))})",
      export=export,
      report={
          "task": {"name": NAME, "level_weights": list(config.task.level_weights), "num_train": len(train_prompts),
                   "single_digit_weight": config.task.get("single_digit_weight", 0.0),
                   "answer_format": config.task.get("answer_format", "boxed")}
      },
  )


@register_task(NAME)
class ArithmeticChat:
  """The task as the registry takes it. The verifier is in-process (every answer is an integer): the exact
  boxed check, or `NumberVerifier` with task.answer_format="number"."""

  config_problems = staticmethod(problems)
  build = staticmethod(build)
