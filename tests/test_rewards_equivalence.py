"""The equivalence table, the knobs, and the verifier's interface (batch form, metrics, fast path)."""

import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from ar3po_jax.rewards import ExactVerifier, MathVerifier, VerifyConfig, math_reward
from ar3po_jax.rewards.fast import fast_equivalent

_TABLE = pathlib.Path(__file__).parent / "data" / "verifier_cases.tsv"
_REPO = pathlib.Path(__file__).resolve().parent.parent


def _rows():
  rows = []
  for line in _TABLE.read_text().splitlines():
    if line.strip() and not line.startswith("#"):
      kind, gold, pred, expected = line.split("\t")
      rows.append((kind, gold, pred, expected == "1"))
  return rows


@pytest.fixture(scope="module")
def verifier():
  with MathVerifier(timeout_s=2.0) as v:
    yield v


def test_table_is_big_and_covers_every_class():
  rows = _rows()
  assert len(rows) >= 200
  kinds = {kind for kind, *_ in rows}
  assert kinds >= {
      "integer", "decimal", "fraction", "percent", "radical", "pi", "symbolic", "tuple", "set", "list",
      "interval", "matrix", "equation", "thousands", "units", "text", "leftright", "latex",
  }
  assert sum(not expected for *_, expected in rows) >= 50  # the table guards against false positives too


def test_equivalence_table(verifier):
  rows = _rows()
  rewards = verifier([f"Thus the answer is \\boxed{{{pred}}}." for _, _, pred, _ in rows], [gold for _, gold, _, _ in rows])
  wrong = [(kind, gold, pred, expected) for (kind, gold, pred, expected), r in zip(rows, rewards) if bool(r) != expected]
  assert not wrong, "\n".join(f"{k}: gold {g!r} pred {p!r} expected {e}" for k, g, p, e in wrong)
  metrics = verifier.metrics()
  assert metrics["verify/timeouts"] == 0 and metrics["verify/errors"] == 0


@pytest.mark.parametrize(
    "gold, pred",
    [
        (r"\frac{1}{2^{99}}", r"\frac{1}{2^{98}}"),
        (r"\frac{1}{2004!}", r"\frac{1}{2006!}"),
        (r"\frac{1}{3}", "0.333"),
    ],
)
def test_classic_traps_are_false(verifier, gold, pred):
  assert verifier([rf"\boxed{{{pred}}}"], [gold])[0] == 0.0


def _delta(verifier, texts, golds):
  before = verifier.metrics()
  rewards = verifier(texts, golds).tolist()
  after = verifier.metrics()
  return rewards, {k.split("/")[1]: after[k] - before[k] for k in after if k != "verify/accuracy"}


def test_exact_numbers_are_exact_at_any_magnitude(verifier):
  # A relative tolerance made all of these equal; exact values must be equal, however large.
  pairs = [
      ("2^{200}", "2^{200}+1", 0.0),
      (r"10^{10^{10}}", r"10^{10^{10}}+1", 0.0),
      (r"\frac{1}{10^{50}}", r"\frac{1}{10^{50}+1}", 0.0),
      (r"10^{10^{10}}", r"100^{5\cdot 10^{9}}", 1.0),  # equal spellings of a number too large to expand
      ("2^{200}", r"2^{200}+\sqrt{2}", 0.0),
      (r"2^{200}", r"1.60693804425899\times 10^{60}", 1.0),  # a decimal keeps its tolerance
  ]
  rewards, delta = _delta(verifier, [rf"\boxed{{{p}}}" for _, p, _ in pairs], [g for g, _, _ in pairs])
  assert rewards == [expected for *_, expected in pairs]
  assert delta["undecided"] == delta["timeouts"] == delta["errors"] == 0  # decided, not given up on


def test_towers_that_cannot_be_settled_are_counted_undecided(verifier):
  # Also where a float evaluation would need the tower's exponent: inside a function, against a
  # decimal, at the sample points of an expression. None of them may run into the time limit.
  pairs = [
      (r"9^{9^{9^{9}}}", r"9^{9^{9^{9}}}+1"),
      (r"9^{9^{9^{9}}}", "3"),
      ("3", r"\sin(9^{9^{9^{9}}})"),
      ("3.0", r"9^{9^{9^{9}}}"),
      ("x", r"x^{9^{9^{9}}}"),
  ]
  rewards, delta = _delta(verifier, [rf"\boxed{{{p}}}" for _, p in pairs], [g for g, _ in pairs])
  assert rewards == [0.0] * len(pairs)
  assert delta["undecided"] == len(pairs) and delta["timeouts"] == delta["errors"] == 0


@pytest.fixture(scope="module")
def lenient():
  with MathVerifier(timeout_s=2.0, num_workers=1, fallback="any") as v:
    yield v


