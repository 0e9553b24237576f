"""Aggregates the strategy runs of `benchmarks.strategies`: per variant, mean and spread over seeds of
accuracy and rollout cost, the simulator's prediction beside the measured cost, plots, and the
headline ratios of docs/ALGORITHMS.md (AR3PO against GRPO and DAPO).

"At matched accuracy" compares the cumulative responses and tokens each variant needed for its
seed-mean held-out accuracy to first reach a common level: the lowest final seed-mean accuracy among
the variants compared, so that every one of them reaches it. Between two evaluations the step,
responses and tokens are interpolated linearly; a variant already at the level before RL has no cost
to compare ("-"). Per variant: `step_to_matched_accuracy`, `responses_to_matched_accuracy`,
`tokens_to_matched_accuracy` in summary.json, the last two as table columns.

"Final − GRPO, same seed" pairs each run with GRPO's run of the same seed, which shares its warm start,
data order and held-out prompts, and gives the mean and standard deviation of the per-seed
differences (`final_minus_grpo`; likewise `trained_rows_over_grpo` and `responses_over_grpo` as
ratios). The seeds' warm starts differ by several points, so the unpaired spread of final accuracy
hides differences that the paired one shows.
"""

from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

_RUN = re.compile(r"(?P<variant>.+)_seed(?P<seed>\d+)\.jsonl$")
AR3PO_REFERENCE = "ar3po_opt1"


def load_runs(results: str) -> dict[str, list[dict]]:
  """variant -> [{"seed", "history", "meta"}] for every finished run in `results`."""
  runs: dict[str, list[dict]] = {}
  for path in sorted(glob.glob(os.path.join(results, "*_seed*.jsonl"))):
    m = _RUN.search(os.path.basename(path))
    if not m:
      continue
    with open(path) as f:
      history = [json.loads(line) for line in f if line.strip()]
    meta_path = path[: -len(".jsonl")] + ".json"
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    runs.setdefault(m["variant"], []).append({"seed": int(m["seed"]), "history": history, "meta": meta})
  return runs


def _steps(history):
  return [r for r in history if "rollout/responses" in r]


def _weighted(steps, fraction: str, weight: str) -> float:
  w = np.array([r.get(weight) or 0.0 for r in steps])
  v = np.array([r.get(fraction) if r.get(fraction) is not None else 0.0 for r in steps])
  return float((v * w).sum() / w.sum()) if w.sum() else float("nan")


def run_summary(history: list[dict]) -> dict:
  steps = _steps(history)
  evals = [r for r in history if r.get("eval/accuracy") is not None]
  last = steps[-1]
  drawn = sum(r["rollout/prompts_drawn"] for r in steps)
  kept = sum(r["rollout/prompts"] for r in steps)
  responses = sum(r["rollout/responses"] for r in steps)
  updates = [r for r in steps if r.get("train/row_bucket")]
  trained_rows = sum(r.get("train/rows", 0) for r in steps)
  return {
      "steps": len(steps),
      "accuracy_start": evals[0]["eval/accuracy"],
      "accuracy_final": evals[-1]["eval/accuracy"],
      "responses": responses,
      "tokens": sum(r["rollout/tokens"] for r in steps),
      "wall_clock_s": last.get("time/elapsed_s", float("nan")),
      "sample_s": sum(r.get("time/sample_s", 0.0) for r in steps),
      "update_s": sum(r.get("time/update_s", 0.0) for r in steps),
      "responses_per_prompt": responses / drawn if drawn else float("nan"),
      "responses_per_kept_prompt": responses / kept if kept else float("nan"),
      # The update's cost: responses that reached the loss (AERO's selective rejection and DAPO's filter
      # drop sampled ones; AR3PO adds reused ones), per prompt drawn.
      "trained_rows": trained_rows,
      "trained_rows_per_prompt": trained_rows / drawn if drawn else float("nan"),
      "responses_per_prompt_first10": _ratio_window(steps[:10]),
      "responses_per_prompt_last10": _ratio_window(steps[-10:]),
      "frac_zero_adv_before_reuse": _weighted(steps, "rollout/frac_zero_adv_groups_before_reuse", "rollout/prompts"),
      "frac_zero_adv_after_reuse": _weighted(steps, "rollout/frac_zero_adv_groups", "rollout/prompts"),
      "frac_all_wrong_before_reuse": _weighted(steps, "rollout/frac_all_wrong_before_reuse", "rollout/prompts"),
      "frac_all_wrong_after_reuse": _weighted(steps, "rollout/frac_all_wrong", "rollout/prompts"),
      "padding_efficiency": (
          float(np.mean([r["train/padding_efficiency"] for r in updates])) if updates else float("nan")
      ),
      "row_fill": (
          float(np.mean([r["train/rows"] / r["train/row_bucket"] for r in updates])) if updates else float("nan")
      ),
      "compiled_variants": max((r.get("train/compiled_variants", 0) for r in steps), default=0),
  }


