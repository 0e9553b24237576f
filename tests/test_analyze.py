"""The run analyses (ar3po_jax/analyze.py) on hand-built records and metrics: numbers computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ar3po_jax import analyze


def test_average_ranks_share_ties():
  assert analyze.average_ranks([10, 20, 10, 30]).tolist() == [1.5, 3.0, 1.5, 4.0]
  assert analyze.average_ranks([3, 3, 3]).tolist() == [2.0, 2.0, 2.0]


def test_spearman_against_hand_computed_values():
  # y ranks [1, 2, 3.5, 5, 3.5]; centred x ranks [-2, -1, 0, 1, 2], y ranks [-2, -1, .5, 2, .5]:
  # sum of products 8, sums of squares 10 and 9.5, so rho = 8 / sqrt(95).
  assert analyze.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
  assert analyze.spearman([1, 2, 3], [10, 40, 90]) == pytest.approx(1.0)  # monotone, not linear
  assert analyze.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  assert math.isnan(analyze.spearman([1, 2, 3], [4, 4, 4]))  # a constant side has no ranking
  assert math.isnan(analyze.spearman([1], [2]))
  with pytest.raises(ValueError, match="2 x values but 3"):
    analyze.spearman([1, 2], [1, 2, 3])


def test_age_bins_double():
  labels = [analyze.age_label(a) for a in (1, 2, 3, 4, 5, 8, 9, 16, 17, 300)]
  assert labels == ["1", "2", "3-4", "3-4", "5-8", "5-8", "9-16", "9-16", "17+", "17+"]
  with pytest.raises(ValueError, match="age 0"):
    analyze.age_label(0)


def _p(uid, sampled, correct):
  return {"uid": uid, "sampled": sampled, "correct": correct}


RUN = [
    # a: all wrong, nothing buffered yet (the no-reuse reference); b solved.
    {"step": 0, "prompts": [_p("a", [4, 4], [0, 0]), _p("b", [4, 0], [1, 0])], "reuse": []},
    {"step": 2, "prompts": [_p("a", [4, 4], [0, 0])],
     "reuse": [{"uid": "a", "sampled_step": 1, "age": 1, "spread": 0.3, "nonzero": True}]},
    {"step": 5, "prompts": [_p("a", [4, 0], [2, 0]), _p("b", [4, 4], [0, 0])], "reuse": []},
    # a reused again, 7 steps old, never drawn after: censored.
    {"step": 9, "prompts": [_p("a", [4, 4], [0, 0])],
     "reuse": [{"uid": "a", "sampled_step": 2, "age": 7, "spread": 0.0, "nonzero": False}]},
]


def test_reuse_age_follows_each_prompt_to_its_next_visits():
  res = analyze.reuse_age(RUN, k=1)
  bins = {r["age"]: r for r in res["bins"]}
  assert res["events"] == 2
  # Age 1 at step 2: a's next visit (step 5) has 2 of 4 correct.
  assert bins["1"] == {"age": "1", "events": 1, "followed": 1, "solved_within_k": 1.0, "next_pass_rate": 0.5,
                       "nonzero_frac": 1.0, "spread_mean": 0.3}
  # Age 7: no later visit, so it counts as an event but not as followed.
  assert bins["5-8"]["events"] == 1 and bins["5-8"]["followed"] == 0 and math.isnan(bins["5-8"]["solved_within_k"])
  assert bins["5-8"]["nonzero_frac"] == 0.0
  assert bins["2"]["events"] == 0
  # No reuse: a at step 0 (next visit step 2: 0 of 8) and b at step 5 (never drawn again: censored).
  ref = res["no_reuse"]
  assert (ref["events"], ref["followed"], ref["solved_within_k"], ref["next_pass_rate"]) == (2, 1, 0.0, 0.0)
  # With k = 2, a at step 0 also sees step 5: solved, 2 correct of 12.
  ref2 = analyze.reuse_age(RUN, k=2)["no_reuse"]
  assert ref2["solved_within_k"] == 1.0 and ref2["next_pass_rate"] == pytest.approx(2 / 12)
  with pytest.raises(ValueError, match="--k"):
    analyze.reuse_age(RUN, k=0)


# A matched-control run: c is in the control; at step 2 its buffered answer (step 1) is withheld, and
# at step 4 it is solved on its own. a is treated as in RUN.
CONTROL_RUN = [
    {"step": 0, "prompts": [_p("c", [4, 4], [0, 0])], "reuse": [], "withheld": []},
    {"step": 2, "prompts": [_p("c", [4, 4], [0, 0]), _p("a", [4, 4], [0, 0])],
     "reuse": [{"uid": "a", "sampled_step": 1, "age": 1, "spread": 0.3, "nonzero": True}],
     "withheld": [{"uid": "c", "sampled_step": 1, "age": 1}]},
    {"step": 4, "prompts": [_p("c", [4, 0], [1, 0]), _p("a", [4, 4], [0, 0])], "reuse": [], "withheld": []},
]


def test_the_matched_control_is_followed_like_the_reused_prompts_and_kept_out_of_the_reference():
  res = analyze.reuse_age(CONTROL_RUN, k=1)
  w = res["withheld"]
  assert (w["events"], w["followed"], w["solved_within_k"], w["next_pass_rate"]) == (1, 1, 1.0, 0.25)
  assert {r["age"]: r["events"] for r in res["withheld_bins"]}["1"] == 1
  # The reference holds c at step 0 and a at step 4 (censored), not the withheld visit of c.
  assert (res["no_reuse"]["events"], res["no_reuse"]["followed"]) == (2, 1)
  m = res["matched"]
  assert (m["reused_solved"], m["withheld_solved"], m["difference"]) == (0.0, 1.0, -1.0)
  assert res["matched_first"]["difference"] == -1.0  # one eligible visit per prompt here
  # A record written before the control existed has no "withheld": nothing to compare.
  assert math.isnan(analyze.reuse_age(RUN, k=1)["matched"]["difference"])


def test_matched_difference_against_hand_numbers():
  ev = lambda solved: {"solved": solved}  # noqa: E731
  reused = [ev(True)] * 6 + [ev(False)] * 4 + [ev(None)] * 3  # 0.6 of 10 followed
  withheld = [ev(True)] * 2 + [ev(False)] * 6  # 0.25 of 8
  m = analyze.matched_difference(reused, withheld)
  assert (m["reused_followed"], m["withheld_followed"]) == (10, 8)
  assert m["difference"] == pytest.approx(0.35)
  assert m["stderr"] == pytest.approx(math.sqrt(0.6 * 0.4 / 10 + 0.25 * 0.75 / 8))


def test_first_per_prompt_keeps_each_prompts_earliest_event_per_run():
  events = [{"uid": "a", "step": 5, "run": 0}, {"uid": "a", "step": 2, "run": 0}, {"uid": "b", "step": 3, "run": 0},
            {"uid": "a", "step": 9, "run": 1}]
  assert sorted((e["run"], e["uid"], e["step"]) for e in analyze.first_per_prompt(events)) == [
      (0, "a", 2), (0, "b", 3), (1, "a", 9)]


def test_pooled_runs_follow_each_prompt_within_its_own_run():
  # In RUN, a's reuse at step 2 is followed by a solved visit at step 5. A second run in which a is drawn
  # only at step 3, all wrong, must not count as a's follow-up in the first run.
  other = [{"step": 3, "prompts": [_p("a", [4, 4], [0, 0])], "reuse": []}]
  pooled = analyze.reuse_age_pooled([RUN, other], k=1)
  assert pooled["runs"] == 2
  assert {r["age"]: r for r in pooled["bins"]}["1"]["solved_within_k"] == 1.0
  assert pooled["no_reuse"]["events"] == analyze.reuse_age(RUN, k=1)["no_reuse"]["events"] + 1


def _draw(step, entries, rates):
  return {"step": step, "prompts": entries, "reuse": [], "full_draw": {"samples": 8, "pass_rates": rates}}


def test_stage1_against_full_draw_per_third_of_the_run():
  recs = [
      _draw(0, [_p("x", [4, 4], [1, 0]), _p("y", [4, 0], [2, 0]), _p("z", [4, 0], [4, 0])],
            {"x": 0.1, "y": 0.6, "z": 0.9}),
      {"step": 1, "prompts": [], "reuse": []},
      # w was first sampled in stage 1 (drawn late in the step): its stage-1 success is 1 of 4.
      _draw(4, [_p("x", [4, 4], [0, 0]), _p("y", [4, 0], [2, 0]), _p("z", [4, 0], [4, 0]), _p("w", [0, 4], [0, 1])],
            {"x": 0.9, "y": 0.5, "z": 0.1, "w": 0.2}),
      {"step": 8, "prompts": [], "reuse": []},
  ]
  res = analyze.stage1_vs_full(recs)
  early, middle, late, whole = res["phases"]
  assert (early["steps"], middle["steps"], late["steps"], whole["steps"]) == ([0, 2], [3, 5], [6, 8], [0, 8])
  assert early["pairs"] == 3 and early["spearman"] == pytest.approx(1.0)
  assert early["stage1_mean"] == pytest.approx((0.25 + 0.5 + 1.0) / 3)
  # Middle: stage 1 (0, .5, 1, .25) against (.9, .5, .1, .2): ranks (1, 3, 4, 2) and (4, 3, 1, 2):
  # centred (-1.5, .5, 1.5, -.5) and (1.5, .5, -1.5, -.5): products sum to -4, squares to 5 and 5.
  assert middle["pairs"] == 4 and middle["spearman"] == pytest.approx(-0.8)
  assert late["pairs"] == 0 and math.isnan(late["spearman"])
  assert whole["pairs"] == 7
  assert res["full_draw_samples"] == [8] and res["full_draw_steps"] == [0, 4]


def test_sweep_groups_runs_by_buffer_setting_with_sample_std():
  runs = [
      {"workdir": "w0", "strategy": "ar3po", "seed": 0, "per_prompt": 2, "total": 100, "final_accuracy": 0.5,
       "frac_all_wrong": 0.2, "responses_per_prompt": 5.0},
      {"workdir": "w1", "strategy": "ar3po", "seed": 1, "per_prompt": 2, "total": 100, "final_accuracy": 0.7,
       "frac_all_wrong": 0.4, "responses_per_prompt": 6.0},
      {"workdir": "w2", "strategy": "ar3po", "seed": 0, "per_prompt": 0, "total": 0, "final_accuracy": 0.4,
       "frac_all_wrong": 0.5, "responses_per_prompt": 6.5},
  ]
  rows = analyze.sweep_table(runs)["rows"]
  assert [(r["per_prompt"], r["total"], r["runs"]) for r in rows] == [(0, 0, 1), (2, 100, 2)]
  assert rows[0]["final_accuracy_std"] == 0.0
  assert rows[1]["final_accuracy_mean"] == pytest.approx(0.6)
  assert rows[1]["final_accuracy_std"] == pytest.approx(math.sqrt(0.02))  # ddof 1: ((.1)^2 * 2) / 1
  assert rows[1]["responses_per_prompt_mean"] == pytest.approx(5.5) and rows[1]["seeds"] == [0, 1]


def test_sweep_keeps_the_reuse_pick_apart():
  # With the newest pick any per_prompt >= 1 reuses the same response, so a random-pick run of the same
  # size is another setting, not another seed of it.
  base = {"strategy": "ar3po", "per_prompt": 2, "total": 100, "frac_all_wrong": 0.2, "responses_per_prompt": 5.0}
  runs = [{**base, "workdir": "n", "seed": 0, "pick": "newest", "final_accuracy": 0.5},
          {**base, "workdir": "r", "seed": 0, "pick": "random", "final_accuracy": 0.7}]
  rows = analyze.sweep_table(runs)["rows"]
  assert [(r["pick"], r["runs"], r["final_accuracy_mean"]) for r in rows] == [("newest", 1, 0.5), ("random", 1, 0.7)]


def test_a_matched_control_run_is_its_own_setting_in_the_sweep(tmp_path):
  runs = [analyze.run_summary(_workdir(tmp_path / "plain")),
          analyze.run_summary(_workdir(tmp_path / "ctl", control=0.5, accuracies=(0.5, 0.8)))]
  rows = analyze.sweep_table(runs)["rows"]
  assert [(r["control"], r["runs"], r["final_accuracy_mean"]) for r in rows] == [(0.0, 1, 0.6), (0.5, 1, 0.8)]


def test_run_summary_reads_the_pick(tmp_path):
  assert analyze.run_summary(_workdir(tmp_path / "a", pick="random"))["pick"] == "random"
  assert analyze.run_summary(_workdir(tmp_path / "b"))["pick"] == "newest"  # the default when unset
  assert analyze.run_summary(_workdir(tmp_path / "c", reuse=False, pick="random"))["pick"] == ""  # no reuse


def _workdir(path, reuse=True, per_prompt=2, accuracies=(0.5, 0.6), seed=0, pick=None, control=None):
  path.mkdir()
  ar3po = {"reuse": reuse, **({"reuse_pick": pick} if pick else {}), **({"reuse_control": control} if control else {})}
  config = {"seed": seed, "rollout": {"strategy": "ar3po", "ar3po": ar3po,
                                      "buffer": {"per_prompt": per_prompt, "total": 1000}}}
  (path / "config.json").write_text(json.dumps(config))
  lines = [{"step": 0, "eval/accuracy": accuracies[0]},
           {"step": 1, "rollout/frac_all_wrong": 0.25, "rollout/responses_per_prompt": 5.0},
           {"step": 2, "rollout/frac_all_wrong": 0.75, "rollout/responses_per_prompt": 6.0,
            "eval/accuracy": accuracies[1]}]
  (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
  (path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RUN))
  return str(path)


def test_run_summary_reads_config_and_metrics(tmp_path):
  s = analyze.run_summary(_workdir(tmp_path / "a"))
  assert (s["per_prompt"], s["total"], s["final_accuracy"], s["frac_all_wrong"], s["responses_per_prompt"]) == (
      2, 1000, 0.6, 0.5, 5.5)
  assert analyze.run_summary(_workdir(tmp_path / "b", reuse=False))["per_prompt"] == 0  # no reuse: (0, 0)
  with pytest.raises(FileNotFoundError, match="config.json"):
    analyze.run_summary(str(tmp_path))


def test_the_command_writes_every_analysis_as_json_and_png(tmp_path, capsys):
  w = _workdir(tmp_path / "run")
  w2 = _workdir(tmp_path / "run2", per_prompt=4, accuracies=(0.5, 0.8))
  out = tmp_path / "out"
  analyze.main([f"--workdir={w}", f"--sweep={w},{w2}", f"--out={out}", "--k=1"])
  for name in ("reuse_age", "stage1_vs_full", "buffer_sweep"):
    assert (out / f"{name}.json").stat().st_size > 0 and (out / f"{name}.png").stat().st_size > 0
  sweep = json.loads((out / "buffer_sweep.json").read_text())
  assert [r["final_accuracy_mean"] for r in sweep["rows"]] == [0.6, 0.8]
  age = json.loads((out / "reuse_age.json").read_text())
  assert age["bins"][0]["solved_within_k"] == 1.0 and age["bins"][1]["solved_within_k"] is None  # NaN -> null
  assert "2 reuse events" in capsys.readouterr().out


def _history(accuracies, responses_per_step, tokens_per_response):
  """A strategies run's metrics: eval at steps 0, 1, 2, ..., cumulative responses and tokens."""
  out, cum = [{"step": 0, "eval/accuracy": accuracies[0], "rollout/cum_responses": 0, "rollout/cum_tokens": 0}], 0
  for step, acc in enumerate(accuracies[1:], start=1):
    cum += responses_per_step
    out.append({"step": step, "eval/accuracy": acc, "rollout/cum_responses": cum,
                "rollout/cum_tokens": cum * tokens_per_response, "rollout/responses": responses_per_step,
                "rollout/tokens": responses_per_step * tokens_per_response, "rollout/prompts_drawn": 4,
                "rollout/prompts": 4})
  return out


