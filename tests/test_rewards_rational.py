"""Exact values of rational-valued answers (`rewards.rational`), huge powers included."""

from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy import Add, Integer, Mul, Pow, Rational

from ar3po_jax.rewards.rational import MAX_BITS, Undecided, exact_equal, refuse_towers, value


def _pow(b, e):
  return Pow(Integer(b), Integer(e) if isinstance(e, int) else e, evaluate=False)


def _add(*args):
  return Add(*args, evaluate=False)


def _mul(*args):
  return Mul(*args, evaluate=False)


def test_small_values_are_plain_fractions():
  v = value(_add(_pow(2, 200), Integer(1)))
  assert not v.terms and v.const == 2**200 + 1
  assert value(_mul(Integer(3), _pow(2, -5))).const == Fraction(3, 32)
  assert value(sympy.factorial(Integer(20), evaluate=False)).const == 2432902008176640000


def test_the_issue_pairs():
  big = _pow(10, _pow(10, 10))
  assert exact_equal(_add(big, Integer(1)), big) is False
  assert exact_equal(_add(_pow(2, 200), Integer(1)), _pow(2, 200)) is False
  assert exact_equal(big, _pow(100, 5 * 10**9)) is True
  assert exact_equal(_mul(big, _pow(10, -(10**10))), Integer(1)) is True


def test_non_rational_parts_are_left_to_the_caller():
  assert exact_equal(sympy.sqrt(2, evaluate=False), Integer(1)) is None
  assert exact_equal(sympy.pi, Integer(3)) is None
  assert exact_equal(Pow(Integer(4), Rational(1, 2), evaluate=False), Integer(2)) is None


def test_towers_are_undecided_and_unsafe_to_evaluate():
  tower = _pow(9, _pow(9, _pow(9, 9)))
  with pytest.raises(Undecided) as info:
    exact_equal(tower, Integer(3))
  assert not info.value.numeric_ok
  with pytest.raises(Undecided):
    refuse_towers(sympy.sin(tower, evaluate=False))
  refuse_towers(_pow(10, _pow(10, 10)))  # one level of hugeness still evaluates as a float


def test_a_huge_factorial_is_undecided_but_safe_to_evaluate():
  with pytest.raises(Undecided) as info:
    value(sympy.factorial(_pow(10, 8), evaluate=False))
  assert info.value.numeric_ok


_HUGE = st.integers(min_value=MAX_BITS + 1, max_value=10**12)
_TERM = st.tuples(st.integers(-50, 50).filter(bool), st.integers(2, 12), _HUGE)


def _sum(terms, const=0):
  return _add(Integer(const), *[_mul(Integer(c), _pow(b, e)) for c, b, e in terms])


@settings(max_examples=100, deadline=None, database=None)
@given(terms=st.lists(_TERM, min_size=1, max_size=5), const=st.integers(-10**6, 10**6), shift=st.integers(-3, 3))
def test_huge_sums_equal_their_reorderings_and_differ_from_their_shifts(terms, const, shift):
  a = _sum(terms, const)
  assert exact_equal(a, _sum(list(reversed(terms)), const)) is True
  if shift:
    try:
      assert exact_equal(a, _sum(terms, const + shift)) is False
    except Undecided:
      pass  # terms of nearly equal size may leave it open, but never wrongly decided


@settings(max_examples=100, deadline=None, database=None)
@given(base=st.integers(2, 10**6), exponent=st.integers(0, 300), k=st.integers(2, 4))
def test_power_spellings_agree(base, exponent, k):
  # b^(k e) against (b^k)^e, in ranges both expanded and not.
  for scale in (1, 10**9):
    e = exponent * scale
    assert exact_equal(_pow(base, k * e), _pow(base**k, e)) is True
    assert exact_equal(_pow(base, k * e + 1), _pow(base**k, e)) is False
