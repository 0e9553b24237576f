"""Answer extraction: the last balanced box, DAPO's `Answer:` line, Minerva's final-answer sentence."""

import time

import pytest

from ar3po_jax.rewards import VerifyConfig, extract_answer, ground_truth_answer, last_boxed


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{34}.", "34"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{\left\{ x \right\}}", r"\left\{ x \right\}"),
        (r"\fbox{7}", "7"),
        (r"\boxed{1} then \fbox{9}", "9"),
        (r"\boxed 5 is it", "5"),
        (r"$\boxed{ 12 }$", "12"),
        (r"\boxed{\text{(B)}}", r"\text{(B)}"),
    ],
)
def test_last_boxed(text, expected):
  assert last_boxed(text) == expected


@pytest.mark.parametrize("text", [r"\boxed{1/2", r"\boxed{\frac{1}{2}", "no box here", r"\boxed{}", r"\boxed"])
def test_unbalanced_or_missing_box_yields_nothing(text):
  assert not last_boxed(text)


def test_unbalanced_last_box_does_not_fall_back_to_an_earlier_box():
  assert extract_answer(r"\boxed{1} ... \boxed{2", order=("boxed",)) is None


def test_answer_line_is_dapo_convention():
  text = "Let me think.\nAnswer: 42\nwait\nAnswer: $\\frac{3}{4}$."
  assert extract_answer(text, order=("answer_line",)) == r"\frac{3}{4}"
  assert extract_answer("**Answer:** 17", order=("answer_line",)) == "17"


def test_final_answer_sentence():
  text = "Final Answer: The final answer is $\\sqrt{2}$. I hope it is correct."
  assert extract_answer(text, order=("final_answer",)) == r"\sqrt{2}"
  assert extract_answer("so the final answer is 12.", order=("final_answer",)) == "12"


def test_order_and_fallback():
  text = "Answer: 5\n and \\boxed{6}"
  assert extract_answer(text) == "6"
  assert extract_answer(text, order=("answer_line", "boxed")) == "5"
  assert extract_answer("I got 3 then 4.5 apples", order=("boxed",)) is None
  assert extract_answer("I got 3 then 4.5 apples", order=("boxed",), fallback="last_number") == "4.5"
  with pytest.raises(ValueError, match="unknown extraction strategy"):
    extract_answer("x", order=("nonsense",))


def test_only_the_tail_is_searched():
  text = r"\boxed{1}" + "x" * 1000
  assert extract_answer(text, max_chars=2000) == "1"
  assert extract_answer(text, max_chars=500) is None


def test_ground_truth_forms():
  assert ground_truth_answer("34") == "34"
  assert ground_truth_answer(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
  assert ground_truth_answer("  $x^2+1$ ") == "$x^2+1$"


def test_non_string_inputs_are_no_answer():
  assert extract_answer(None) is None
  assert extract_answer(b"\\boxed{1}") is None


MINERVA = "Final Answer: The final answer is $(-6, 10)$. I hope it is correct."


@pytest.mark.parametrize("fallback", [None, "last_number", "any"])
def test_minerva_sentence_after_an_answer_label_is_read_in_every_mode(fallback):
  # "Final Answer:" also matches the `Answer:` rule, which used to keep "The final answer is ..." whole.
  assert extract_answer(MINERVA, fallback=fallback) == "(-6, 10)"
  assert extract_answer("Final Answer: the final answer is: 12", fallback=fallback) == "12"
  assert extract_answer(r"The final answer is $\$18.90$. I hope it is correct.", fallback=fallback) == r"\$18.90"


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"The roots are $\boxed{2}$ and $\boxed{3}$.", "2, 3"),
        (r"so $x = \boxed{2}$, $y = \boxed{-1}$", "2, -1"),
        (r"\boxed{1}, \boxed{2}, or \boxed{3}", "1, 2, 3"),
        (r"\boxed{(1, 2)} \quad \boxed{(3, 4)}", "(1, 2), (3, 4)"),
        (r"\boxed{5} \boxed{5}", "5"),  # a repeated box says one thing
        (r"we find \boxed{4}, so the answer is \boxed{7}", "7"),  # words in between: an intermediate box
        (r"\boxed{\boxed{5}}", "5"),
    ],
)
def test_a_run_of_adjacent_boxes_is_one_list_answer(text, expected):
  assert last_boxed(text) == expected
  assert extract_answer(text) == expected
  assert extract_answer(f"Answer: {text}", order=("answer_line",)) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"So the result is $x = \frac{1}{2}$.", r"x = \frac{1}{2}"),
        (r"Adding up, \[ 2 + 3 = 5 \]", "5"),  # a chain ending in a number: its last member
        (r"so $y = 2x + 1$", "y = 2x + 1"),  # not a number after `=`: the whole equation
        (r"we get \(\sqrt{2}\) in the end", r"\sqrt{2}"),
        ("so $$\\frac{3}{4}$$", r"\frac{3}{4}"),
        (r"It costs \$5, and then $x+1$", "x+1"),  # an escaped dollar is no delimiter
        ("The answer is 42.", "42"),
        (r"where $x$ is 7", "7"),  # a number after the last expression wins
        ("I think $3$ or maybe $\\pi$", r"\pi"),
    ],
)
def test_lenient_fallback_takes_the_last_expression_or_number(text, expected):
  assert extract_answer(text, fallback="any") == expected


def test_lenient_fallback_only_runs_when_the_markers_find_nothing():
  assert extract_answer(r"\boxed{3} and later $4$", fallback="any") == "3"
  assert extract_answer("The answer is 42.") is None
  assert extract_answer("no math at all", fallback="any") is None
  assert extract_answer("unclosed $x + 1 and nothing else", fallback="any") == "1"


@pytest.mark.parametrize(
    "text",
    ["\\(" * 60_000, "$" * 130_000, "\\[x" * 40_000, "$$ a" * 30_000, "1" * 130_000, "x = " * 30_000],
    ids=["opens", "dollars", "brackets", "display", "digits", "equals"],
)
def test_lenient_fallback_is_linear_on_hostile_text(text):
  start = time.monotonic()
  extract_answer(text, fallback="any")
  assert time.monotonic() - start < 0.5


def test_config_names_a_bad_extraction_step():
  assert VerifyConfig(fallback="any").fallback == "any"
  with pytest.raises(ValueError, match="fallback"):
    VerifyConfig(fallback="anything")
  with pytest.raises(ValueError, match="order"):
    VerifyConfig(order=("boxed", "nope"))
