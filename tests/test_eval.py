"""The eval CLI end to end on a tiny random checkpoint, and pass@k against hand computations."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ar3po_jax.evaluation.metrics import format_table, pass_at_k, summarize

pytest.importorskip("tokenizers")


def test_pass_at_k_by_hand():
  assert pass_at_k(8, 0, 1) == 0.0 and pass_at_k(8, 8, 8) == 1.0
  assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
  assert pass_at_k(4, 1, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(4, 2))  # 0.5
  assert pass_at_k(5, 2, 3) == pytest.approx(0.9)  # the one all-wrong draw of 3 among C(5, 3) = 10
  assert pass_at_k(5, 3, 3) == 1.0  # only 2 wrong: every draw of 3 holds a correct one
  with pytest.raises(ValueError):
    pass_at_k(4, 5, 1)


def test_summarize():
  rewards = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
  s = summarize(rewards, (1, 2, 4, 16))
  assert s["avg@4"] == pytest.approx(3 / 12) and s["pass@1"] == pytest.approx(3 / 12)
  assert s["pass@4"] == pytest.approx(2 / 3) and "pass@16" not in s
  assert s["pass@2"] == pytest.approx((0.5 + (1 - 1 / 6) + 0) / 3)
  table = format_table({"a": {"num_problems": 3, "metrics": s}, "b": {"num_problems": 1, "metrics": s}})
  assert table.splitlines()[-1].startswith("mean") and "25.0" in table


def _hand_pass_at(rewards, k):
  n = len(rewards[0])
  values = []
  for r in rewards:
    c = int(sum(r))
    values.append(1 - math.comb(n - c, k) / math.comb(n, k))
  return sum(values) / len(values)


def test_eval_cli_end_to_end(tmp_path):
  import tiny_hf

  ckpt = tmp_path / "ckpt"
  tiny_hf.write_checkpoint(str(ckpt), seed=3)
  bench = tmp_path / "digits.jsonl"
  bench.write_text(
      "".join(json.dumps({"problem": f"What is {i} + 0?", "answer": str(i), "id": i}) + "\n" for i in range(6)))
  out = tmp_path / "report.json"
  cmd = [
      sys.executable, "-m", "ar3po_jax.eval", "--config=configs/eval.py:digits",
      f"--checkpoint={ckpt}", f"--output={out}",
      "--config.benchmarks.digits.loader=aime24", f"--config.benchmarks.digits.path={bench}",
      "--config.dtype=float32", "--config.tokenizer.instruction=none", "--config.samples=4",
      "--config.pass_at=(1,2,4)", "--config.max_new_tokens=6", "--config.temperature=1.0", "--config.top_p=1.0",
      "--config.verify.fallback=last_number", "--config.batch_rows=16",
  ]
  result = subprocess.run(
      cmd, capture_output=True, text=True, timeout=180,
      cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "pass@4" in result.stdout and "digits" in result.stdout
  report = json.loads(out.read_text())
  bench_report = report["benchmarks"]["digits"]
  rewards = [p["rewards"] for p in bench_report["per_problem"]]
  assert bench_report["num_problems"] == 6 and all(len(r) == 4 for r in rewards)
  flat = [x for r in rewards for x in r]
  assert 0 < sum(flat) < len(flat), "the random policy should be right on some samples and wrong on others"
  metrics = bench_report["metrics"]
  assert metrics["avg@4"] == pytest.approx(sum(flat) / len(flat))
  for k in (1, 2, 4):
    assert metrics[f"pass@{k}"] == pytest.approx(_hand_pass_at(rewards, k))
  assert all(1 <= n <= 6 for p in bench_report["per_problem"] for n in p["lengths"])