def test_the_strategy_report_interpolates_step_responses_and_tokens_to_the_matched_accuracy():
  from benchmarks import strategy_report

  runs = {
      "slow": [{"seed": 0, "history": _history([0.2, 0.3, 0.4], 10, 5), "meta": {}}],
      "fast": [{"seed": 0, "history": _history([0.2, 0.6, 0.7], 20, 2), "meta": {}}],
  }
  out = strategy_report.aggregate(runs, ["slow", "fast"])
  assert out["matched_accuracy"] == 0.4  # the lowest final accuracy
  slow, fast = out["variants"]["slow"], out["variants"]["fast"]
  assert (slow["step_to_matched_accuracy"], slow["responses_to_matched_accuracy"],
          slow["tokens_to_matched_accuracy"]) == pytest.approx((2.0, 20.0, 100.0))
  # fast passes 0.4 half way through step 1: (0.4 - 0.2) / (0.6 - 0.2) of 20 responses, 40 tokens.
  assert (fast["step_to_matched_accuracy"], fast["responses_to_matched_accuracy"],
          fast["tokens_to_matched_accuracy"]) == pytest.approx((0.5, 10.0, 20.0))
  assert strategy_report._cost(fast) == "0.5, 10, 20"


def test_the_strategy_report_pairs_each_run_with_grpos_of_the_same_seed():
  from benchmarks import strategy_report

  def run(seed, accuracies, responses):
    history = _history(accuracies, responses, 1)
    for r in history[1:]:
      r["train/rows"] = responses // 2
    return {"seed": seed, "history": history, "meta": {}}

  # The seeds start 0.3 apart; the variant ends 0.02 and 0.04 above GRPO on each.
  runs = {
      "grpo": [run(0, [0.5, 0.6], 8), run(1, [0.2, 0.3], 8)],
      "x": [run(0, [0.5, 0.62], 4), run(1, [0.2, 0.34], 4)],
      "lone": [run(2, [0.1, 0.2], 8)],  # no GRPO run of its seed: nothing to pair
  }
  out = strategy_report.aggregate(runs, ["grpo", "x", "lone"])
  x = out["variants"]["x"]
  assert x["accuracy_final"][1] == pytest.approx(np.std([0.62, 0.34], ddof=1))  # the unpaired spread: 0.2
  assert x["final_minus_grpo"] == pytest.approx((0.03, np.std([0.02, 0.04], ddof=1)))
  assert x["trained_rows_over_grpo"] == pytest.approx((0.5, 0.0))
  assert x["responses_over_grpo"] == pytest.approx((0.5, 0.0))
  assert out["variants"]["grpo"]["final_minus_grpo"] == pytest.approx((0.0, 0.0))
  assert np.isnan(out["variants"]["lone"]["final_minus_grpo"][0])
  row = next(line for line in strategy_report.markdown(out).splitlines() if line.startswith("| x |"))
  assert row.endswith("| +0.030 ± 0.014 | 0.50 ± 0.00 |")


