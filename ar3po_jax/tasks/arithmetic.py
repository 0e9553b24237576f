"""The embedded task: arithmetic expression and word problems with short worked solutions.

Difficulty levels (the knob is the weight of each level; each has hundreds of distinct problems or
more, so the held-out split takes only a small part of any level):
  1  a + b, a multiple of ten plus one digit (340+6): the answer is a copy, learned first
  2  a + b, two digits plus one, without a carry
  3  a + b, two digits plus one, with a carry into the tens (47+8)
  4  a + b, two-digit operands
  5  a + b + c with two-digit operands, or a * b + c: multi-step problems that a tiny model
     rarely solves after the warm start
Levels 1 to 3 come as expressions or as word problems.

Every solution is a chain of `x*y=z.` steps (no spaces inside, so numbers cost few tokens) ending in
`\\boxed{N}`. The held-out split is drawn first and its expressions are excluded from training, so no
training problem repeats an evaluation problem, even in another wording.

The teacher slips. Worked solutions written for training (not the held-out split, not the answers)
forget a carry with probability `teacher_slip`, and the slip runs through to the boxed number, as a
careless human or a weaker model writes them. A warm start imitates the slip; only the verifier, which
checks the true answer, can teach the policy to carry. This is what the embedded run exists to show:
RL with a verifiable reward fixes a systematic error that imitation learned, and the fix carries over
to held-out problems. Without the slip the warm start's errors are facts it has not yet learned, which
supervised training fixes no faster than RL.
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


def needs_carry(x: int, op: str, y: int) -> bool:
  """Whether a sum's units digits carry into the tens."""
  return op == "+" and x % 10 + y % 10 >= 10


def _step(x: int, op: str, y: int, slip: bool = False) -> tuple[int, str]:
  """One written step; with `slip` the writer forgets the carry (a sum 10 short)."""
  value = x + y - 10 * slip if op == "+" else x * y
  return value, f"{x}{op}{y}={value}."


def _word_problem(rng: np.random.Generator, a: int, b: int) -> str:
  name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
  return f"{name} has {a} {item} and gets {b} more. How many {item} now?"


def make_problem(rng: np.random.Generator, level: int, uid: str, teacher_slip: float = 0.0) -> Problem:
  """One random problem of the given level (1..5). With `teacher_slip` > 0 the worked solution
  forgets each carry with that probability and carries the error to its boxed answer; the answer the
  verifier checks stays right."""
  ints = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
  word = False
  if level == 1:
    terms, ops, word = [10 * ints(1, 99), ints(1, 9)], ["+"], rng.random() < 0.5
  elif level == 2:
    a = 10 * ints(1, 9) + ints(0, 8)
    terms, ops, word = [a, ints(1, 9 - a % 10)], ["+"], rng.random() < 0.5
  elif level == 3:
    a = 10 * ints(1, 9) + ints(1, 9)
    terms, ops, word = [a, ints(10 - a % 10, 9)], ["+"], rng.random() < 0.5
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
  steps, written, true_value = [], terms[0], terms[0]
  for op, term in zip(ops, terms[1:]):
    slip = teacher_slip > 0 and needs_carry(written, op, term) and rng.random() < teacher_slip
    written, text = _step(written, op, term, slip)
    true_value = true_value + term if op == "+" else true_value * term
    steps.append(text)
  question = _word_problem(rng, terms[0], terms[1]) if word else f"Compute {expression}."
  solution = " ".join(steps) + f" \\boxed{{{written}}}"
  return Problem(uid, level, question, solution, str(true_value), expression)


def _draw(rng, count, level_weights, exclude: set[str], unique: bool, teacher_slip: float = 0.0) -> list[Problem]:
  """count problems with levels drawn by weight, none of whose expressions is in `exclude`;
  distinct expressions when `unique` (the held-out split), repeats allowed otherwise (training:
  small levels must keep their weight, not be crowded out by large ones)."""
  weights = np.asarray(level_weights, np.float64)
  if weights.shape != (NUM_LEVELS,) or np.any(weights < 0) or weights.sum() <= 0:
    raise ValueError(
        f"task.level_weights must be {NUM_LEVELS} non-negative numbers, not all 0; got {tuple(level_weights)}"
    )
  problems, seen = [], set(exclude)
  attempts = 0
  while len(problems) < count:
    attempts += 1
    if attempts > 50 * count + 1000:
      raise ValueError(
          f"could not draw {count} problems with level weights {tuple(level_weights)} outside the held-out split"
      )
    level = int(rng.choice(NUM_LEVELS, p=weights / weights.sum())) + 1
    problem = make_problem(rng, level, "", teacher_slip)
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
  def generate(
      cls, seed: int, num_train: int, num_eval: int, level_weights: Sequence[float], teacher_slip: float = 0.0
  ) -> "ArithmeticTask":
    """Deterministic in seed: the eval split is drawn first, then training avoids its expressions.
    `teacher_slip` flaws the training split's worked solutions only (see `make_problem`)."""
    if not 0.0 <= teacher_slip <= 1.0:
      raise ValueError(f"task.teacher_slip must lie in [0, 1], got {teacher_slip}")
    eval_problems = _draw(np.random.default_rng([seed, 1]), num_eval, level_weights, set(), unique=True)
    exclude = {p.expression for p in eval_problems}
    train_problems = _draw(
        np.random.default_rng([seed, 0]), num_train, level_weights, exclude, unique=False, teacher_slip=teacher_slip
    )
    return cls(train_problems, eval_problems)

  def corpus(self) -> list[str]:
    """Text for training the tokenizer: every problem with its solution."""
    return [p.text for p in self.train + self.eval]
