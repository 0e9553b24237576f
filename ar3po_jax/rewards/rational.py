"""Exact values of rational-valued answers, including powers far too large to write out.

The sympy path used to compare exact numbers through 50-digit floats with a relative tolerance, so
`2^{200}+1` equalled `2^{200}`: any two integers above ~1e40 that differ by a little looked alike.
Here a rational-valued expression tree (integers, fractions, +, *, integer powers, factorials) is
evaluated exactly with Python integers instead.

A power whose value would exceed `MAX_BITS` bits is not expanded but kept as a factor of a term:
a value is `const + sum(coeff * prod(base^exp))`, with bases factored into primes where that is cheap,
so equal spellings of one huge number (`10^{10^{10}}`, `10^{10000000000}`, `100^{5\\cdot 10^9}`) meet
as the same term and cancel exactly, and `10^{10^{10}}+1` minus `10^{10^{10}}` is exactly 1.
When huge terms survive the subtraction, the difference is nonzero if one term's magnitude dominates
the rest (compared through logarithms at a precision that resolves the exponents); otherwise, and for
towers whose exponent is itself too large (`9^{9^{9^9}}`), the comparison raises `Undecided`, which the
verifier counts and scores as wrong rather than guessing.

Our choices: the bit budget and the cheap-factoring bounds below keep every step to milliseconds in
a worker; a value outside them is undecided, never approximated. Imported only in worker processes.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import sympy

# Exact integers up to this many bits are expanded (2006! has ~19k bits; 65,536 bits is ~19,700 digits).
MAX_BITS = 1 << 16
# Exponents of unexpanded powers up to this many bits can still be compared through logarithms.
MAX_EXPONENT_BITS = 1 << 14
# Bases up to 64 bits are factored into primes; larger ones only reduced when they are perfect powers.
_FACTOR_BITS = 64
_PERFECT_POWER_BITS = 4096
_MAX_TERMS = 32
_MAX_DEPTH = 200


class Undecided(Exception):
  """Two answers whose equality cannot be settled exactly within the budget (counted, scored 0).

  numeric_ok: whether a float evaluation of the answers is still safe (it is not for towers such as
  `9^{9^{9^9}}`, whose float exponent alone would not fit in memory).
  """

  def __init__(self, reason: str, numeric_ok: bool = True):
    super().__init__(reason)
    self.numeric_ok = numeric_ok


class NotRational(Exception):
  """The expression contains something this module does not evaluate (a symbol, pi, a root)."""


Key = tuple  # sorted ((base, exponent), ...): the unexpanded factors of one term


def _bits(x: Fraction) -> int:
  return max(x.numerator.bit_length(), x.denominator.bit_length())


def _check(bits: int) -> None:
  if bits > MAX_BITS:
    raise Undecided(f"an intermediate value needs more than {MAX_BITS} bits")


def _factor(n: int) -> dict[int, int]:
  """n >= 2 as {base: exponent}: primes when n is small, its perfect-power root when that is cheap."""
  if n.bit_length() <= _FACTOR_BITS:
    return {int(p): int(k) for p, k in sympy.factorint(n).items()}
  if n.bit_length() <= _PERFECT_POWER_BITS:
    root = sympy.perfect_power(n)
    if root:
      base, k = int(root[0]), int(root[1])
      return {b: e * k for b, e in _factor(base).items()}
  return {n: 1}


class Value:
  """const + sum(coeff * term) with each term a product of powers too large to expand."""

  __slots__ = ("const", "terms")

  def __init__(self, const: Fraction = Fraction(0), terms: dict | None = None):
    self.const = const
    self.terms: dict[Key, Fraction] = terms or {}

  def __add__(self, other: "Value") -> "Value":
    a, b = self.const, other.const
    if a.denominator != 1 or b.denominator != 1:  # the bits of the sum before it is reduced
      da, db = a.denominator.bit_length(), b.denominator.bit_length()
      _check(max(a.numerator.bit_length() + db, b.numerator.bit_length() + da, da + db))
    out = Value(a + b, dict(self.terms))
    for key, coeff in other.terms.items():
      out._insert(key, coeff)
    return out

  def _insert(self, key: Key, coeff: Fraction) -> None:
    """Add coeff * key, merging it with a term that differs by a rational factor (`2^N` and `2^{N-1}`)."""
    for other_key in list(self.terms):
      ratio = _ratio(key, other_key)
      if ratio is not None:
        _check(_bits(coeff) + _bits(ratio))
        merged = _term(self.terms.pop(other_key) + coeff * ratio, other_key)
        _check(max(_bits(self.const), _bits(merged.const)) + 1)
        self.const += merged.const
        for k, c in merged.terms.items():
          self._insert(k, c)
        return
    self.terms[key] = coeff
    if len(self.terms) > _MAX_TERMS:
      raise Undecided("too many unexpanded terms")

  def __neg__(self) -> "Value":
    return Value(-self.const, {k: -c for k, c in self.terms.items()})

  def __sub__(self, other: "Value") -> "Value":
    return self + (-other)

  def __mul__(self, other: "Value") -> "Value":
    parts_a = [((), self.const)] + list(self.terms.items())
    parts_b = [((), other.const)] + list(other.terms.items())
    if len(parts_a) * len(parts_b) > _MAX_TERMS:
      raise Undecided("too many unexpanded terms")
    out = Value()
    for key_a, coeff_a in parts_a:
      for key_b, coeff_b in parts_b:
        if coeff_a and coeff_b:
          _check(_bits(coeff_a) + _bits(coeff_b))
          product = coeff_a * coeff_b
          out = out + (_term(product, _merge(key_a, key_b)) if key_a or key_b else Value(product))
    return out

  def power(self, exponent: int) -> "Value":
    if exponent.bit_length() > MAX_EXPONENT_BITS:
      raise Undecided("an exponent too large to compare", numeric_ok=False)
    if exponent == 0:
      return Value(Fraction(1))
    if not self.terms:
      return _const_power(self.const, exponent)
    if exponent == 1:
      return self
    if self.const == 0 and len(self.terms) == 1:
      (key, coeff), = self.terms.items()
      if abs(exponent) * _bits(coeff) > MAX_BITS:
        raise Undecided("a coefficient power too large")
      coeff_power = coeff**exponent
      return _term(coeff_power, tuple((b, e * exponent) for b, e in key))
    raise Undecided("a power of a sum of unexpanded terms")


def _ratio(a: Key, b: Key) -> Fraction | None:
  """a / b when that is a rational of at most MAX_BITS bits, else None."""
  ratio = Fraction(1)
  for base, e in _merge(a, tuple((base, -e) for base, e in b)).items():
    if e:
      if abs(e) * base.bit_length() > MAX_BITS:
        return None
      ratio *= Fraction(base) ** e
      if _bits(ratio) > MAX_BITS:
        return None
  return ratio


def _merge(a: Key, b: Key) -> dict[int, int]:
  factors: dict[int, int] = dict(a)
  for base, e in b:
    factors[base] = factors.get(base, 0) + e
  return factors


def _term(coeff: Fraction, factors) -> Value:
  """coeff * prod(base^e): factors small enough to expand are folded into the coefficient.

  Coefficient factors of a term's own bases move into the exponents, so `2 * 2^N` and `2^{N+1}` are
  one term. Both steps make the representation canonical for the spellings that occur in answers.
  """
  if not coeff:
    return Value()
  factors = dict(factors)
  if _bits(coeff) <= _PERFECT_POWER_BITS:
    num, den = coeff.numerator, coeff.denominator
    for base in factors:
      while num % base == 0:
        num //= base
        factors[base] += 1
      while den % base == 0:
        den //= base
        factors[base] -= 1
    coeff = Fraction(num, den)
  if any(e.bit_length() > MAX_EXPONENT_BITS for e in factors.values()):
    raise Undecided("an exponent too large to compare", numeric_ok=False)
  key = []
  for base, e in sorted(factors.items()):
    if e == 0:
      continue
    if abs(e) * base.bit_length() <= MAX_BITS:
      coeff = coeff * Fraction(base) ** e
      _check(_bits(coeff))
    else:
      key.append((base, e))
  if not key:
    return Value(coeff)
  return Value(Fraction(0), {tuple(key): coeff})


def _const_power(c: Fraction, exponent: int) -> Value:
  if c == 0:
    if exponent < 0:
      raise NotRational("division by zero")
    return Value(Fraction(0))
  if abs(c) == 1:
    return Value(c if exponent % 2 else Fraction(1))
  if abs(exponent) * _bits(c) <= MAX_BITS:
    return Value(c**exponent)
  if exponent.bit_length() > MAX_EXPONENT_BITS:
    raise Undecided("an exponent too large to compare", numeric_ok=False)
  factors: dict[int, int] = {}
  for part, sign in ((abs(c.numerator), 1), (c.denominator, -1)):
    if part > 1:
      for base, k in _factor(part).items():
        factors[base] = factors.get(base, 0) + sign * k * exponent
  sign = -1 if c < 0 and exponent % 2 else 1
  return _term(Fraction(sign), factors)


def value(expr, depth: int = 0) -> Value:
  """The exact value of a sympy tree built from rationals, +, *, integer powers and factorials.

  Raises NotRational for anything else and Undecided when the value outgrows the budget.
  """
  if depth > _MAX_DEPTH:
    raise NotRational("too deep")
  if isinstance(expr, sympy.Rational):
    return Value(Fraction(int(expr.p), int(expr.q)))
  if isinstance(expr, sympy.Add):
    total = Value()
    for arg in expr.args:
      total = total + value(arg, depth + 1)
    return total
  if isinstance(expr, sympy.Mul):
    product = Value(Fraction(1))
    for arg in expr.args:
      product = product * value(arg, depth + 1)
    return product
  if isinstance(expr, sympy.Pow):
    base, exponent = expr.args
    e = value(exponent, depth + 1)
    if e.terms:
      raise Undecided("a tower whose exponent is too large to expand", numeric_ok=False)
    if e.const.denominator != 1:
      raise NotRational("a fractional power")
    return value(base, depth + 1).power(e.const.numerator)
  if isinstance(expr, sympy.factorial):
    n = value(expr.args[0], depth + 1)
    if n.terms:
      raise Undecided("the factorial of a huge number", numeric_ok=False)
    if n.const.denominator != 1 or n.const < 0:
      raise NotRational("factorial of a non-natural number")
    k = n.const.numerator
    if k > 2 and k * math.log2(k) > MAX_BITS:
      raise Undecided(f"{k}! has more than {MAX_BITS} bits")
    return Value(Fraction(math.factorial(k)))
  raise NotRational(type(expr).__name__)


def _log2_abs(coeff: Fraction, key: Key) -> mpmath.mpf:
  log2 = mpmath.log(abs(coeff.numerator), 2) - mpmath.log(coeff.denominator, 2)
  for base, e in key:
    log2 += e * mpmath.log(base, 2)
  return log2


def is_zero(d: Value) -> bool:
  """Whether d is exactly zero; raises Undecided when huge terms cancel too closely to tell."""
  if not d.terms:
    return d.const == 0
  parts = [(c, k) for k, c in d.terms.items()] + ([(d.const, ())] if d.const else [])
  if len(parts) == 1:
    return False  # one nonzero coefficient times a product of nonzero powers
  exponent_bits = max(e.bit_length() for _, k in parts for _, e in k)
  with mpmath.workprec(exponent_bits + 64):
    sizes = sorted((_log2_abs(c, k) for c, k in parts), reverse=True)
    # The largest term exceeds the sum of all others when it is 2*len(parts) times larger than the next.
    if sizes[0] - sizes[1] > math.log2(2 * len(parts)):
      return False
  raise Undecided("unexpanded terms of nearly equal size")


def refuse_towers(expr) -> None:
  """Raise Undecided(numeric_ok=False) when expr holds a power whose exponent is too large to expand.

  A float evaluation of such a tower (even `\\sin(9^{9^{9^9}})`, or at a point in `x^{9^{9^9}}`) needs an
  exponent that does not fit in memory, so it must not be attempted.
  """
  for node in sympy.preorder_traversal(expr):
    if isinstance(node, sympy.Pow) and not node.exp.free_symbols:
      try:
        huge = bool(value(node.exp).terms)
      except NotRational:
        huge = False
      except Undecided:  # an exponent beyond the budget is beyond a float evaluation too
        huge = True
      if huge:
        raise Undecided("a tower whose exponent is too large to expand", numeric_ok=False)


def exact_equal(a, b) -> bool | None:
  """True/False for two rational-valued sympy expressions, None when either is not one."""
  try:
    va = value(a)
    vb = value(b)
  except NotRational:
    return None
  return is_zero(va - vb)
