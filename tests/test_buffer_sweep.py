"""benchmarks/buffer_sweep.py: which finished runs its analysis covers."""

from benchmarks import buffer_sweep


def test_the_analysis_covers_every_finished_buffer_run_not_only_this_calls(tmp_path):
  for name in ("ar3po_buf0_seed0", "ar3po_buf0_seed2", "ar3po_control_seed1", "grpo_seed0", "ar3po_buf2_seed0"):
    (tmp_path / f"{name}.jsonl").write_text("{}\n")
  (tmp_path / "ar3po_buf4_seed1.json").write_text("{}")  # settings without a history: not finished
  assert buffer_sweep.finished_runs(str(tmp_path)) == [
      ("ar3po_buf0", 0), ("ar3po_buf0", 2), ("ar3po_buf2", 0), ("ar3po_control", 1)]
