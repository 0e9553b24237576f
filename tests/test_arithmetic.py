import re

import numpy as np
import pytest

from ar3po_jax.tasks.arithmetic import NUM_LEVELS, ArithmeticTask, make_problem

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
