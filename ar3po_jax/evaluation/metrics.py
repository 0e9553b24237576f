"""avg@k and pass@k from per-sample rewards, pass-rate histograms, and the printed tables.

pass@k is the unbiased estimator of Chen et al. (2021): with n samples of which c are correct,
1 - C(n - c, k) / C(n, k), the chance that k of the n drawn without replacement hold a correct one;
with k = n it is "any sample correct". avg@n is the mean reward over all samples (= pass@1).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
  if not 0 <= c <= n or not 1 <= k <= n:
    raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
  if n - c < k:
    return 1.0
  # The product form avoids the huge binomials of large n.
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def summarize(rewards_PxN: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
  """avg@n and pass@k (each k <= n) over problems, from binary rewards [problems, samples]."""
  rewards_PxN = np.asarray(rewards_PxN, np.float64)
  n = rewards_PxN.shape[1]
  correct_P = (rewards_PxN > 0.5).sum(axis=1)
  out = {f"avg@{n}": float(rewards_PxN.mean())}
  for k in sorted(set(k for k in ks if 1 <= k <= n) | {n}):
    out[f"pass@{k}"] = float(np.mean([pass_at_k(n, int(c), k) for c in correct_P]))
  return out


def format_table(benchmarks: dict[str, dict]) -> str:
  """One row per benchmark and their unweighted mean, metrics as percentages."""
  metric_names: list[str] = []
  for result in benchmarks.values():
    metric_names += [m for m in result["metrics"] if m not in metric_names]
  header = ["benchmark", "problems"] + metric_names
  rows = []
  for name, result in benchmarks.items():
    rows.append([name, str(result["num_problems"])] + [
        f"{100 * result['metrics'][m]:.1f}" if m in result["metrics"] else "-" for m in metric_names
    ])
  if len(benchmarks) > 1:
    means = []
    for m in metric_names:
      values = [r["metrics"][m] for r in benchmarks.values() if m in r["metrics"]]
      means.append(f"{100 * np.mean(values):.1f}" if len(values) == len(benchmarks) else "-")
    rows.append(["mean", str(sum(r["num_problems"] for r in benchmarks.values()))] + means)
  widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
  line = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
  return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def pass_rate_summary(rates: np.ndarray, samples: int) -> dict[str, float | list[int]]:
  """Fractions of prompts never, sometimes and always solved, and the histogram over k/samples."""
  counts = np.rint(rates * samples).astype(int)
  return {
      "frac_pass_0": float(np.mean(counts == 0)),
      "frac_pass_mixed": float(np.mean((counts > 0) & (counts < samples))),
      "frac_pass_1": float(np.mean(counts == samples)),
      "histogram": np.bincount(counts, minlength=samples + 1).tolist(),
  }


def format_histogram(summary: dict, samples: int, width: int = 40) -> str:
  hist = summary["histogram"]
  total = max(sum(hist), 1)
  lines = [f"pass rate over {samples} samples (held-out prompts: {total})"]
  for k, n in enumerate(hist):
    lines.append(f"  {k}/{samples}  {n:5d}  {'#' * round(width * n / total)}")
  lines.append(
      f"  never solved {summary['frac_pass_0']:.0%}   mixed {summary['frac_pass_mixed']:.0%}   "
      f"always solved {summary['frac_pass_1']:.0%}"
  )
  return "\n".join(lines)
