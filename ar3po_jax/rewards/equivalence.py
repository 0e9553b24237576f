"""Whether two answers are mathematically the same: the sympy path, run only in worker processes.

Exact values must be exactly equal (so `1/2^99` differs from `1/2^98` however close the floats, and
`2^{200}+1` differs from `2^{200}`); a decimal literal on either side allows `config.rel_tol`.
Rational-valued answers are evaluated exactly at any magnitude (`rational.py`, which keeps powers too
large to expand as symbolic factors); other exact numbers are compared to below their units digit.
Exact comparisons that cannot be settled within a fixed budget (towers like `9^{9^{9^9}}` that agree
with the other side as far as can be computed) raise `rational.Undecided`: counted, scored 0.
Symbolic expressions are equal when their difference simplifies to zero, or agrees with zero at several
fixed points (a probabilistic identity test that catches what `simplify` leaves unsimplified).
Nothing here bounds time: the pool does.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import sympy
from sympy import Float, MatrixBase, Rational, Set

from ar3po_jax.rewards import rational
from ar3po_jax.rewards.config import VerifyConfig
from ar3po_jax.rewards.fast import close, fast_equivalent, fast_number, numbers_equal, unassign
from ar3po_jax.rewards.normalize import is_plain_words, normalize
from ar3po_jax.rewards.parse import Node, structure, to_sympy
from ar3po_jax.rewards.rational import Undecided

# Fixed, irrational-looking points of both signs: positives only would equate |x| with x.
_POINTS = (0.7319, -1.2913, 2.1747, -0.4123, 1.5539, -2.3761, 0.2887)
_MIN_VALID_POINTS = 3
_EXACT_NUMERIC_DIGITS = 50
_EXACT_REL_TOL = 1e-40
# Irrational exact values are resolved to their units digit up to this size; larger ones that agree to
# 40 digits are undecided.
_MAX_EXACT_DIGITS = 1000
_SYMBOLIC_REL_TOL = 1e-10
_COLLECTIONS = ("set", "list", "union")
_INTERVAL_BRACKETS = ("()", "[]", "(]", "[)")


def equivalent(gold: str, pred: str, config: VerifyConfig) -> bool:
  """True when the raw answer strings pred and gold denote the same mathematical object."""
  decided = fast_equivalent(gold, pred, config)
  if decided is not None:
    return decided
  return _match(structure(normalize(gold)), structure(normalize(pred)), config)


def _is_simple_lhs(node: Node) -> bool:
  text = node.text
  return node.kind == "leaf" and len(text) <= 16 and unassign(text + "=0", "") == "0" or _is_function_head(text)


def _is_function_head(text: str) -> bool:
  return len(text) <= 8 and text[:1].isalpha() and text[1:2] == "(" and text.endswith(")")


def _match(g: Node, p: Node, config: VerifyConfig) -> bool:
  if config.assignment:
    if g.kind == "eq" and p.kind != "eq" and _is_simple_lhs(g.items[0]):
      g = g.items[1]
    if p.kind == "eq" and g.kind != "eq" and _is_simple_lhs(p.items[0]):
      p = p.items[1]
  if g.kind == p.kind == "leaf":
    return _leaf_equal(g.text, p.text, config)
  if g.kind == p.kind == "eq":
    return _equations_equal(g, p, config)
  if g.kind in _COLLECTIONS and len(g.items) == 1 and p.kind not in _COLLECTIONS:
    return _match(g.items[0], p, config)
  if p.kind in _COLLECTIONS and len(p.items) == 1 and g.kind not in _COLLECTIONS:
    return _match(g, p.items[0], config)
  if g.kind == p.kind == "seq":
    return g.brackets == p.brackets and _ordered(g.items, p.items, config)
  if g.kind == p.kind == "matrix":
    return len(g.items) == len(p.items) and all(
        _ordered(gr, pr, config) for gr, pr in zip(g.items, p.items)
    )
  if g.kind != p.kind and {g.kind, p.kind} <= {"matrix", "seq", "list"}:
    g_items, p_items = _as_vector(g), _as_vector(p)
    if g_items is not None and p_items is not None:
      return _ordered(g_items, p_items, config)
  if g.kind in _COLLECTIONS and p.kind in _COLLECTIONS:
    ordered = g.kind == p.kind == "list" and not config.unordered_lists
    return (_ordered if ordered else _unordered)(g.items, p.items, config)
  return _sets_equal(g, p, config)


def _as_vector(node: Node):
  """The items of a tuple, bare list or single-row/column matrix, else None."""
  if node.kind == "seq" and node.brackets in ("()", "[]"):
    return node.items
  if node.kind == "list":
    return node.items
  if node.kind == "matrix":
    if len(node.items) == 1:
      return node.items[0]
    if all(len(row) == 1 for row in node.items):
      return tuple(row[0] for row in node.items)
  return None


def _ordered(gs, ps, config: VerifyConfig) -> bool:
  return len(gs) == len(ps) and all(_match(g, p, config) for g, p in zip(gs, ps))


def _unordered(gs, ps, config: VerifyConfig) -> bool:
  """Multiset equality; greedy pairing suffices because equivalence is transitive."""
  if len(gs) != len(ps):
    return False
  unused = list(ps)
  for g in gs:
    hit = next((i for i, p in enumerate(unused) if _match(g, p, config)), None)
    if hit is None:
      return False
    unused.pop(hit)
  return True


def _percent_variants(text: str, config: VerifyConfig) -> list[tuple[str, Rational]]:
  if not text.endswith("\\%"):
    return [(text, sympy.Integer(1))]
  base = text[:-2].strip()
  hundredth = (base, Rational(1, 100))
  return {"fraction": [hundredth], "number": [(base, sympy.Integer(1))]}.get(
      config.percent, [hundredth, (base, sympy.Integer(1))]
  )


def _leaf_equal(g: str, p: str, config: VerifyConfig) -> bool:
  if g == p:
    return True
  gn, pn = fast_number(g), fast_number(p)
  if gn is not None and pn is not None:
    return numbers_equal(gn, pn, config)
  if is_plain_words(g) and is_plain_words(p):
    return g.replace(" ", "").casefold() == p.replace(" ", "").casefold()
  for (gt, gs), (pt, ps) in itertools.product(_percent_variants(g, config), _percent_variants(p, config)):
    ge, pe = to_sympy(gt), to_sympy(pt)
    if ge is not None and pe is not None and _sympy_equal(ge * gs if gs != 1 else ge, pe * ps if ps != 1 else pe, config):
      return True
  return False


def _sympy_equal(a, b, config: VerifyConfig) -> bool:
  if a == b:
    return True
  if isinstance(a, MatrixBase) or isinstance(b, MatrixBase):
    return (
        isinstance(a, MatrixBase) and isinstance(b, MatrixBase) and a.shape == b.shape
        and all(_sympy_equal(x, y, config) for x, y in zip(a, b))
    )
  if isinstance(a, Set) or isinstance(b, Set):
    return _sets_of(a) is not None and _sets_of(a) == _sets_of(b)
  Rel, Boolean = sympy.core.relational.Relational, sympy.logic.boolalg.Boolean
  if isinstance(a, Rel) and isinstance(b, Rel):
    return _relations_equal(a, b, config)
  if any(isinstance(x, Boolean) and not isinstance(x, sympy.Expr) for x in (a, b)):  # Symbol is a Boolean too
    a_set = _sets_of(a)
    return a_set is not None and a_set == _sets_of(b)
  if not (isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr)):
    return False
  rational.refuse_towers(a)
  rational.refuse_towers(b)
  inexact = a.has(Float) or b.has(Float)
  if not (a.free_symbols or b.free_symbols):
    return _numbers_equal(a, b, inexact, config)
  return _expressions_equal(a, b, inexact, config)


def _numbers_equal(a, b, inexact: bool, config: VerifyConfig) -> bool:
  if a.is_Rational and b.is_Rational:
    return close(Fraction(int(a.p), int(a.q)), Fraction(int(b.p), int(b.q)), inexact, config.rel_tol)
  undecided = None
  if not inexact:
    try:
      decided = rational.exact_equal(a, b)
    except Undecided as e:
      if not e.numeric_ok:
        raise
      decided, undecided = None, e
    if decided is not None:
      return decided
  # Compare in sympy Floats, not Python floats: 1/2004! and 1/2006! both underflow to 0.0.
  va, vb = a.evalf(_EXACT_NUMERIC_DIGITS), b.evalf(_EXACT_NUMERIC_DIGITS)
  if not (va.is_number and vb.is_number and va.is_finite and vb.is_finite):
    return False  # infinities equal only structurally, and a == b was already tried
  if inexact:
    return _sympy_close(va, vb, config.rel_tol)
  if not _sympy_close(va, vb, _EXACT_REL_TOL):
    return False  # they differ within the first 40 digits, far above evalf's error
  if undecided is not None:
    raise undecided
  return _irrationals_equal(a, b, max(abs(va), abs(vb)))


def _irrationals_equal(a, b, scale) -> bool:
  """Exact values that agree to 40 digits: equal when a - b vanishes at a precision that reaches
  below the units digit, so `2^{200}+\\sqrt{2}` differs from `2^{200}` although their ratio is 1 + 1e-60.
  """
  if scale == 0:
    return bool((a - b).evalf(_EXACT_NUMERIC_DIGITS) == 0)
  sign, mantissa, exponent, bits = sympy.Float(scale)._mpf_
  digits = max(0, int((exponent + bits) * 0.30103) + 1)
  if digits > _MAX_EXACT_DIGITS:
    raise Undecided(f"exact values of {digits} digits that agree to 40")
  n = _EXACT_NUMERIC_DIGITS + digits
  d = (a - b).evalf(n, maxn=n + 30)
  return bool(abs(d) <= sympy.Float(_EXACT_REL_TOL, n) * min(scale, 1))


def _sympy_close(x, y, rel_tol: float, scale=None) -> bool:
  scale = max(abs(x), abs(y)) if scale is None else scale
  return bool(abs(x - y) <= rel_tol * scale)


def _complex_close(x: complex, y: complex, rel_tol: float) -> bool:
  return abs(x - y) <= rel_tol * max(abs(x), abs(y))


def _values_at_points(expr, symbols):
  values = []
  for k in range(len(_POINTS)):
    # Stride j+1 (coprime with the 7 points) pairs every sign combination of two symbols, which
    # is what exposes branch-cut identities like ln(ab) = ln a + ln b.
    subs = {s: _POINTS[(k * (j + 1) + j) % len(_POINTS)] + 0.01 * j for j, s in enumerate(symbols)}
    try:
      values.append(complex(expr.evalf(30, subs=subs)))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
      values.append(None)
  return values


def _expressions_equal(a, b, inexact: bool, config: VerifyConfig) -> bool:
  symbols = sorted(a.free_symbols | b.free_symbols, key=str)
  tol = config.rel_tol if inexact else _SYMBOLIC_REL_TOL
  valid = 0
  for va, vb in zip(_values_at_points(a, symbols), _values_at_points(b, symbols)):
    if va is None or vb is None or any(map(_not_finite, (va, vb))):
      continue
    if not _complex_close(va, vb, tol) and abs(va - vb) > tol:
      return False
    valid += 1
  if valid >= _MIN_VALID_POINTS:
    return True
  # Too few points where both sides are defined to trust sampling: only a proof will do.
  diff = a - b
  return not inexact and (sympy.expand(diff) == 0 or sympy.simplify(diff) == 0)


def _not_finite(z: complex) -> bool:
  return z != z or abs(z) == float("inf")


def _equations_equal(g: Node, p: Node, config: VerifyConfig) -> bool:
  """Same lhs and matching rhs, or the same relation up to a nonzero factor (`2x=4` vs `x=2`)."""
  g_lhs, g_rhs = g.items
  p_lhs, p_rhs = p.items
  if _leaf_equal(g_lhs.text, p_lhs.text, config) and _match(g_rhs, p_rhs, config):
    return True
  if g_rhs.kind != "leaf" or p_rhs.kind != "leaf":
    return False
  sides = [to_sympy(x) for x in (g_lhs.text, g_rhs.text, p_lhs.text, p_rhs.text)]
  if any(s is None or not isinstance(s, sympy.Expr) for s in sides):
    return False
  return _proportional(sides[0] - sides[1], sides[2] - sides[3], positive_only=False)


def _proportional(d1, d2, positive_only: bool) -> bool:
  if d2 == 0:
    return d1 == 0
  ratio = sympy.simplify(d1 / d2)
  if ratio.free_symbols or ratio == 0 or not ratio.is_finite:
    return False
  return not positive_only or bool(ratio.is_positive)


def _relations_equal(a, b, config: VerifyConfig) -> bool:
  symbols = a.free_symbols | b.free_symbols
  if len(symbols) == 1 and a.free_symbols == b.free_symbols and not isinstance(a, sympy.Eq):
    return _sets_of(a) == _sets_of(b)
  (op_a, d_a), (op_b, d_b) = _oriented(a), _oriented(b)
  if op_a != op_b:
    return False
  return _proportional(d_a, d_b, positive_only=op_a not in ("==", "!="))


def _oriented(rel):
  """(op, lhs - rhs) with > and >= turned around, so `x > 2` and `2 < x` read alike."""
  op, d = rel.rel_op, rel.lhs - rel.rhs
  if op in (">", ">="):
    return op.replace(">", "<"), -d
  return op, d


def _sets_of(x):
  """x as a sympy Set (intervals from one-variable inequalities), or None."""
  if isinstance(x, Set):
    return x
  # Boolean covers chained inequalities (`2 \le x \le 5` parses to an And) as well as relations.
  boolean = isinstance(x, sympy.logic.boolalg.Boolean) and not isinstance(x, (Set, sympy.Expr))
  if boolean and len(x.free_symbols) == 1:
    try:
      return x.as_set()
    except (NotImplementedError, TypeError, ValueError):
      return None
  return None


def _node_set(node: Node):
  """A node as a sympy Set: intervals, unions of them, finite sets, or a one-variable inequality."""
  if node.kind == "seq" and len(node.items) == 2 and node.brackets in _INTERVAL_BRACKETS:
    ends = [to_sympy(item.text) if item.kind == "leaf" else None for item in node.items]
    if any(e is None or not isinstance(e, sympy.Expr) for e in ends):
      return None
    return sympy.Interval(ends[0], ends[1], node.brackets[0] == "(", node.brackets[1] == ")")
  if node.kind == "union":
    parts = [_node_set(item) for item in node.items]
    return None if any(p is None for p in parts) else sympy.Union(*parts)
  if node.kind == "set":
    items = [to_sympy(item.text) if item.kind == "leaf" else None for item in node.items]
    return None if any(i is None for i in items) else sympy.FiniteSet(*items)
  if node.kind == "leaf":
    return _sets_of(to_sympy(node.text))
  if node.kind == "eq" and node.items[1].kind != "eq":
    return _node_set(node.items[1])
  return None


def _sets_equal(g: Node, p: Node, config: VerifyConfig) -> bool:
  gs, ps = _node_set(g), _node_set(p)
  return gs is not None and ps is not None and bool(gs == ps)
