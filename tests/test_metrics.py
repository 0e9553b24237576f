"""metrics.py: the run counters' state protocol, the metric documentation, completions as text."""

import numpy as np

from ar3po_jax import metrics
from ar3po_jax.rollout.strategies import REGISTRY


def test_run_counters_round_trip():
  c = metrics.RunCounters(3, 40, {(8, 64), (4, 32)})
  d = metrics.RunCounters()
  d.load_state_dict(c.state_dict())
  assert d == c and c.state_dict()["compiled_shapes"] == [(4, 32), (8, 64)]


def test_documentation_covers_strategy_and_prefix_metrics():
  assert metrics.documentation("rollout/response_len_max")
  assert metrics.documentation("train/lr") and metrics.documentation("train/entropy")
  assert metrics.documentation("verify/timeouts")  # verify/*
  assert metrics.documentation("dapo/gen_batches", REGISTRY["dapo"].metrics_doc)
  assert metrics.documentation("dapo/gen_batches", REGISTRY["grpo"].metrics_doc) is None
  assert metrics.documentation("made/up") is None


def test_samples_markdown_escapes_tables_and_newlines():
  text = metrics.samples_markdown([{"prompt": "a|b", "completion": "x\ny", "answer": "3", "reward": np.float32(1.0)}])
  assert text.splitlines()[2] == "| a\\|b | x<br>y | 3 | 1 |"


def test_completions_go_to_tensorboard_as_text(tmp_path):
  writer = metrics.MetricsWriter(str(tmp_path), tensorboard=True)
  writer.write_text(5, "eval/samples", metrics.samples_markdown([{"prompt": "1+1=", "completion": "2", "answer": "2", "reward": 1.0}]))
  writer.close()
  events = list((tmp_path / "tb").iterdir())
  assert events and b"eval/samples" in events[0].read_bytes()
