"""Finding the final answer in a model response (and the bare answer in a ground-truth string).

Strict strategies read only an answer the model marked: the last `\\boxed{}`, DAPO's `Answer:` line,
Minerva's "The final answer is ...". Two lenient ones read an unmarked answer: "last_number", and
"any", which takes the last math expression (`$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]`) or number
anywhere in the text, whichever comes later.

Our choices, and the trade-off: lenient extraction is for evaluating models that ignore the format
instruction, where established graders also read the last expression or number. For RL rewards it is
a hazard: it can reward a number the model never committed to (a step of a derivation, a value in a
truncated response), and the policy learns to end on guesses rather than to state an answer. So the
default `VerifyConfig` is strict and lenient modes are opt-in (`fallback="any"`).

Several boxes: the last box is the answer, but a run of boxes separated only by punctuation, spacing,
"and"/"or" or a variable label (`x = \\boxed{2}, y = \\boxed{3}`) is one answer, the list of their
contents; a run that repeats one content is that content. A list equals a tuple or set gold of the
same items and never a single number, so boxing several candidates cannot earn a reward that boxing one
would not. Extraction never looks at the gold.

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
_FINAL_ANSWER_PREFIX = re.compile(r"(?i)[ \t]*(?:the[ \t]+)?final[ \t]+answer[ \t]+is[ \t]*:?")
# What may separate the boxes of one run: spacing, punctuation, `$`, "and"/"or", a `x =` label.
_BOX_GAP = re.compile(
    r"(?:\s|[,;.&$~]|\\[,;:! ]|\\\\|\\q?quad|\\text\{\s*(?:and|or)?\s*\}|\b(?:and|or)\b"
    r"|[A-Za-z](?:_\{?\w{1,3}\}?)?\s*=)*"
)
_MAX_BOX_GAP = 80
_MAX_BOX_RUN = 16
_MAX_BOX_ITEM = 2_000  # a box of a run starts at most this far before the next one
# Math delimiters for the lenient "any" strategy; a preceding backslash escapes a `$` (currency).
_MATH_DELIMITER = re.compile(r"(?<!\\)(?:\$\$|\$|\\\(|\\\)|\\\[|\\\])")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_CLOSES = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_NUMBER_AFTER_EQUALS = re.compile(r"=\s*(-?\d[\d,]*(?:\.\d+)?(?:/\d+)?)\s*[.,]?\s*$")


def balanced_group(text: str, start: int, stop: int | None = None) -> tuple[str, int] | None:
  """The content of the brace group opening at text[start] == '{', and the index after it.

  Escaped braces (`\\{`, `\\}`) do not count, because set answers like `\\{1, 2\\}` live inside boxes.
  None when the group does not close before `stop` (default: the end; a truncated response).
  """
  depth = 0
  i = start
  n = len(text) if stop is None else stop
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


def _box_at(text: str, pos: int, cmd: str, stop: int) -> tuple[str, int] | None:
  """(content, end) of the box command at text[pos], which must close before `stop`."""
  i = pos + len(cmd)
  while i < stop and text[i] in " \t":
    i += 1
  if i < stop and text[i] == "{":
    group = balanced_group(text, i, stop)
    return (group[0].strip(), group[1]) if group else None
  if i > pos + len(cmd):  # `\boxed 5`: the argument is the next token
    match = re.match(r"[^\s$]+", text[i : min(i + 200, stop)])
    return (match.group(0), i + match.end()) if match else None
  return None


def _last_box_before(text: str, start: int, stop: int) -> tuple[int, str]:
  boxed, fbox = text.rfind("\\boxed", start, stop), text.rfind("\\fbox", start, stop)
  return (boxed, "\\boxed") if boxed >= fbox else (fbox, "\\fbox")


def last_boxed(text: str) -> str | None:
  """The content of the last `\\boxed{...}` or `\\fbox{...}` (also `\\boxed 5`), or None.

  Only the last box counts: if it is unbalanced the response was cut off and earlier boxes are
  intermediate results, not the answer. Braced boxes just before it, separated only by `_BOX_GAP`
  text, join it as one list answer (see the module docstring); a run repeating one content is that.
  """
  pos, cmd = _last_box_before(text, 0, len(text))
  if pos < 0:
    return None
  box = _box_at(text, pos, cmd, len(text))
  if box is None:
    return None
  contents = [box[0]]
  # A previous box of the run closes with `}` within _MAX_BOX_GAP characters: checking that first
  # keeps the common single-box response from searching further.
  while len(contents) < _MAX_BOX_RUN and text.rfind("}", max(0, pos - _MAX_BOX_GAP - 1), pos) >= 0:
    prev, prev_cmd = _last_box_before(text, max(0, pos - _MAX_BOX_ITEM), pos)
    if prev < 0:
      break
    box = _box_at(text, prev, prev_cmd, pos)
    if box is None or pos - box[1] > _MAX_BOX_GAP or not _BOX_GAP.fullmatch(text, box[1], pos):
      break
    contents.append(box[0])
    pos = prev
  if len(set(contents)) == 1:
    return contents[0]
  return ", ".join(reversed(contents))


def _clean_inline(answer: str) -> str:
  """Tidy a one-line answer: drop markdown emphasis, the Minerva suffix, a final period, `$` pairs."""
  # str methods, not anchored regexes: `[\s]+$` retried at every offset is quadratic in a line of
  # spaces, and a hostile line can be the whole response.
  suffix = _HOPE_SUFFIX.search(answer)
  if suffix:
    answer = answer[: suffix.start()].rstrip(" \t.,;")
  # Minerva's "Final Answer: The final answer is $x$." reaches here through the `Answer:` rule.
  prefix = _FINAL_ANSWER_PREFIX.match(answer)
  if prefix:
    answer = answer[prefix.end() :]
  answer = answer.strip("*_ \t\r")
  if answer.startswith("$"):
    closing = _UNESCAPED_DOLLAR.search(answer, 1 + answer.startswith("$$"))  # `$\$18$` is 18 dollars
    end = closing.start() if closing else -1
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


def _last_math(text: str) -> tuple[str, int] | None:
  """(content, end) of the last closed `$...$`, `$$...$$`, `\\(...\\)` or `\\[...\\]`, or None.

  One regex pass finds the delimiters and a state machine pairs them, so unclosed openers cost
  nothing extra (a lazy `\\$(.+?)\\$` would rescan the rest of the text from each one).
  """
  last = None
  open_token, content_start = None, 0
  for m in _MATH_DELIMITER.finditer(text):
    token = m.group(0)
    if open_token is None:
      if token in _CLOSES:
        open_token, content_start = token, m.end()
    elif token == _CLOSES[open_token]:
      last = (content_start, m.start(), m.end())
      open_token = None
  if last is None:
    return None
  content = text[last[0] : last[1]].strip()
  # `2 + 3 = 5`: the last member of a chain that ends in a number, as Minerva's grader reads it.
  number = _NUMBER_AFTER_EQUALS.search(content[-200:])
  return (number.group(1) if number else content), last[2]


def _any(text: str) -> str | None:
  """The last math expression or number of the text, whichever ends later (lenient; see the docstring)."""
  math = _last_math(text)
  number = None
  for number in _LAST_NUMBER.finditer(text):
    pass
  if number is not None and (math is None or number.end() > math[1]):
    return number.group(0).rstrip(",")
  return math[0] if math and math[0] else None


_STRATEGIES = {
    "boxed": last_boxed,
    "answer_line": _answer_line,
    "final_answer": _final_answer,
    "last_number": _last_number,
    "any": _any,
}
STRATEGIES = tuple(_STRATEGIES)


def extract_answer(
    text: str,
    order: Iterable[str] = ("boxed", "answer_line", "final_answer"),
    fallback: str | None = None,
    max_chars: int = 131_072,
) -> str | None:
  """The final answer of a response: the first strategy in `order` (then `fallback`) that finds one.

  Strategies: "boxed" (last `\\boxed{}`/`\\fbox{}`, balanced braces), "answer_line" (DAPO's last
  `Answer: ...` line), "final_answer" (Minerva's "The final answer is ..."), and the lenient
  "last_number" and "any" (the last math expression or number; see the module docstring).
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