def _ratio_window(steps) -> float:
  drawn = sum(r["rollout/prompts_drawn"] for r in steps)
  return sum(r["rollout/responses"] for r in steps) / drawn if drawn else float("nan")


def mean_curve(runs: list[dict], x: str) -> tuple[np.ndarray, np.ndarray]:
  """Seed-mean (x, accuracy) at the evaluation steps every seed has."""
  per_seed = [
      {r["step"]: (r.get(x, 0.0), r["eval/accuracy"]) for r in run["history"] if r.get("eval/accuracy") is not None}
      for run in runs
  ]
  common = sorted(set.intersection(*(set(p) for p in per_seed)))
  xs = np.array([np.mean([p[s][0] for p in per_seed]) for s in common])
  ys = np.array([np.mean([p[s][1] for p in per_seed]) for s in common])
  return xs, ys


def cost_to_reach(xs: np.ndarray, ys: np.ndarray, level: float) -> float:
  """x at which the curve first reaches `level`, linearly interpolated; nan if never, and nan if
  already at the start (no cost to compare)."""
  for i, y in enumerate(ys):
    if y >= level:
      if i == 0:
        return float("nan")
      x0, x1, y0 = xs[i - 1], xs[i], ys[i - 1]
      return float(x0 + (x1 - x0) * (level - y0) / (y - y0))
  return float("nan")


def _mean_std(values) -> tuple[float, float]:
  arr = np.array([v for v in values if v is not None and np.isfinite(v)], float)
  if not len(arr):
    return float("nan"), float("nan")
  return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def aggregate(runs: dict[str, list[dict]], order: list[str]) -> dict:
  variants = [v for v in order if v in runs] + sorted(set(runs) - set(order))
  out: dict = {"variants": {}}
  for v in variants:
    summaries = [run_summary(r["history"]) for r in runs[v]]
    row = {"seeds": sorted(r["seed"] for r in runs[v])}
    for key in summaries[0]:
      row[key] = _mean_std(s[key] for s in summaries)
    sims = [r["meta"].get("simulated", {}) for r in runs[v]]
    for key in (
        "responses_per_prompt", "responses_per_kept_prompt", "frac_zero_adv_groups_before_reuse",
        "frac_all_wrong_before_reuse",
    ):
      row[f"simulated_{key}"] = _mean_std(s.get(key) for s in sims)
    out["variants"][v] = row
  # Paired with GRPO at the same seed (same warm start, data order and evaluation prompts): most of the
  # seeds' spread is the warm starts', and it cancels in the difference.
  if "grpo" in runs:
    grpo = {r["seed"]: run_summary(r["history"]) for r in runs["grpo"]}
    for v in variants:
      for key, name in (("accuracy_final", "final"), ("trained_rows", "trained_rows"), ("responses", "responses")):
        pairs = [(run_summary(r["history"])[key], grpo[r["seed"]][key]) for r in runs[v] if r["seed"] in grpo]
        if name == "final":
          out["variants"][v]["final_minus_grpo"] = _mean_std(a - b for a, b in pairs)
        else:
          out["variants"][v][f"{name}_over_grpo"] = _mean_std(_div(a, b) for a, b in pairs)
  finals = {v: out["variants"][v]["accuracy_final"][0] for v in variants}
  if finals:
    level = min(finals.values())
    out["matched_accuracy"] = level
    for v in variants:
      for x, name in (("step", "step"), ("rollout/cum_responses", "responses"), ("rollout/cum_tokens", "tokens")):
        xs, ys = mean_curve(runs[v], x)
        out["variants"][v][f"{name}_to_matched_accuracy"] = cost_to_reach(xs, ys, level)
  out["headline"] = _headline(out)
  return out


