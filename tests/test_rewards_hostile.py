"""Hostile input: code-shaped strings, compute bombs, deep nesting, huge and malformed text.

Each check must come back within the time limit plus a small margin, score 0, and be counted.
"""

import os
import pathlib
import signal
import time

import pytest

from ar3po_jax.rewards import MathVerifier, VerifyConfig, extract_answer
from ar3po_jax.rewards.fast import fast_equivalent
from ar3po_jax.rewards.pool import ERROR, OK, TIMEOUT, WorkerPool

TIMEOUT_S = 1.0
MARGIN_S = 1.0


@pytest.fixture(scope="module")
def verifier():
  with MathVerifier(timeout_s=TIMEOUT_S, num_workers=2) as v:
    v([r"\boxed{\sqrt{2}}"], [r"\sqrt 2"])  # pay the one-time worker start outside the timed checks
    yield v


def _timed(verifier, response, gold="3"):
  before = verifier.metrics()
  start = time.monotonic()
  reward = verifier([response], [gold])[0]
  elapsed = time.monotonic() - start
  after = verifier.metrics()
  delta = {k.split("/")[1]: after[k] - before[k] for k in after if k != "verify/accuracy"}
  return reward, elapsed, delta


@pytest.mark.parametrize(
    "bomb",
    [
        r"9^{9^{9^{9}}}",
        r"\frac{5^{(5^{(5^{(5^5)})}-4)}-5}{16}",
        r"10^{10^{10^{10}}}-10^{10^{10^{10}}}",
        "(" * 490 + "1" + ")" * 490,
        "{" * 490 + "1" + "}" * 490,
    ],
    ids=["power-tower", "five-tower", "tower-difference", "deep-parens", "deep-braces"],
)
def test_compute_bombs_time_out_and_are_counted(verifier, bomb):
  reward, elapsed, delta = _timed(verifier, rf"\boxed{{{bomb}}}")
  assert reward == 0.0
  assert elapsed < TIMEOUT_S + MARGIN_S
  # A tower the exact evaluator sees through is counted undecided; one the parser chokes on times out.
  assert delta["timeouts"] + delta["errors"] + delta["undecided"] == 1


@pytest.mark.parametrize(
    "hostile",
    [
        r"(10^8)!",
        r"2^{10^{10}}",
        r"\sqrt{10^{100000}}",
        "\\frac{" * 300 + "1" + "}{2}" * 300,
        "\udcff\ud800 1",
        "1\x002",
        r"\frac{1}{2",
        r"}}}{{{",
        "\\" * 999,
    ],
    ids=["factorial", "huge-power", "huge-sqrt", "deep-fracs", "lone-surrogates", "nul", "unbalanced", "inverted-braces", "backslashes"],
)
def test_hostile_answers_score_zero_within_the_limit(verifier, hostile):
  reward, elapsed, _ = _timed(verifier, rf"\boxed{{{hostile}}}")
  assert reward == 0.0
  assert elapsed < TIMEOUT_S + MARGIN_S


def test_default_limit_is_two_seconds_and_holds():
  with MathVerifier(num_workers=1) as v:
    assert v.timeout_s == 2.0
    v([r"\boxed{\pi}"], [r"\pi + 0"])
    # The integer part of 10^{10^7} pi needs ten million digits of pi: a genuine time sink.
    reward, elapsed, delta = _timed(v, r"\boxed{\lfloor 10^{10^{7}}\pi \rfloor}")
  assert reward == 0.0 and elapsed < 2.0 + MARGIN_S and delta["timeouts"] == 1


@pytest.mark.parametrize(
    "payload",
    [
        "__import__('os').system('touch {path}')",
        "eval(\"open('{path}', 'w')\")",
        "exec(\"open('{path}', 'w').write('x')\")",
        "(lambda: __import__('os').system('touch {path}'))()",
        "open('{path}', 'w').write('pwned')",
        r"\text{__import__('os').system('touch {path}')}",
        "Symbol('x').__class__.__mro__[-1].__subclasses__()",
        "__import__('subprocess').call(['touch', '{path}'])",
    ],
)
def test_code_in_answers_is_never_executed(verifier, tmp_path, payload):
  target = tmp_path / "pwned"
  answer = payload.replace("{path}", str(target))
  for response, gold in [(rf"\boxed{{{answer}}}", "1"), (f"Answer: {answer}", "x"), (r"\boxed{1}", answer)]:
    reward, elapsed, _ = _timed(verifier, response, gold)
    assert reward == 0.0 and elapsed < TIMEOUT_S + MARGIN_S
  assert not target.exists()
  assert not list(pathlib.Path(os.getcwd()).glob("pwned*"))


