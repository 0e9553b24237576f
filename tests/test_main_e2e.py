"""The main command end to end, on shapes small enough for CI."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = [
    "--config.warmstart.steps=30",
    "--config.warmstart.pass_rate_prompts=8",
    "--config.rl.steps=3",
    "--config.eval.every=2",
    "--config.task.num_train=400",
    "--config.task.num_eval=24",
    "--config.eval.num_prompts=24",
    "--config.eval.batch_size=24",
    "--config.rollout.batch_prompts=4",
    "--config.rollout.dapo.gen_batch_prompts=4",
    "--config.model.d_model=32",
    "--config.model.n_layers=1",
    "--config.model.head_dim=8",
    "--config.model.d_ff=64",
    "--config.log.progress=False",
]
REQUIRED = (
    "step", "rollout/responses", "rollout/tokens", "rollout/responses_per_prompt", "rollout/frac_zero_adv_groups",
    "rollout/reward_mean", "train/loss", "train/clip_frac", "time/sample_s", "time/update_s",
)


def _run(workdir, strategy):
  cmd = [sys.executable, "-m", "ar3po_jax.main", f"--config=configs/tiny.py:{strategy}", f"--workdir={workdir}", *SMALL]
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["grpo", "ar3po"])
def test_main_writes_metrics_events_plot_and_summary(tmp_path, strategy):
  out = _run(tmp_path, strategy)
  assert "pass rate over 8 samples" in out and "never solved" in out
  assert "summary" in out and "eval/accuracy (first -> last)" in out
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  steps = [r for r in records if "rollout/responses" in r]
  assert [r["step"] for r in steps] == [1, 2, 3]
  for record in steps:
    assert all(k in record for k in REQUIRED), sorted(set(REQUIRED) - set(record))
  evals = [r["step"] for r in records if r.get("eval/accuracy") is not None]
  assert evals == [0, 2, 3]
  assert all(r["time/eval_s"] > 0 for r in steps if r.get("eval/accuracy") is not None)  # beside the step's time
  assert os.listdir(tmp_path / "tb") and os.path.getsize(tmp_path / "accuracy_vs_responses.png") > 1000
  # The environment's JAX_COMPILATION_CACHE_DIR (the suite's shared cache, tests/conftest.py) wins over the
  # run's own cache folder.
  assert not (tmp_path / "cache" / "jax").exists() and os.listdir(os.environ["JAX_COMPILATION_CACHE_DIR"])
  if strategy == "grpo":
    assert all(r["rollout/responses"] == 4 * 8 for r in steps)
  # A second run reuses the cached tokenizer and warm start.
  again = _run(tmp_path, strategy)
  assert "warm start: reusing" in again