_MINERVA = "Final Answer: The final answer is $(-6, 10)$. I hope it is correct."
_EVERY_MODE = [
    (_MINERVA, "(-6,10)", 1.0),
    (_MINERVA, "(10,-6)", 0.0),
    (r"The roots are $\boxed{2}$ and $\boxed{3}$.", "2, 3", 1.0),
    (r"The roots are $\boxed{2}$ and $\boxed{3}$.", r"\{3, 2\}", 1.0),
    (r"The roots are $\boxed{2}$ and $\boxed{3}$.", "3", 0.0),  # boxing two candidates earns nothing
    (r"so $x = \boxed{2}$, $y = \boxed{-1}$", "(2, -1)", 1.0),
    (r"so $x = \boxed{2}$, $y = \boxed{-1}$", "(-1, 2)", 0.0),
    (r"\boxed{4} \boxed{4}", "4", 1.0),
    (r"we find \boxed{4}, so the answer is \boxed{7}", "7", 1.0),
    (r"That is $\boxed{11,\! 111,\! 111,\! 100}$.", "11111111100", 1.0),
    (r"That is $\boxed{11111111100}$.", r"11,\! 111,\! 111,\! 100", 1.0),
    (r"So \boxed{\left[\begin{array}{cc}1&2\\3&4\end{array}\right]}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", 1.0),
    (r"So \boxed{\left[\begin{array}{cc}1&2\\3&5\end{array}\right]}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", 0.0),
]


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_answer_forms_are_read_in_every_mode(verifier, lenient, mode):
  v = verifier if mode == "strict" else lenient
  rewards = v([text for text, _, _ in _EVERY_MODE], [gold for _, gold, _ in _EVERY_MODE]).tolist()
  wrong = [(t, g, e) for (t, g, e), r in zip(_EVERY_MODE, rewards) if r != e]
  assert not wrong


def test_lenient_mode_reads_unmarked_answers_that_strict_mode_refuses(verifier, lenient):
  texts = ["So the answer is 42.", r"Thus $x = \frac{1}{2}$.", r"Adding, \[2 + 3 = 5\]", "I got 41, not 42."]
  golds = ["42", "0.5", "5", "41"]
  assert verifier(texts, golds).tolist() == [0.0] * 4
  # The last case is the trade-off: the lenient mode reads the last number, which the model rejected.
  assert lenient(texts, golds).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_percent_knob():
  either, fraction, number = (VerifyConfig(percent=m) for m in ("either", "fraction", "number"))
  assert fast_equivalent(r"10\%", "0.1", either) and fast_equivalent(r"10\%", "10", either)
  assert fast_equivalent(r"10\%", "0.1", fraction) and not fast_equivalent(r"10\%", "10", fraction)
  assert not fast_equivalent(r"10\%", "0.1", number) and fast_equivalent(r"10\%", "10", number)
  assert math_reward(r"\boxed{0.1}", r"10\%", percent="fraction") == 1.0
  assert math_reward(r"\boxed{0.1}", r"10\%", percent="number") == 0.0


def test_tolerance_knob():
  assert fast_equivalent("0.3333", "1/3", VerifyConfig(rel_tol=1e-3))
  assert not fast_equivalent("0.3333", "1/3", VerifyConfig())
  with pytest.raises(ValueError):
    VerifyConfig(rel_tol=2.0)


def test_list_order_and_assignment_knobs():
  with MathVerifier(unordered_lists=False, assignment=False, num_workers=1) as v:
    assert v([r"\boxed{2, 1}", r"\boxed{1, 2}", r"\boxed{x=5}"], ["1, 2", "1, 2", "5"]).tolist() == [0.0, 1.0, 0.0]


def test_batch_interface_matches_the_verifier_protocol(verifier):
  rewards = verifier([r"\boxed{3}", "no answer", r"Answer: 1/2", r"\boxed{\sqrt{4}}"], ["3", "3", r"\frac12", 2])
  assert rewards.dtype == np.float32 and rewards.shape == (4,)
  assert rewards.tolist() == [1.0, 0.0, 1.0, 1.0]
  with pytest.raises(ValueError, match="2 texts but 1 answers"):
    verifier(["a", "b"], ["1"])
  metrics = verifier.metrics()
  for key in ("verify/timeouts", "verify/errors", "verify/fast_path", "verify/fast_path_frac", "verify/total"):
    assert isinstance(metrics[key], float)


def test_math_reward_and_exact_verifier_reexport():
  assert math_reward(r"The answer is \boxed{\dfrac{1}{2}}", "0.5") == 1.0
  assert math_reward(r"The answer is \boxed{3}", "$4$") == 0.0
  assert ExactVerifier()([r"\boxed{7}"], ["7"]).tolist() == [1.0]


def test_fast_path_never_imports_sympy_or_starts_workers():
  code = (
      "import sys\n"
      "from ar3po_jax.rewards import MathVerifier\n"
      "v = MathVerifier()\n"
      "r = v([r'\\boxed{3}', r'\\boxed{1/2}', r'\\boxed{50\\%}', 'Answer: 1,000'], ['3', '0.5', '1/2', '1000'])\n"
      "assert r.tolist() == [1.0] * 4, r\n"
      "assert 'sympy' not in sys.modules and v._pool is None\n"
      "assert v.metrics()['verify/fast_path'] == 4\n"
  )
  subprocess.run([sys.executable, "-c", code], check=True, cwd=_REPO, timeout=60)


def test_fast_path_throughput_on_integer_answers():
  v = MathVerifier()
  texts = [f"Reasoning step {i} ... " * 20 + f"so the answer is \\boxed{{{i % 97}}}." for i in range(5000)]
  answers = [str(i % 89) for i in range(5000)]
  v(texts[:100], answers[:100])
  start = time.perf_counter()
  v(texts, answers)
  rate = len(texts) / (time.perf_counter() - start)
  assert v._pool is None
  assert rate > 20_000, f"{rate:.0f} responses/s"