def _div(a: float, b: float) -> float:
  return a / b if b and np.isfinite(b) else float("nan")


def _headline(out: dict) -> dict:
  rows = out["variants"]
  if AR3PO_REFERENCE not in rows:
    return {}
  a = rows[AR3PO_REFERENCE]
  h = {}
  if "grpo" in rows:
    h["ar3po_over_grpo_responses_per_prompt"] = _div(
        a["responses_per_prompt"][0], rows["grpo"]["responses_per_prompt"][0]
    )
    h["ar3po_minus_grpo_final_accuracy"] = a["accuracy_final"][0] - rows["grpo"]["accuracy_final"][0]
  if "dapo" in rows:
    h["dapo_over_ar3po_responses_to_matched_accuracy"] = _div(
        rows["dapo"]["responses_to_matched_accuracy"], a["responses_to_matched_accuracy"]
    )
    h["dapo_over_ar3po_responses"] = _div(rows["dapo"]["responses"][0], a["responses"][0])
  return h


def _fmt(pair, spec: str = ".3f") -> str:
  mean, std = pair
  if not np.isfinite(mean):
    return "-"
  return f"{mean:{spec}} ± {std:{spec.lstrip('+')}}"


def _cost(row: dict) -> str:
  """Step, responses and tokens to the matched accuracy, '-' where the curve never reaches it."""
  values = [row.get(f"{k}_to_matched_accuracy", float("nan")) for k in ("step", "responses", "tokens")]
  if not all(np.isfinite(v) for v in values):
    return "-"
  return f"{values[0]:.1f}, {values[1]:,.0f}, {values[2]:,.0f}"


def markdown(out: dict) -> str:
  head = (
      "| variant | seeds | accuracy start → final | responses | tokens | RL wall-clock (s) | resp./prompt (simulated) |"
      " resp./kept prompt | trained rows/prompt | update s | resp./prompt first → last 10 steps |"
      " zero-adv before → after reuse |"
      " all-wrong before → after |"
      f" step, responses, tokens to acc. {out.get('matched_accuracy', float('nan')):.3f} |"
      " final − GRPO, same seed | trained rows / GRPO's |"
  )
  lines = [head, "|" + "---|" * 16]
  for v, r in out["variants"].items():
    lines.append(
        f"| {v} | {len(r['seeds'])} | {_fmt(r['accuracy_start'])} → {_fmt(r['accuracy_final'])} |"
        f" {_fmt(r['responses'], ',.0f')} |"
        f" {_fmt(r['tokens'], ',.0f')} | {_fmt(r['wall_clock_s'], '.0f')} |"
        f" {_fmt(r['responses_per_prompt'], '.2f')} ({r['simulated_responses_per_prompt'][0]:.2f}) |"
        f" {_fmt(r['responses_per_kept_prompt'], '.2f')} |"
        f" {_fmt(r['trained_rows_per_prompt'], '.2f')} | {_fmt(r['update_s'], '.0f')} |"
        f" {r['responses_per_prompt_first10'][0]:.2f} → {r['responses_per_prompt_last10'][0]:.2f} |"
        f" {r['frac_zero_adv_before_reuse'][0]:.3f} → {r['frac_zero_adv_after_reuse'][0]:.3f} |"
        f" {r['frac_all_wrong_before_reuse'][0]:.3f} → {r['frac_all_wrong_after_reuse'][0]:.3f} |"
        f" {_cost(r)} |"
        f" {_fmt(r.get('final_minus_grpo', (float('nan'), 0.0)), '+.3f')} |"
        f" {_fmt(r.get('trained_rows_over_grpo', (float('nan'), 0.0)), '.2f')} |"
    )
  if out.get("headline"):
    lines.append("")
    lines.extend(f"- {k}: {v:.3f}" for k, v in out["headline"].items())
  return "\n".join(lines)


