"""Property tests: on arbitrary text the verifier never raises and always returns within the limit."""

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ar3po_jax.rewards import MathVerifier, VerifyConfig, extract_answer
from ar3po_jax.rewards.fast import fast_equivalent
from ar3po_jax.rewards.normalize import normalize

TIMEOUT_S = 1.0
MARGIN_S = 1.0

# LaTeX-flavoured fragments make hypothesis reach the parser far more often than uniform text would.
_FRAGMENTS = st.sampled_from(
    ["\\frac", "\\sqrt", "{", "}", "(", ")", "[", "]", "\\{", "\\}", "^", "_", "=", ",", "\\%", "\\pi", "x", "1",
     "0.5", "-", "+", "\\cdot", "!", "\\left(", "\\right)", "\\text{", "\\infty", "\\cup", "&", "\\\\",
     "\\begin{pmatrix}",
     "\\end{pmatrix}", "$", "i", "e", " ", "9", "\\boxed{", "Answer:", "\\le", "<", "|"]
)
_LATEXISH = st.lists(st.one_of(_FRAGMENTS, st.text(max_size=3)), max_size=40).map("".join)
_ANY_TEXT = st.one_of(st.text(max_size=300), _LATEXISH)


@pytest.fixture(scope="module")
def verifier():
  with MathVerifier(timeout_s=TIMEOUT_S, num_workers=2) as v:
    v([r"\boxed{\sqrt{2}}"], [r"\sqrt 2"])
    yield v


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_ANY_TEXT, gold=_ANY_TEXT)
def test_parent_side_never_raises(text, gold):
  config = VerifyConfig()
  pred = extract_answer(text, config.order, "last_number")
  normalize(text)
  if pred:
    assert fast_equivalent(gold, pred, config) in (True, False, None)


@settings(
    max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(pred=_ANY_TEXT, gold=_ANY_TEXT)
def test_verifier_never_raises_and_respects_the_limit(verifier, pred, gold):
  start = time.monotonic()
  rewards = verifier([f"\\boxed{{{pred}}}", pred], [gold, gold])
  # Two checks on two workers run side by side, so the pair takes one limit, not two.
  assert time.monotonic() - start < TIMEOUT_S + MARGIN_S
  assert set(rewards.tolist()) <= {0.0, 1.0}


@settings(
    max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.fractions(min_value=-10**6, max_value=10**6, max_denominator=10**4))
def test_a_fraction_equals_its_own_spellings(verifier, value):
  spellings = [f"{value.numerator}/{value.denominator}", f"\\frac{{{value.numerator}}}{{{value.denominator}}}"]
  if value.denominator == 1:
    spellings.append(str(value.numerator))
  texts = [f"\\boxed{{{s}}}" for s in spellings]
  assert verifier(texts, [str(value)] * len(texts)).tolist() == [1.0] * len(texts)
  other = value + 1
  assert verifier([f"\\boxed{{{other.numerator}/{other.denominator}}}"], [str(value)])[0] == 0.0
