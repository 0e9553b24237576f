import re

import numpy as np
import pytest

from ar3po_jax.tasks.arithmetic import NUM_LEVELS, ArithmeticTask, make_problem, needs_carry

TASK = ArithmeticTask.generate(seed=5, num_train=3000, num_eval=300, level_weights=(1, 1, 1, 1, 1))


def _evaluate(expression: str) -> int:
  """Left-to-right with * before +/-, over the generator's own tokens; no eval()."""
  tokens = re.findall(r"\d+|[-+*]", expression)
  terms, ops = [int(tokens[0])], []
  for op, value in zip(tokens[1::2], tokens[2::2]):
    if op == "*":
      terms[-1] *= int(value)
    else:
      terms.append(int(value))
      ops.append(op)
  total = terms[0]
  for op, value in zip(ops, terms[1:]):
    total = total + value if op == "+" else total - value
  return total


def test_answers_and_worked_solutions_are_right():
  for p in TASK.train[:500] + TASK.eval:
    assert int(p.answer) == _evaluate(p.expression)
    assert p.solution.endswith(f"\\boxed{{{p.answer}}}")
    for x, op, y, z in re.findall(r"(\d+)([-+*])(\d+)=(-?\d+)\.", p.solution):
      assert _evaluate(f"{x}{op}{y}") == int(z)


def test_held_out_split_never_overlaps_training():
  assert not {p.expression for p in TASK.train} & {p.expression for p in TASK.eval}
  assert len({p.expression for p in TASK.eval}) == len(TASK.eval)


def test_deterministic_in_seed_and_every_level_present():
  again = ArithmeticTask.generate(seed=5, num_train=3000, num_eval=300, level_weights=(1, 1, 1, 1, 1))
  assert [p.text for p in again.train[:50]] == [p.text for p in TASK.train[:50]]
  assert {p.level for p in TASK.eval} == set(range(1, NUM_LEVELS + 1))
  other = ArithmeticTask.generate(seed=6, num_train=100, num_eval=10, level_weights=(1, 1, 1, 1, 1))
  assert [p.text for p in other.train[:20]] != [p.text for p in TASK.train[:20]]


def test_level_weights_select_levels_and_bad_weights_are_named():
  only_hard = ArithmeticTask.generate(seed=1, num_train=200, num_eval=20, level_weights=(0, 0, 0, 0, 1))
  assert {p.level for p in only_hard.train} == {5}
  with pytest.raises(ValueError, match="level_weights"):
    ArithmeticTask.generate(seed=1, num_train=10, num_eval=1, level_weights=(0, 0, 0, 0, 0))
  with pytest.raises(ValueError, match="level"):
    make_problem(np.random.default_rng(0), 6, "x")


def test_levels_two_and_three_split_one_digit_sums_by_carry():
  for p in TASK.eval + TASK.train[:500]:
    if p.level in (2, 3):
      a, b = map(int, p.expression.split("+"))
      assert b < 10 and needs_carry(a, "+", b) == (p.level == 3), p.expression


SLIPPED = ArithmeticTask.generate(seed=5, num_train=3000, num_eval=300, level_weights=(1, 1, 1, 1, 1), teacher_slip=0.6)


def test_teacher_slip_flaws_training_solutions_only_and_keeps_true_answers():
  for p in SLIPPED.train + SLIPPED.eval:
    assert int(p.answer) == _evaluate(p.expression)
  assert all(p.solution.endswith(f"\\boxed{{{p.answer}}}") for p in SLIPPED.eval)
  wrong = [p for p in SLIPPED.train if not p.solution.endswith(f"\\boxed{{{p.answer}}}")]
  carrying = [p for p in SLIPPED.train if p.level == 3]
  slipped = [p for p in carrying if p in wrong]
  # Every level-3 sum carries, so about 60% of their solutions forget it, 10 short of the answer.
  assert 0.5 < len(slipped) / len(carrying) < 0.7
  for p in slipped:
    boxed = int(re.search(r"\\boxed\{(-?\d+)\}", p.solution).group(1))
    assert boxed == int(p.answer) - 10
  # Sums without a carry are never flawed.
  assert not [p for p in wrong if p.level in (1, 2)]
  # Each slip is a forgotten carry, and the chain continues from the written (wrong) value.
  for p in wrong:
    written = re.findall(r"(\d+)([+*])(\d+)=(-?\d+)\.", p.solution)
    slips = [int(x) + int(y) - int(z) for x, op, y, z in written if op == "+"]
    assert set(slips) <= {0, 10} and 10 in slips
    for (_, _, _, z), (x, _, _, _) in zip(written, written[1:]):
      assert z == x


def test_teacher_slip_zero_is_the_clean_task_and_bad_values_are_named():
  clean = ArithmeticTask.generate(seed=5, num_train=3000, num_eval=300, level_weights=(1, 1, 1, 1, 1), teacher_slip=0.0)
  assert [p.text for p in clean.train] == [p.text for p in TASK.train]
  assert [p.text for p in SLIPPED.eval] == [p.text for p in TASK.eval]
  with pytest.raises(ValueError, match="teacher_slip"):
    ArithmeticTask.generate(seed=1, num_train=10, num_eval=1, level_weights=(1, 1, 1, 1, 1), teacher_slip=1.5)