def test_the_curve_table_averages_seeds_at_the_steps_all_of_them_share():
  from benchmarks import strategy_report

  runs = {
      "a": [{"seed": 0, "history": _history([0.2, 0.4, 0.5], 10, 1), "meta": {}},
            {"seed": 1, "history": _history([0.4, 0.6], 30, 1), "meta": {}}],  # stopped after step 1
      "b": [{"seed": 0, "history": _history([0.3, 0.3, 0.3], 8, 1), "meta": {}}],
  }
  lines = strategy_report.curve_table(runs, ["a", "b"]).splitlines()
  assert lines[0] == "| variant | seeds | step 0 | step 1 |"
  assert lines[2] == "| a | 2 | 0.300 | 0.500 (20) |"  # (0.4 + 0.6) / 2 after (10 + 30) / 2 responses
  assert lines[3] == "| b | 1 | 0.300 | 0.300 (8) |"


def test_the_hard_task_mix_is_a_second_config_argument():
  from configs import tiny

  plain, hard = tiny.get_config("grpo"), tiny.get_config("grpo,hard")
  assert tuple(hard.task.level_weights) == tiny.PRESETS["hard"]["task.level_weights"] != tuple(plain.task.level_weights)
  assert hard.workdir == "workdir/tiny_grpo_hard" and plain.workdir == ""
  # Levels 4 and 5 carry more of the weight than in the default mix.
  share = lambda w: sum(w[3:]) / sum(w)  # noqa: E731
  assert share(hard.task.level_weights) > share(plain.task.level_weights)
  budget = tiny.get_config("aero_budget,hard")
  assert budget.rollout.aero.n_explore == 5 and budget.task.level_weights == hard.task.level_weights
  with pytest.raises(ValueError, match="unknown preset 'harder'"):
    tiny.get_config("grpo,harder")
  # Presets combine, in order; `slow` changes training only and keeps the task.
  slow, both = tiny.get_config("grpo,slow"), tiny.get_config("grpo,hard,slow")
  assert slow.rl.lr == tiny.PRESETS["slow"]["rl.lr"] < plain.rl.lr and slow.task == plain.task
  assert both.rl.lr == slow.rl.lr and both.task == hard.task and both.workdir == "workdir/tiny_grpo_hard_slow"


def test_a_run_shorter_than_three_steps_has_empty_phases():
  recs = [{"step": 0, "prompts": [], "reuse": []}, {"step": 1, "prompts": [], "reuse": []}]
  phases = analyze.stage1_vs_full(recs)["phases"]
  assert [p["steps"] for p in phases] == [[0, 0], [1, 1], None, [0, 1]]
