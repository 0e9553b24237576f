"""Finding the final answer in a model response (and the bare answer in a ground-truth string).

Everything here is linear-time string scanning: it runs in the parent process on every response,
including hostile megabyte-long ones, so it must never backtrack or recurse on the input.
"""

from __future__ import annotations

import re
from typing import Iterable

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_LINE = re.compile(r"(?i)\banswer\s*[:：][ \t]*([^\n]+)")
_FINAL_ANSWER = re.compile(r"(?i)final answer is[ \t]*:?[ \t]*([^\n]+)")
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_HOPE_SUFFIX = re.compile(r"(?i)I hope it is correct")


def balanced_group(text: str, start: int) -> tuple[str, int] | None:
  """The content of the brace group opening at text[start] == '{', and the index after it.

  Escaped braces (`\\{`, `\\}`) do not count, because set answers like `\\{1, 2\\}` live inside boxes.
  None when the group never closes (a truncated response).
  """
  depth = 0
  i = start
  n = len(text)
  while i < n:
    c = text[i]
    if c == "\\":
      i += 2
      continue
    if c == "{":
      depth += 1
    elif c == "}":
      depth -= 1
      if depth == 0:
        return text[start + 1 : i], i + 1
    i += 1
  return None


def last_boxed(text: str) -> str | None:
  """The content of the last `\\boxed{...}` or `\\fbox{...}` (also `\\boxed 5`), or None.

  Only the last box counts: if it is unbalanced the response was cut off and earlier boxes are
  intermediate results, not the answer.
  """
  pos, cmd = max((text.rfind(c), c) for c in _BOX_COMMANDS)
  if pos < 0:
    return None
  i = pos + len(cmd)
  while i < len(text) and text[i] in " \t":
    i += 1
  if i < len(text) and text[i] == "{":
    group = balanced_group(text, i)
    return group[0].strip() if group else None
  if i > pos + len(cmd):  # `\boxed 5`: the argument is the next token
    match = re.match(r"[^\s$]+", text[i : i + 200])
    return match.group(0) if match else None
  return None


def _clean_inline(answer: str) -> str:
  """Tidy a one-line answer: drop markdown emphasis, the Minerva suffix, a final period, `$` pairs."""
  # str methods, not anchored regexes: `[\s]+$` retried at every offset is quadratic in a line of
  # spaces, and a hostile line can be the whole response.
  suffix = _HOPE_SUFFIX.search(answer)
  if suffix:
    answer = answer[: suffix.start()].rstrip(" \t.,;")
  answer = answer.strip("*_ \t\r")
  if answer.startswith("$"):
    end = answer.find("$", 1 + answer.startswith("$$"))
    body = answer.lstrip("$")
    if end > 0:
      body = answer[: end].lstrip("$")
    answer = body
  answer = answer.strip().rstrip(".").strip()
  inner = last_boxed(answer)
  return inner if inner is not None else answer


def _last_match(pattern: re.Pattern, text: str) -> str | None:
  last = None
  for last in pattern.finditer(text):
    pass
  return last.group(1) if last else None


def _answer_line(text: str) -> str | None:
  found = _last_match(_ANSWER_LINE, text)
  return _clean_inline(found) if found is not None else None


def _final_answer(text: str) -> str | None:
  found = _last_match(_FINAL_ANSWER, text)
  return _clean_inline(found) if found is not None else None


def _last_number(text: str) -> str | None:
  found = None
  for found in _LAST_NUMBER.finditer(text):
    pass
  return found.group(0).rstrip(",") if found else None


_STRATEGIES = {
    "boxed": last_boxed,
    "answer_line": _answer_line,
    "final_answer": _final_answer,
    "last_number": _last_number,
}


def extract_answer(
    text: str,
    order: Iterable[str] = ("boxed", "answer_line", "final_answer"),
    fallback: str | None = None,
    max_chars: int = 131_072,
) -> str | None:
  """The final answer of a response: the first strategy in `order` (then `fallback`) that finds one.

  Strategies: "boxed" (last `\\boxed{}`/`\\fbox{}`, balanced braces), "answer_line" (DAPO's last
  `Answer: ...` line), "final_answer" (Minerva's "The final answer is ..."), "last_number".
  Only the last `max_chars` characters are searched. None when nothing is found.
  """
  if not isinstance(text, str):
    return None
  tail = text[-max_chars:] if max_chars else text
  steps = list(order) + ([fallback] if fallback else [])
  for step in steps:
    try:
      strategy = _STRATEGIES[step]
    except KeyError:
      raise ValueError(f"unknown extraction strategy {step!r}; known: {sorted(_STRATEGIES)}") from None
    found = strategy(tail)
    if found:
      return found
  return None


def ground_truth_answer(ground_truth: str) -> str:
  """The answer inside a ground-truth string, which may be bare, `$...$`-wrapped or boxed."""
  boxed = last_boxed(ground_truth)
  return boxed if boxed is not None else ground_truth.strip()