def curve_table(runs: dict[str, list[dict]], variants: list[str]) -> str:
  """Seed-mean held-out accuracy at each evaluation step every variant's seeds share, and the seed-mean
  cumulative responses sampled by then, one row a variant."""
  curves = {v: {step: (acc, cost) for step, acc, cost in _curve_points(runs[v])} for v in variants}
  steps = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
  if not steps:
    return ""
  lines = ["| variant | seeds | " + " | ".join(f"step {s}" for s in steps) + " |", "|" + "---|" * (len(steps) + 2)]
  for v in variants:
    cells = [f"{curves[v][s][0]:.3f}" + (f" ({curves[v][s][1]:,.0f})" if s else "") for s in steps]
    lines.append(f"| {v} | {len(runs[v])} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _curve_points(runs: list[dict]) -> list[tuple[int, float, float]]:
  """(step, seed-mean accuracy, seed-mean cumulative responses) at the steps every seed evaluated."""
  per_seed = [
      {r["step"]: (r["eval/accuracy"], r.get("rollout/cum_responses", 0.0)) for r in run["history"]
       if r.get("eval/accuracy") is not None}
      for run in runs
  ]
  common = sorted(set.intersection(*(set(p) for p in per_seed)))
  return [(s, float(np.mean([p[s][0] for p in per_seed])), float(np.mean([p[s][1] for p in per_seed])))
          for s in common]


def plot(runs: dict[str, list[dict]], out: dict, results: str) -> list[str]:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  variants = list(out["variants"])
  paths = []
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
  for ax, (x, label) in zip(
      axes,
      (
          ("rollout/cum_responses", "cumulative sampled responses"),
          ("rollout/cum_tokens", "cumulative sampled tokens"),
          ("time/elapsed_s", "RL wall-clock (s)"),
      ),
  ):
    for v in variants:
      xs, ys = mean_curve(runs[v], x)
      ax.plot(xs, ys, marker=".", label=v)
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("held-out greedy accuracy (mean over seeds)")
  axes[-1].legend(fontsize=8)
  fig.tight_layout()
  paths.append(os.path.join(results, "accuracy_vs_cost.png"))
  fig.savefig(paths[-1], dpi=90)
  plt.close(fig)

  fig, ax = plt.subplots(figsize=(7, 4.2))
  for v in variants:
    per_seed = [np.array([r["rollout/responses_per_prompt"] for r in _steps(run["history"])]) for run in runs[v]]
    n = min(len(p) for p in per_seed)
    mean = np.mean([p[:n] for p in per_seed], axis=0)
    window = 5
    smooth = np.convolve(mean, np.ones(window) / window, mode="valid") if n >= window else mean
    ax.plot(np.arange(len(smooth)) + (n - len(smooth)), smooth, label=v)
  ax.set_xlabel("RL step")
  ax.set_ylabel(f"responses per drawn prompt ({5}-step mean)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  paths.append(os.path.join(results, "responses_per_prompt.png"))
  fig.savefig(paths[-1], dpi=90)
  plt.close(fig)
  return paths


def build(results: str, order: list[str]) -> str:
  """Writes summary.json, summary.md and the PNGs into `results`; returns the Markdown."""
  runs = load_runs(results)
  if not runs:
    return f"no finished runs in {results}"
  out = aggregate(runs, order)
  steps = sorted({r["meta"].get("steps") for rs in runs.values() for r in rs if r["meta"]})
  out["steps_per_run"] = steps
  with open(os.path.join(results, "summary.json"), "w") as f:
    json.dump(out, f, indent=1)
  text = markdown(out)
  curves = curve_table(runs, list(out["variants"]))
  if curves:
    text += ("\n\nSeed-mean held-out accuracy along the run (seed-mean cumulative responses sampled by then):\n\n"
             + curves)
  if len(steps) > 1:
    text += f"\n\nWARNING: runs of different step budgets {steps} are mixed in {results}"
  with open(os.path.join(results, "summary.md"), "w") as f:
    f.write(text + "\n")
  plot(runs, out, results)
  return text
