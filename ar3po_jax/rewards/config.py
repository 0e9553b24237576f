"""The knobs of the math verifier, in one frozen (hence hashable and picklable) record.

It is sent with every task to the worker processes, so a verifier's knobs cannot drift between the
parent's fast path and the workers' sympy path.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

PercentMode = Literal["either", "fraction", "number"]
ExtractStep = Literal["boxed", "answer_line", "final_answer", "last_number", "any"]
_STEPS = ("boxed", "answer_line", "final_answer", "last_number", "any")


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
  """How answers are extracted and compared.

  order: extraction strategies tried in turn on a response (see `extract.extract_answer`).
  fallback: a last strategy when all of `order` find nothing. Off by default, because lenient
    extraction rewards answers the model never committed to (a stray number late in a truncated
    response). "last_number": the last number; "any": the last `$...$`, `$$...$$`, `\\(...\\)`,
    `\\[...\\]` expression or number of the response, whichever comes later. "any" is what established
    graders do for models that ignore the format instruction: use it to evaluate such models, not for
    RL rewards (see `extract`). In configs: `verify.fallback` ("" for none).
  rel_tol: relative tolerance used only when either side is inexact (a decimal literal); two exact
    values (integers, fractions, radicals, pi) must be equal.
  percent: how `p\\%` compares: "fraction" means p/100, "number" means p, "either" accepts both
    (the common grader convention, since MATH-style golds drop the percent sign freely).
  unordered_lists: a bare comma list `1, 2` is a multiset of answers (roots, solutions), not a tuple.
  assignment: `x = 5` matches `5` when one side is an equation with a lone variable on the left.
  max_response_chars: only this many trailing characters of a response are searched, because answers
    come last and regexes over megabytes would cost the fast path its speed.
  max_answer_chars: longer extracted answers score 0 without being parsed.
  """

  order: tuple[ExtractStep, ...] = ("boxed", "answer_line", "final_answer")
  fallback: ExtractStep | None = None
  rel_tol: float = 1e-6
  percent: PercentMode = "either"
  unordered_lists: bool = True
  assignment: bool = True
  max_response_chars: int = 131_072
  max_answer_chars: int = 1_000

  def __post_init__(self):
    if self.percent not in ("either", "fraction", "number"):
      raise ValueError(f"percent must be either/fraction/number, got {self.percent!r}")
    if not 0 <= self.rel_tol < 1:
      raise ValueError(f"rel_tol must be in [0, 1), got {self.rel_tol}")
    object.__setattr__(self, "order", tuple(self.order))
    for step in self.order:
      if step not in _STEPS:
        raise ValueError(f"VerifyConfig.order: unknown extraction step {step!r}; known: {', '.join(_STEPS)}")
    if self.fallback == "":  # the configs' spelling of "none"
      object.__setattr__(self, "fallback", None)
    if self.fallback is not None and self.fallback not in _STEPS:
      raise ValueError(f"VerifyConfig.fallback must be None or one of {', '.join(_STEPS)}; got {self.fallback!r}")
