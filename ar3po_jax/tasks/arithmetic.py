"""The embedded task: arithmetic expression and word problems with short worked solutions.

Difficulty levels (the knob is the weight of each level; each has hundreds of distinct problems or
more, so the held-out split takes only a small part of any level):
  1  a + b, a multiple of ten plus one digit (340+6): the answer is a copy, learned first
  2  a + b, two digits plus one, without a carry
  3  a - b, two digits minus one, with borrows
  4  a + b, two-digit operands
  5  a + b + c with two-digit operands, or a * b + c: multi-step problems that a tiny model
     rarely solves after the warm start
Levels 1 to 3 come as expressions or as word problems.

Every solution is a chain of `x*y=z.` steps (no spaces inside, so numbers cost few tokens) ending in `\\boxed{N}`. The held-out split is drawn
first and its expressions are excluded from training, so no training problem repeats an evaluation
problem, even in another wording.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

NUM_LEVELS = 5
_NAMES = ("Ann", "Bob", "Eve", "Tom")
_ITEMS = ("apples", "pens", "cards")


@dataclasses.dataclass(frozen=True)
class Problem:
  uid: str
  level: int
  question: str
  solution: str  # the worked solution, ending in \boxed{answer}
  answer: str
  expression: str  # canonical form; equal expressions are the same problem

  @property
  def text(self) -> str:
    """Prompt and solution as one training text (the tokenizer is trained on these)."""
    return f"{self.question} {self.solution}"


def _step(x: int, op: str, y: int) -> tuple[int, str]:
  value = {"+": x + y, "-": x - y, "*": x * y}[op]
  return value, f"{x}{op}{y}={value}."


def _word_problem(rng: np.random.Generator, a: int, op: str, b: int) -> str:
  name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
  if op == "+":
    return f"{name} has {a} {item} and gets {b} more. How many {item} now?"
  return f"{name} has {a} {item} and gives away {b}. How many {item} now?"


def make_problem(rng: np.random.Generator, level: int, uid: str) -> Problem:
  """One random problem of the given level (1..5)."""
  ints = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
  word = False
  if level == 1:
    terms, ops, word = [10 * ints(1, 99), ints(1, 9)], ["+"], rng.random() < 0.5
  elif level == 2:
    a = 10 * ints(1, 9) + ints(0, 8)
    terms, ops, word = [a, ints(1, 9 - a % 10)], ["+"], rng.random() < 0.5
  elif level == 3:
    terms, ops, word = [ints(10, 99), ints(1, 9)], ["-"], rng.random() < 0.5
  elif level == 4:
    terms, ops = [ints(10, 99), ints(10, 99)], ["+"]
  elif level == 5:
    if rng.random() < 0.5:
      terms, ops = [ints(10, 99), ints(10, 99), ints(10, 99)], ["+", "+"]
    else:
      terms, ops = [ints(10, 99), ints(2, 9), ints(10, 99)], ["*", "+"]
  else:
    raise ValueError(f"arithmetic level must be in 1..{NUM_LEVELS}, got {level}")

  expression = "".join(f"{t}{o}" for t, o in zip(terms, ops)) + f"{terms[-1]}"
  value, steps = terms[0], []
  for op, term in zip(ops, terms[1:]):
    value, text = _step(value, op, term)
    steps.append(text)
  question = _word_problem(rng, terms[0], ops[0], terms[1]) if word else f"Compute {expression}."
  solution = " ".join(steps) + f" \\boxed{{{value}}}"
  return Problem(uid, level, question, solution, str(value), expression)


def _draw(rng, count, level_weights, exclude: set[str], unique: bool) -> list[Problem]:
  """count problems with levels drawn by weight, none of whose expressions is in `exclude`;
  distinct expressions when `unique` (the held-out split), repeats allowed otherwise (training:
  small levels must keep their weight, not be crowded out by large ones)."""
  weights = np.asarray(level_weights, np.float64)
  if weights.shape != (NUM_LEVELS,) or np.any(weights < 0) or weights.sum() <= 0:
    raise ValueError(f"task.level_weights must be {NUM_LEVELS} non-negative numbers, not all 0; got {tuple(level_weights)}")
  problems, seen = [], set(exclude)
  attempts = 0
  while len(problems) < count:
    attempts += 1
    if attempts > 50 * count + 1000:
      raise ValueError(f"could not draw {count} problems with level weights {tuple(level_weights)} outside the held-out split")
    level = int(rng.choice(NUM_LEVELS, p=weights / weights.sum())) + 1
    problem = make_problem(rng, level, "")
    if problem.expression in seen:
      continue
    if unique:
      seen.add(problem.expression)
    # The question text is the prompt's identity: repeats share the replay buffer and posteriors.
    problems.append(dataclasses.replace(problem, uid=problem.question))
  return problems


@dataclasses.dataclass(frozen=True)
class ArithmeticTask:
  train: list[Problem]
  eval: list[Problem]

  @classmethod
  def generate(cls, seed: int, num_train: int, num_eval: int, level_weights: Sequence[float]) -> "ArithmeticTask":
    """Deterministic in seed: the eval split is drawn first, then training avoids its expressions."""
    eval_problems = _draw(np.random.default_rng([seed, 1]), num_eval, level_weights, set(), unique=True)
    train_problems = _draw(np.random.default_rng([seed, 0]), num_train, level_weights, {p.expression for p in eval_problems}, unique=False)
    return cls(train_problems, eval_problems)

  def corpus(self) -> list[str]:
    """Text for training the tokenizer: every problem with its solution."""
    return [p.text for p in self.train + self.eval]
