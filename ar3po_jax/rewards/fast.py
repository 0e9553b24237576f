"""The fast path: answers that are plain numbers are compared in the parent with `fractions` only.

Most training answers are integers or short fractions; deciding them here keeps sympy, the worker
pool and IPC off the hot path. Anything this module cannot read exactly is left undecided (None)
for the sympy path rather than guessed.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

from ar3po_jax.rewards.config import VerifyConfig
from ar3po_jax.rewards.normalize import normalize

_INT = re.compile(r"^\s*[+-]?\d{1,300}\s*$")
_DECIMAL = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(rf"^(?P<a>{_DECIMAL})(?:/(?P<b>\d+))?(?P<pct>\\%)?$")
_FRAC = re.compile(
    r"^(?P<sign>[+-]?)\\frac(?:\{(?P<a>[+-]?\d+)\}\{(?P<b>[+-]?\d+)\}|(?P<c>\d)(?P<d>\d))(?P<pct>\\%)?$"
)
_ASSIGNMENT = re.compile(r"^[A-Za-z](?:_\{?\w{1,3}\}?)?=(?P<rhs>[^=<>]+)$")
# int() refuses more than 4300 digits; longer literals go to the sympy path, which is time-limited.
_MAX_DIGITS = 4000


class FastNumber(NamedTuple):
  value: Fraction
  inexact: bool  # written as a decimal, so compared with tolerance against non-identical values
  percent: bool


def fast_number(s: str) -> FastNumber | None:
  """The exact value of a normalised answer that is a plain number, fraction or percentage."""
  if len(s) > _MAX_DIGITS:
    return None
  m = _PLAIN.match(s)
  if m:
    if m.group("b") is not None and "." in m.group("a"):
      return None
    den = int(m.group("b")) if m.group("b") is not None else 1
    if den == 0:
      return None
    return FastNumber(Fraction(m.group("a")) / den, "." in m.group("a"), bool(m.group("pct")))
  m = _FRAC.match(s)
  if m:
    a, b = (m.group("a"), m.group("b")) if m.group("a") is not None else (m.group("c"), m.group("d"))
    if int(b) == 0:
      return None
    value = Fraction(int(a), int(b))
    return FastNumber(-value if m.group("sign") == "-" else value, False, bool(m.group("pct")))
  return None


def _candidates(x: FastNumber, mode: str) -> tuple[Fraction, ...]:
  if not x.percent:
    return (x.value,)
  if mode == "fraction":
    return (x.value / 100,)
  if mode == "number":
    return (x.value,)
  return (x.value / 100, x.value)


def close(a: Fraction, b: Fraction, inexact: bool, rel_tol: float) -> bool:
  """Exact equality, or relative closeness when either side was written inexactly."""
  if a == b:
    return True
  return inexact and abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def numbers_equal(gold: FastNumber, pred: FastNumber, config: VerifyConfig) -> bool:
  inexact = gold.inexact or pred.inexact
  return any(
      close(g, p, inexact, config.rel_tol)
      for g in _candidates(gold, config.percent)
      for p in _candidates(pred, config.percent)
  )


def unassign(s: str, other: str) -> str:
  """`x=5` -> `5` when the other side is no equation, so `x = 5` matches a gold of `5`."""
  m = _ASSIGNMENT.match(s)
  return m.group("rhs") if m and "=" not in other else s


def fast_equivalent(gold: str, pred: str, config: VerifyConfig) -> bool | None:
  """True/False when decidable without sympy, else None. Inputs are raw (unnormalised) answers."""
  if _INT.match(gold) and _INT.match(pred):
    return int(gold) == int(pred)
  gn, pn = fast_number(gold.strip()), fast_number(pred.strip())
  if gn is not None and pn is not None:  # already canonical: skip the dozen regexes of normalize
    return numbers_equal(gn, pn, config)
  g, p = normalize(gold), normalize(pred)
  if g == p:
    return bool(g)
  if not g or not p:
    return False
  if config.assignment:
    g, p = unassign(g, p), unassign(p, g)
  gn, pn = fast_number(g), fast_number(p)
  if gn is not None and pn is not None:
    return numbers_equal(gn, pn, config)
  return None
