"""Answer extraction: the last balanced box, DAPO's `Answer:` line, Minerva's final-answer sentence."""

import pytest

from ar3po_jax.rewards import extract_answer, ground_truth_answer, last_boxed


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{34}.", "34"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"\boxed{\left\{ x \right\}}", r"\left\{ x \right\}"),
        (r"\fbox{7}", "7"),
        (r"\boxed{1} and \fbox{9}", "9"),
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
