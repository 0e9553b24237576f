"""benchmarks/aero_fit.py: AERO sizes for a target spend, scored by closed form against hand numbers."""

import json
import math

import pytest

from benchmarks import aero_fit


def test_reads_a_list_and_a_runs_histogram(tmp_path):
  listed = tmp_path / "rates.json"
  listed.write_text(json.dumps([0.0, 0.5, 1.0]))
  assert aero_fit.read_rates(str(listed)) == [0.0, 0.5, 1.0]
  run = tmp_path / "grpo_seed0.json"
  run.write_text(json.dumps({"warm_start_pass_rates": {"histogram": [2, 0, 1]}}))  # k of 2 right
  assert aero_fit.read_rates(str(run)) == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("content, problem", [
    ({"something": 1}, "expected a JSON list"),
    ([0.5, 1.5], r"in \[0, 1\]"),
    ([], "non-empty"),
])
def test_refuses_files_it_cannot_read_as_pass_rates(tmp_path, content, problem):
  path = tmp_path / "bad.json"
  path.write_text(json.dumps(content))
  with pytest.raises(ValueError, match=problem):
    aero_fit.read_rates(str(path))


def test_score_matches_hand_computed_rejection_without_rescue():
  # 8 explore, no rescue, reject_ratio 1: a group with c right of 8 (0 < c/8 < 0.5, so c = 1, 2, 3) keeps
  # c wrong ones and rejects 8 - 2c.
  config = aero_fit.get_config("aero_reject")
  p = 0.25
  rejected = sum(math.comb(8, c) * p**c * (1 - p) ** (8 - c) * (8 - 2 * c) for c in (1, 2, 3))
  s = aero_fit.score(config.rollout, [p, 0.0])  # the never-solved prompt rejects nothing
  assert s["responses_per_prompt"] == pytest.approx(8.0)
  assert s["rejected_per_prompt"] == pytest.approx(rejected / 2)
  assert s["trained_per_prompt"] == pytest.approx(8.0 - rejected / 2)


def test_fit_ranks_the_exact_budget_first_and_prefers_fewer_trained_rows():
  # Every prompt never solved: any setting spends its whole budget and rejects nothing, so the rows at
  # the top spend exactly 4 (budget 4), each listed once.
  rows = aero_fit.fit([[0.0] * 10], target=4.0, max_budget=6)
  top = [r for r in rows if r["responses_per_prompt"] == pytest.approx(4.0)]
  assert {(r["n_explore"], r["n_extra"], r["budget"]) for r in top} == {
      (1, 1, 4), (1, 2, 4), (1, 3, 4), (2, 1, 4), (2, 2, 4), (3, 1, 4), (4, 1, 4)}
  assert rows[: len(top)] == top
  # Half solvable at p = 0.25: the setting that rejects most is ranked first among equal spends.
  rows = aero_fit.fit([[0.25] * 4], target=8.0, max_budget=8)
  assert (rows[0]["n_explore"], rows[0]["budget"]) == (8, 8)
  assert rows[0]["trained_per_prompt"] < 8.0


def test_main_prints_the_table(tmp_path, capsys):
  path = tmp_path / "rates.json"
  path.write_text(json.dumps([0.0, 0.25, 1.0]))
  aero_fit.main([f"--rates={path}", "--target=8", "--top=3", "--max_budget=10"])
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[0].startswith("| n_explore") and len(lines) == 5
