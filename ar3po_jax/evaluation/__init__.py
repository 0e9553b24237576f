"""Evaluation: one sample-and-verify loop (`loop`), its metrics and tables (`metrics`), and the
benchmark evaluation of a Hugging Face checkpoint behind `python -m ar3po_jax.eval` (`benchmarks`), the
progress bar of long sampling loops (`progress.Tracked`), and the in-training per-benchmark metrics
(`loop.benchmark_metrics`)."""

from ar3po_jax.evaluation.loop import benchmark_metrics, greedy, greedy_accuracy, pass_rates, sample_and_verify
from ar3po_jax.evaluation.metrics import format_histogram, format_table, pass_at_k, pass_rate_summary, summarize

__all__ = [
    "benchmark_metrics", "format_histogram", "format_table", "greedy", "greedy_accuracy", "pass_at_k",
    "pass_rate_summary", "pass_rates", "sample_and_verify", "summarize",
]
