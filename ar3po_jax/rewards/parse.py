"""Parsing a normalised answer: first its outer structure by hand, then each leaf into sympy.

The structure (tuples, intervals, sets, bare lists, unions, matrices, equations) is split here rather
than left to the LaTeX parser because the parser reads `(1, 2)` as an open interval, so `(2, 1)` and
`(3, 1)` would both become the empty set and compare equal. Leaves go through latex2sympy2_extended,
an ANTLR grammar that builds sympy objects directly: no `eval`, `sympify` or `parse_expr` ever sees
model text. This module is imported only in worker processes.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import sympy
from latex2sympy2_extended import latex2sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig
from latex2sympy2_extended.math_normalization import NormalizationConfig

# Deeper structure is not a real answer; refusing it keeps recursion bounded on hostile input.
MAX_DEPTH = 8
MAX_ITEMS = 64

_LATEX_NORMALIZATION = NormalizationConfig(
    basic_latex=True, units=True, malformed_operators=True, nits=False, boxed="none", equations=False
)
_CONVERSION = ConversionConfig(interpret_as_mixed_fractions=True, interpret_simple_eq_as_assignment=False)
_MATRIX = re.compile(r"^\\begin\{(?P<env>[pbBvV]?matrix|array)\}(?:\{[^{}]*\})?(?P<body>.*)\\end\{(?P=env)\}$", re.S)
_OPENERS = "([{"
_CLOSERS = ")]}"


@dataclasses.dataclass(frozen=True)
class Node:
  """kind: leaf | seq (bracketed, ordered) | set | list (bare commas) | union | matrix | eq."""

  kind: str
  text: str = ""
  items: tuple = ()
  brackets: str = ""


def _depths(s: str):
  """Yield (index, depth before the char) over s, treating all bracket kinds alike.

  Kinds are ignored on purpose: half-open intervals like `[0, 1)` close with another kind.
  """
  depth = 0
  for i, c in enumerate(s):
    yield i, depth
    if c in _OPENERS:
      depth += 1
    elif c in _CLOSERS:
      depth -= 1


def split_top(s: str, separators: tuple[str, ...]) -> list[str]:
  """s split at separators that sit outside every bracket."""
  parts, start, i = [], 0, 0
  depth = 0
  while i < len(s):
    c = s[i]
    if depth == 0:
      sep = next((x for x in separators if s.startswith(x, i) and not _is_longer_token(s, i, x)), None)
      if sep is not None:
        parts.append(s[start:i])
        i += len(sep)
        start = i
        continue
    if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
      depth += 1 if s[i + 1] == "{" else -1
      i += 2
      continue
    if c in _OPENERS:
      depth += 1
    elif c in _CLOSERS:
      depth -= 1
    i += 1
  parts.append(s[start:])
  return parts


def _is_longer_token(s: str, i: int, sep: str) -> bool:
  """The separator at s[i] is only the start of a longer token: `\\in` of `\\infty`, `=` of `<=`."""
  if sep[0] == "\\" and sep[-1].isalpha():
    return s[i + len(sep) : i + len(sep) + 1].isalpha()
  if sep == "=":
    return (i > 0 and s[i - 1] in "<>!:=") or s.startswith("==", i)
  return False


def _outer_group(s: str) -> tuple[str, str, str] | None:
  """(open, inner, close) when one bracket pair spans all of s: `(1,2]`, `\\{1,2\\}`, `[a, b]`."""
  if s.startswith("\\{") and s.endswith("\\}"):
    open_, body_start = "\\{", 2
  elif s[:1] in "([":
    open_, body_start = s[0], 1
  else:
    return None
  depth = 0
  i = 0
  while i < len(s):
    c = s[i]
    step = 1
    if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
      c, step = s[i + 1], 2
    if c in _OPENERS:
      depth += 1
    elif c in _CLOSERS:
      depth -= 1
      if depth == 0:
        if i + step != len(s):
          return None
        close = s[i : i + step]
        return open_, s[body_start:i], close
    i += step
  return None


def structure(s: str, depth: int = 0) -> Node:
  """The outer structure of a normalised answer, its leaves still LaTeX strings."""
  s = s.strip()
  if depth > MAX_DEPTH:
    raise ValueError("answer nested too deeply")
  m = _MATRIX.match(s)
  if not m and s[:1] in "([":  # `\left[\begin{array}{cc}...\end{array}\right]`, its sizing already dropped
    group = _outer_group(s)
    m = _MATRIX.match(group[1].strip()) if group and group[0] in "([" else None
  if m:
    rows = [r for r in split_top(m.group("body"), ("\\\\",)) if r.strip() and r.strip() != "\\hline"]
    cells = tuple(tuple(structure(c, depth + 1) for c in split_top(r, ("&",))) for r in rows[:MAX_ITEMS])
    return Node("matrix", items=cells)
  parts = split_top(s, ("\\cup",))
  if len(parts) > 1:
    return Node("union", items=tuple(structure(p, depth + 1) for p in parts[:MAX_ITEMS]))
  parts = split_top(s, (",", ";"))
  if len(parts) > 1:
    return Node("list", items=tuple(structure(p, depth + 1) for p in parts[:MAX_ITEMS] if p.strip()))
  parts = split_top(s, ("=", "\\approx", "\\in"))
  if len(parts) > 1:
    return Node("eq", items=(Node("leaf", text=parts[0].strip()), structure(parts[-1], depth + 1)))
  group = _outer_group(s)
  if group:
    open_, inner, close = group
    items = split_top(inner, (",",))
    if open_ == "\\{":
      return Node("set", items=tuple(structure(p, depth + 1) for p in items[:MAX_ITEMS] if p.strip()))
    if len(items) > 1:
      return Node("seq", items=tuple(structure(p, depth + 1) for p in items[:MAX_ITEMS]), brackets=open_ + close)
  return Node("leaf", text=s)


_I = sympy.Symbol("i")


@functools.lru_cache(maxsize=4096)
def to_sympy(latex: str):
  """A sympy object for one leaf, or None when the grammar rejects it.

  Cached because the ANTLR runtime is pure Python (tens of ms a parse) and a group's responses all
  share one gold answer. Callers must not mutate the result (matrices are mutable in sympy).

  A free `i` becomes the imaginary unit, as it is in nearly every competition answer (`3+4i`).
  """
  try:
    expr = latex2sympy(latex, normalization_config=_LATEX_NORMALIZATION, conversion_config=_CONVERSION)
  except Exception:  # the grammar raises many kinds of error on non-math text; all mean "unparseable"
    return None
  if isinstance(expr, sympy.Basic) and _I in expr.free_symbols:
    expr = expr.subs(_I, sympy.I)
  return expr
