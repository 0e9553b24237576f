"""benchmarks/smollm2_rl.py: its run flags name fields configs/hf.py has, and its summary reads a run's
metrics the way the loop writes them (eval records beside step records)."""

import json

import pytest

from benchmarks import smollm2_rl
from configs import hf


def _write(tmp_path, records):
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  return str(tmp_path)


def _step(step, responses_per_prompt, step_s, clip, mismatch, rows):
  return {"step": step, "rollout/responses_per_prompt": responses_per_prompt, "rollout/cum_responses": 8 * step,
          "rollout/reward_mean": 0.5, "train/rows": rows, "train/clip_frac_last": clip,
          "train/logprob_mismatch_max": mismatch, "time/step_s": step_s, "time/sample_s": step_s / 4,
          "time/update_s": step_s / 2, "train/compiled_variants": 1}


def test_every_run_flag_names_a_field_of_the_hf_config():
  config = hf.get_config("ar3po,arithmetic_chat")
  flags = smollm2_rl.run_flags("ar3po", "arithmetic_chat", "/ckpt", "/w", 3, 4, 2, ["rl.lr=1e-5"])
  assert flags[0] == "--config=configs/hf.py:ar3po,arithmetic_chat"
  for flag in flags[1:]:
    if not flag.startswith("--config."):
      continue
    node = config
    *parents, leaf = flag[len("--config."):].split("=")[0].split(".")
    for name in parents:
      node = node[name]
    assert leaf in node, flag
  assert "--config.eval.every=3" in flags  # evaluated before the first step and after the last


def test_summary_takes_accuracy_before_and_after_and_sums_the_wall_clock(tmp_path):
  workdir = _write(tmp_path, [
      {"step": 0, "eval/accuracy": 0.5, "eval/arithmetic/avg@4": 0.25},
      _step(1, 8.0, 100.0, 0.0, 1e-5, 20),
      {**_step(2, 6.0, 60.0, 0.1, 3e-5, 10), "eval/accuracy": 0.75, "eval/arithmetic/avg@4": 0.5},
  ])
  row = smollm2_rl.summarize(workdir)
  assert row["steps"] == 2 and row["eval_steps"] == [0, 2]
  assert row["accuracy"] == [0.5, 0.75] and row["eval/arithmetic/avg@4"] == [0.25, 0.5]
  assert row["responses_per_prompt"] == pytest.approx(7.0)
  assert row["trained_rows_per_step"] == pytest.approx(15.0)
  assert row["rl_s"] == pytest.approx(160.0) and row["update_s"] == pytest.approx(80.0)
  assert row["first_update_s"] == pytest.approx(50.0)
  # The last step evaluated: without time/eval_s its evaluation is the step's time beyond sample and update.
  assert row["eval_s"] == pytest.approx(15.0) and row["train_s"] == pytest.approx(145.0)
  assert row["logprob_mismatch_max"] == pytest.approx(3e-5)
  text = smollm2_rl.table({"ar3po": row})
  assert ("| ar3po | 2 | 0.500 → 0.750 | 0.250 → 0.500 | 7.00 | 15.0 | 0.000, 0.100 | 3.0e-05 | 145 (40, 80) | 15 |"
          in text)
  evaluated = {**_step(1, 8.0, 100.0, 0.0, 0.0, 8), "eval/accuracy": 0.6, "time/eval_s": 7.0}
  row = smollm2_rl.summarize(_write(tmp_path, [{"step": 0, "eval/accuracy": 0.5}, evaluated]))
  assert row["eval_s"] == pytest.approx(7.0)


def test_a_run_without_an_evaluation_is_refused_by_name(tmp_path):
  workdir = _write(tmp_path, [_step(1, 8.0, 100.0, 0.0, 1e-5, 20)])
  with pytest.raises(ValueError, match="0 evaluations and 1 training steps"):
    smollm2_rl.summarize(workdir)
  # A run killed mid-write: its last line is cut short and is left out.
  lines = [json.dumps(r) for r in ({"step": 0, "eval/accuracy": 0.5}, _step(1, 8.0, 100.0, 0.0, 0.0, 8))]
  lines.append('{"step": 2, "ro')
  (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
  assert smollm2_rl.summarize(str(tmp_path))["steps"] == 1
  with pytest.raises(FileNotFoundError, match="no metrics"):
    smollm2_rl.summarize(str(tmp_path / "missing"))