def test_megabyte_responses_are_cheap(verifier):
  for response in ["x" * 1_000_000, "{" * 1_000_000, r"\boxed{" + "{" * 1_000_000, r"\boxed{" + "1" * 1_000_000 + "}"]:
    reward, elapsed, _ = _timed(verifier, response)
    assert reward == 0.0 and elapsed < 0.5
  reward, _, _ = _timed(verifier, "y" * 1_000_000 + r"\boxed{7}", "7")
  assert reward == 1.0


def test_overlong_answers_are_refused_without_parsing(verifier):
  reward, elapsed, delta = _timed(verifier, r"\boxed{" + "1+" * 600 + "1}", "1201")
  assert reward == 0.0 and delta["too_long"] == 1 and delta["pool"] == 0


def test_non_string_inputs(verifier):
  assert verifier([None, b"\\boxed{3}", 3], ["3", "3", None]).tolist() == [0.0, 1.0, 0.0]


def stubborn_sleep(seconds):
  """Stands in for C code that never yields to signals (gmpy2 arithmetic, a stuck extension)."""
  signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
  time.sleep(seconds)
  return seconds


def test_killing_a_stuck_worker_keeps_the_other_results():
  pool = WorkerPool(stubborn_sleep, num_workers=2, timeout_s=0.5, grace_s=0.2)
  try:
    pool.map([(0,), (0,)])
    start = time.monotonic()
    results = pool.map([(0.01,), (60,), (0.02,), (0.03,), (0.04,)])
    elapsed = time.monotonic() - start
    assert results[0] == (OK, 0.01) and results[2:] == [(OK, 0.02), (OK, 0.03), (OK, 0.04)]
    assert results[1] == (TIMEOUT, None)
    assert pool.timeouts == 1 and pool.restarts == 1
    assert elapsed < 0.5 + 0.2 + MARGIN_S
    assert pool.map([(0.01,)]) == [(OK, 0.01)]  # the replacement worker serves the next batch
  finally:
    pool.close()


def test_soft_timeout_keeps_the_worker():
  pool = WorkerPool(time.sleep, num_workers=1, timeout_s=0.3)
  try:
    pool.map([(0,)])
    start = time.monotonic()
    assert pool.map([(5,)]) == [(TIMEOUT, None)]
    assert time.monotonic() - start < 0.3 + 0.5
    assert pool.restarts == 0 and pool.timeouts == 1
  finally:
    pool.close()


def test_a_crashing_worker_is_an_error_and_is_replaced():
  pool = WorkerPool(os._exit, num_workers=1, timeout_s=1.0)
  try:
    assert pool.map([(3,)]) == [(ERROR, "worker died")]
    assert pool.errors == 1 and pool.restarts == 1
  finally:
    pool.close()


def test_fork_is_refused():
  with pytest.raises(ValueError, match="fork"):
    WorkerPool(pow, num_workers=1, timeout_s=1.0, start_method="fork")


@pytest.mark.parametrize(
    "response",
    [
        r"\boxed{5 " + "a" * 900 + "!}",
        r"\boxed{5 " + "ab " * 300 + "!}",
        "Answer:" + " " * 130_000 + "x",
        "Answer: x" + " " * 130_000 + "y",
        "The final answer is " + "*" * 130_000 + "!",
        "Answer: " + " ." * 60_000 + "I hope it is correct",
        r"\boxed{1}, " * 40_000,
        r"\boxed{1}" + " and x =" * 10 + r"\boxed{2}" + "}" * 100_000,
        r"\boxed{" + "}{" * 60_000 + "}",
        "Answer: The final answer is " * 5_000 + "$",
        "$" + "\\(" * 60_000 + "$ 1 = 2",
        r"10,\! " * 20_000 + "1",
    ],
    ids=["unit-letters", "unit-words", "answer-spaces", "answer-inner-spaces", "final-stars", "hope-suffix",
         "box-run", "box-gap-braces", "box-braces", "final-prefix", "math-opens", "thin-spaces"],
)
@pytest.mark.parametrize("fallback", [None, "any"])
def test_parent_side_has_no_regex_blowup(response, fallback):
  # The parent has no time limit of its own, so extraction and the fast path must stay linear.
  config = VerifyConfig()
  start = time.monotonic()
  answer = extract_answer(response, config.order, fallback) or ""
  fast_equivalent("5", answer[: config.max_answer_chars], config)
  fast_equivalent(response[: config.max_answer_chars], "5", config)
  assert time.monotonic() - start < 0.5
