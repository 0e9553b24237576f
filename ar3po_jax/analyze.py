r"""The AR3PO paper's three open checks, computed from a finished run's own records (issue 15).

  python -m ar3po_jax.analyze --workdir=W [--out=DIR] [--k=3]          # analyses (a) and (b) of run W
  python -m ar3po_jax.analyze --sweep=W1,W2,... [--out=DIR]            # analysis (c) over several runs

Each analysis writes DIR/<name>.json and DIR/<name>.png (DIR: --out, else W/analysis, else
./analysis) and prints a short summary. Inputs: W/records.jsonl (`ar3po_jax.rollout.records`, written
by every run), W/metrics.jsonl and W/config.json (written by `ar3po_jax.main`; a benchmark driver
writes the same files into each run folder).

(a) reuse_age.json: reuse age against benefit. One event per reused response (records' `reuse`).
  k                 visits looked at after the reuse (--k)
  bins[]            one row per age bin (age = the reusing step - the step that sampled the response):
    age             the bin's label ("1", "3-4", "17+")
    events          reuse events in the bin
    followed        events whose prompt was drawn again later in the run (the others are censored)
    solved_within_k fraction of followed events whose prompt got at least one correct fresh response
                    in one of its next k visits: the policy then solved it on its own
    next_pass_rate  mean, over followed events, of the fresh pass rate over those next k visits
    nonzero_frac    fraction of events whose group had a non-zero advantage spread with the reused
                    response in it (the reuse gave the group a gradient)
    spread_mean     mean population std of those groups' training rewards
  no_reuse          the same follow-up numbers for the reference: visits whose fresh responses were all
                    wrong and that got no reused response (nothing buffered yet, or a strategy that
                    does not reuse) and none withheld; `age` is "none". Not a control: a prompt
                    with nothing buffered was never solved before, so it is harder than a reused one
  withheld          the same for the matched control (records' `withheld`, AR3PO's
                    rollout.ar3po.reuse_control > 0): all-wrong visits of control prompts that had a
                    response buffered and were not given it; `withheld_bins` splits them by age
  matched           reused against withheld: reused_followed, withheld_followed, reused_solved,
                    withheld_solved, difference (reused minus withheld solved_within_k) and stderr.
                    The arms are fixed by a hash of the uid, so the difference is reuse's effect on
                    later solving (NaN without a control)
  matched_first     the same over each prompt's first eligible visit only. Later visits are selected
                    after treatment (a prompt reuse helped is all wrong less often, so the treated
                    prompts still eligible are the harder ones), which biases `matched` against reuse;
                    first visits are not, at the price of fewer events
  runs, events      the runs pooled (--workdir may list several) and their reuse events
(b) stage1_vs_full.json: early stages against final difficulty, at steps with a full draw
  (`analysis.full_draw_every` > 0 in the run's config; none: `pairs` is 0 everywhere).
  phases[]          the run's steps in thirds ("early", "middle", "late") and "all":
    steps           [first, last] sampling step of the phase (null: the run is too short to have it)
    pairs           (prompt, full draw) pairs in the phase
    spearman        Spearman rank correlation (average ranks for ties) between the prompt's stage-1
                    success (fraction correct of the responses of the first stage in which it was
                    sampled) and its pass rate over the full draw at the same policy; NaN when fewer
                    than 2 pairs or either side is constant
    stage1_mean, full_mean  the two sides' means
(c) buffer_sweep.json: buffer size, over the --sweep runs, grouped by (rollout.buffer.per_prompt,
  rollout.buffer.total, rollout.ar3po.reuse_pick, rollout.ar3po.reuse_control); a run without reuse
  (rollout.ar3po.reuse false, or a strategy other than ar3po) counts as (0, 0, ""), "no reuse".
  rows[]            per group: per_prompt, total, pick, control, strategy, seeds (the runs' seeds), runs,
                    and for each of
                    final_accuracy (the last eval/accuracy), frac_all_wrong (the mean over steps of
                    rollout/frac_all_wrong) and responses_per_prompt (the mean of
                    rollout/responses_per_prompt): <name>_mean and <name>_std (sample std over
                    the group's runs; 0 for a single run)
  runs[]            the same numbers per workdir, with its path

Our choices: phases split the run's sampled steps into three equal step ranges; a prompt counts as
solved on a visit with at least one correct fresh response (reused ones excluded); ages are binned
1, 2, 3-4, 5-8, 9-16, 17+ (doubling, since the buffer keeps the newest responses and old ones are rare).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Iterable, Sequence

import numpy as np

from ar3po_jax.rollout import records as records_lib

AGE_EDGES = (1, 2, 3, 5, 9, 17)  # bin i holds ages in [AGE_EDGES[i], AGE_EDGES[i + 1])
PHASES = ("early", "middle", "late")


# -------------------------------------------------------------------------------------------------
# Statistics.
# -------------------------------------------------------------------------------------------------
def average_ranks(x: Sequence[float]) -> np.ndarray:
  """1-based ranks of x, tied values sharing the mean of the ranks they occupy."""
  x = np.asarray(x, np.float64)
  order = np.argsort(x, kind="mergesort")
  ranks = np.empty(len(x), np.float64)
  sorted_x = x[order]
  i = 0
  while i < len(x):
    j = i
    while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
      j += 1
    ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
    i = j + 1
  return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
  """Spearman's rank correlation: Pearson's correlation of the average ranks. NaN if undefined."""
  if len(x) != len(y):
    raise ValueError(f"spearman: {len(x)} x values but {len(y)} y values")
  if len(x) < 2:
    return float("nan")
  rx, ry = average_ranks(x), average_ranks(y)
  dx, dy = rx - rx.mean(), ry - ry.mean()
  den = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
  return float((dx * dy).sum() / den) if den > 0 else float("nan")


def _mean(values: Iterable[float]) -> float:
  values = list(values)
  return float(np.mean(values)) if values else float("nan")


def _std(values: Sequence[float]) -> float:
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def age_label(age: int) -> str:
  if age < AGE_EDGES[0]:
    raise ValueError(f"reuse age {age} < 1: a step never reuses its own responses")
  for lo, hi in zip(AGE_EDGES, AGE_EDGES[1:]):
    if lo <= age < hi:
      return str(lo) if hi == lo + 1 else f"{lo}-{hi - 1}"
  return f"{AGE_EDGES[-1]}+"


def _age_labels() -> list[str]:
  return [age_label(a) for a in AGE_EDGES]


# -------------------------------------------------------------------------------------------------
# (a) Reuse age against benefit.
# -------------------------------------------------------------------------------------------------
def _visits(recs: Sequence[dict]) -> dict[str, list[tuple[int, int, int]]]:
  """uid -> [(step, fresh sampled, fresh correct)] in step order."""
  out: dict[str, list[tuple[int, int, int]]] = {}
  for rec in recs:
    for e in rec["prompts"]:
      out.setdefault(e["uid"], []).append((int(rec["step"]), int(sum(e["sampled"])), int(sum(e["correct"]))))
  return out


def _follow_up(visits: list[tuple[int, int, int]], step: int, k: int) -> tuple[bool | None, float]:
  """(solved in one of the next k visits after `step`, their pooled fresh pass rate); (None, NaN) if none."""
  later = [v for v in visits if v[0] > step][:k]
  sampled = sum(v[1] for v in later)
  if not later:
    return None, float("nan")
  return any(v[2] > 0 for v in later), (sum(v[2] for v in later) / sampled if sampled else float("nan"))


def _bin_row(label: str, events: list[dict]) -> dict:
  followed = [e for e in events if e["solved"] is not None]
  return {
      "age": label,
      "events": len(events),
      "followed": len(followed),
      "solved_within_k": _mean(float(e["solved"]) for e in followed),
      "next_pass_rate": _mean(e["next_pass_rate"] for e in followed if not math.isnan(e["next_pass_rate"])),
      "nonzero_frac": _mean(float(e["nonzero"]) for e in events if e["nonzero"] is not None),
      "spread_mean": _mean(e["spread"] for e in events if e["spread"] is not None),
  }


def _reuse_events(recs: Sequence[dict], k: int) -> tuple[list[dict], list[dict], list[dict]]:
  """One run's (reuse events, all-wrong visits with nothing reused or withheld, withheld events)."""
  visits = _visits(recs)
  events, reference, withheld = [], [], []
  for rec in recs:
    step = int(rec["step"])
    reused_uids, withheld_uids = set(), set()
    for r in rec.get("reuse", []):
      solved, rate = _follow_up(visits.get(r["uid"], []), step, k)
      events.append({"uid": r["uid"], "step": step, "age": int(r["age"]), "solved": solved, "next_pass_rate": rate,
                     "nonzero": bool(r["nonzero"]), "spread": float(r["spread"])})
      reused_uids.add(r["uid"])
    for r in rec.get("withheld", []):
      solved, rate = _follow_up(visits.get(r["uid"], []), step, k)
      withheld.append({"uid": r["uid"], "step": step, "age": int(r["age"]), "solved": solved,
                       "next_pass_rate": rate, "nonzero": None, "spread": None})
      withheld_uids.add(r["uid"])
    for e in rec["prompts"]:
      if sum(e["sampled"]) > 0 and sum(e["correct"]) == 0 and e["uid"] not in reused_uids | withheld_uids:
        solved, rate = _follow_up(visits[e["uid"]], step, k)
        reference.append({"solved": solved, "next_pass_rate": rate, "nonzero": None, "spread": None})
  return events, reference, withheld


def matched_difference(reused: Sequence[dict], withheld: Sequence[dict]) -> dict:
  """Solved-within-k of reused prompts minus that of the matched control, with its standard error
  (two independent proportions, normal approximation; events of one prompt are treated as independent)."""
  a = [float(e["solved"]) for e in reused if e["solved"] is not None]
  b = [float(e["solved"]) for e in withheld if e["solved"] is not None]
  if not a or not b:
    return {"reused_followed": len(a), "withheld_followed": len(b), "difference": float("nan"),
            "stderr": float("nan")}
  pa, pb = float(np.mean(a)), float(np.mean(b))
  return {"reused_followed": len(a), "withheld_followed": len(b), "reused_solved": pa, "withheld_solved": pb,
          "difference": pa - pb, "stderr": math.sqrt(pa * (1 - pa) / len(a) + pb * (1 - pb) / len(b))}


def first_per_prompt(events: Sequence[dict]) -> list[dict]:
  """Each prompt's earliest event (events of one run; pooled runs are tagged apart by `run`)."""
  first: dict = {}
  for e in sorted(events, key=lambda e: e["step"]):
    first.setdefault((e.get("run", 0), e["uid"]), e)
  return list(first.values())


def reuse_age(recs: Sequence[dict], k: int = 3) -> dict:
  """Analysis (a) over a run's records (module docstring)."""
  return reuse_age_pooled([recs], k)


def reuse_age_pooled(runs: Sequence[Sequence[dict]], k: int = 3) -> dict:
  """Analysis (a) over several runs' records: each run's prompts are followed within that run, then
  the events of all runs are binned together."""
  if k < 1:
    raise ValueError(f"--k must be >= 1, got {k}")
  events, reference, withheld = [], [], []
  for i, recs in enumerate(runs):
    e, r, w = _reuse_events(recs, k)
    for x in e + w:
      x["run"] = i
    events, reference, withheld = events + e, reference + r, withheld + w
  def bins(evs):
    return [_bin_row(label, [e for e in evs if age_label(e["age"]) == label]) for label in _age_labels()]
  return {"k": k, "runs": len(runs), "bins": bins(events), "no_reuse": _bin_row("none", reference),
          "withheld": _bin_row("withheld", withheld), "withheld_bins": bins(withheld),
          "matched": matched_difference(events, withheld),
          "matched_first": matched_difference(first_per_prompt(events), first_per_prompt(withheld)),
          "events": len(events)}


# -------------------------------------------------------------------------------------------------
# (b) Stage-1 success against the full draw's pass rate.
# -------------------------------------------------------------------------------------------------
def _stage1(entry: dict) -> float | None:
  for n, c in zip(entry["sampled"], entry["correct"]):
    if n > 0:
      return c / n
  return None


def stage1_pairs(recs: Sequence[dict]) -> list[tuple[int, float, float]]:
  """(step, stage-1 success, full-draw pass rate) for every prompt of every full draw."""
  out = []
  for rec in recs:
    draw = rec.get("full_draw")
    if not draw:
      continue
    first = {}
    for e in rec["prompts"]:
      first.setdefault(e["uid"], _stage1(e))
    for uid, rate in draw["pass_rates"].items():
      s1 = first.get(uid)
      if s1 is not None:
        out.append((int(rec["step"]), float(s1), float(rate)))
  return out


def stage1_vs_full(recs: Sequence[dict]) -> dict:
  """Analysis (b) over a run's records (module docstring)."""
  steps = [int(r["step"]) for r in recs]
  lo, hi = (min(steps), max(steps)) if steps else (0, 0)
  span = hi - lo + 1
  pairs = stage1_pairs(recs)

  def row(name, first, last):
    inside = [(a, b) for s, a, b in pairs if first <= s <= last]
    xs, ys = [a for a, _ in inside], [b for _, b in inside]
    return {"phase": name, "steps": [first, last] if first <= last else None, "pairs": len(inside),
            "spearman": spearman(xs, ys), "stage1_mean": _mean(xs), "full_mean": _mean(ys)}

  bounds = [lo + -(-span * i // 3) for i in range(4)]  # ceil: a run shorter than 3 steps leaves late empty
  phases = [row(name, bounds[i], bounds[i + 1] - 1) for i, name in enumerate(PHASES)]
  phases.append(row("all", lo, hi))
  samples = sorted({int(r["full_draw"]["samples"]) for r in recs if r.get("full_draw")})
  return {"phases": phases, "full_draw_samples": samples, "full_draw_steps": sorted({s for s, _, _ in pairs})}


# -------------------------------------------------------------------------------------------------
# (c) Buffer size over several runs.
# -------------------------------------------------------------------------------------------------
SWEEP_METRICS = ("final_accuracy", "frac_all_wrong", "responses_per_prompt")


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSON-lines file a run writes (metrics.jsonl, records.jsonl), up to a last line
  that a killed run left cut short."""
  out = []
  with open(path) as f:
    for line in f:
      try:
        out.append(json.loads(line))
      except json.JSONDecodeError:  # a line cut short by a kill
        break
  return out


def run_summary(workdir: str) -> dict:
  """One run's buffer setting and its numbers, from WORKDIR/config.json and WORKDIR/metrics.jsonl."""
  config_path, metrics_path = os.path.join(workdir, "config.json"), os.path.join(workdir, "metrics.jsonl")
  for path in (config_path, metrics_path):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: missing; --sweep needs each run's config.json and metrics.jsonl")
  with open(config_path) as f:
    config = json.load(f)
  try:
    rollout = config["rollout"]
    strategy = rollout["strategy"]
    reuse = strategy == "ar3po" and bool(rollout.get("ar3po", {}).get("reuse", True))
    per_prompt, total = (int(rollout["buffer"]["per_prompt"]), int(rollout["buffer"]["total"])) if reuse else (0, 0)
    # With the newest pick every per_prompt >= 1 reuses the same response; the pick is part of the setting,
    # and so is a matched control's share of prompts that never get a reused response.
    pick = str(rollout.get("ar3po", {}).get("reuse_pick", "newest")) if reuse else ""
    control = float(rollout.get("ar3po", {}).get("reuse_control", 0.0)) if reuse else 0.0
  except (KeyError, TypeError) as err:
    raise ValueError(f"{config_path}: no rollout.strategy / rollout.buffer.per_prompt,total ({err})") from err
  history = read_jsonl(metrics_path)
  accuracy = [r["eval/accuracy"] for r in history if "eval/accuracy" in r]
  if not accuracy:
    raise ValueError(f"{metrics_path}: no eval/accuracy record")
  return {
      "workdir": workdir, "strategy": strategy, "seed": config.get("seed"), "per_prompt": per_prompt, "total": total,
      "pick": pick, "control": control, "final_accuracy": float(accuracy[-1]),
      "frac_all_wrong": _mean(r["rollout/frac_all_wrong"] for r in history
                              if isinstance(r.get("rollout/frac_all_wrong"), (int, float))
                              and not math.isnan(r["rollout/frac_all_wrong"])),
      "responses_per_prompt": _mean(r["rollout/responses_per_prompt"] for r in history
                                    if isinstance(r.get("rollout/responses_per_prompt"), (int, float))),
  }


def buffer_sweep(workdirs: Sequence[str]) -> dict:
  """Analysis (c) over the given run folders (module docstring)."""
  return sweep_table([run_summary(w) for w in workdirs])


def sweep_table(runs: Sequence[dict]) -> dict:
  groups: dict[tuple, list[dict]] = {}
  for r in runs:
    key = (r["per_prompt"], r["total"], r.get("pick", ""), r.get("control", 0.0), r["strategy"])
    groups.setdefault(key, []).append(r)
  rows = []
  for (per_prompt, total, pick, control, strategy), members in sorted(groups.items()):
    row = {"per_prompt": per_prompt, "total": total, "pick": pick, "control": control, "strategy": strategy,
           "runs": len(members), "seeds": [m["seed"] for m in members]}
    for name in SWEEP_METRICS:
      values = [m[name] for m in members]
      row[f"{name}_mean"], row[f"{name}_std"] = _mean(values), _std(values)
    rows.append(row)
  return {"rows": rows, "runs": list(runs)}


# -------------------------------------------------------------------------------------------------
# Output.
# -------------------------------------------------------------------------------------------------
def _jsonable(obj):
  if isinstance(obj, float) and math.isnan(obj):
    return None  # strict JSON has no NaN
  if isinstance(obj, dict):
    return {k: _jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_jsonable(v) for v in obj]
  return obj


def _write_json(out: str, name: str, data: dict) -> str:
  path = os.path.join(out, f"{name}.json")
  with open(path, "w") as f:
    json.dump(_jsonable(data), f, indent=1)
  return path


def _plt():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def plot_reuse_age(result: dict, path: str) -> None:
  plt = _plt()
  withheld = result.get("withheld") or {}
  rows = result["bins"] + ([withheld] if withheld.get("events") else []) + [result["no_reuse"]]
  labels = [f"{r['age']}\n(n={r['events']})" for r in rows]
  x = np.arange(len(rows))
  fig, ax = plt.subplots(figsize=(7, 4))
  ax.bar(x - 0.2, [r["solved_within_k"] for r in rows], 0.4, label=f"solved within next {result['k']} visits")
  ax.bar(x + 0.2, [r["nonzero_frac"] for r in rows], 0.4, label="group with non-zero advantage")
  ax.plot(x, [r["next_pass_rate"] for r in rows], "ko-", label="pass rate over the next visits")
  ax.set_xticks(x, labels)
  ax.set_xlabel("reuse age (steps); 'withheld': matched control; 'none': all-wrong, nothing buffered")
  ax.set_ylim(0, 1.05)
  ax.legend(fontsize=8)
  ax.set_title("Reuse age against benefit")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_stage1(recs: Sequence[dict], result: dict, path: str) -> None:
  plt = _plt()
  pairs = stage1_pairs(recs)
  fig, axes = plt.subplots(1, 3, figsize=(10, 3.4), sharey=True)
  for ax, phase in zip(axes, result["phases"][:3]):
    first, last = phase["steps"] or (0, -1)
    inside = [(a, b) for s, a, b in pairs if first <= s <= last]
    if inside:
      jitter = np.random.default_rng(0).uniform(-0.015, 0.015, (len(inside), 2))
      pts = np.asarray(inside) + jitter
      ax.scatter(pts[:, 0], pts[:, 1], s=8, alpha=0.5)
    rho = phase["spearman"]
    ax.set_title(f"{phase['phase']} (steps {first}-{last})\nrho={rho:.2f}, n={phase['pairs']}", fontsize=9)
    ax.set_xlabel("stage-1 success")
  axes[0].set_ylabel("full-draw pass rate")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_sweep(result: dict, path: str) -> None:
  plt = _plt()
  rows = result["rows"]
  labels = [f"{r['per_prompt']}/{r['total']}\n{r.get('pick', '')}" + (f"\ncontrol {r['control']:g}" if r.get("control")
            else "") if r["per_prompt"] else "no reuse" for r in rows]
  fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
  for ax, name in zip(axes, SWEEP_METRICS):
    ax.bar(np.arange(len(rows)), [r[f"{name}_mean"] for r in rows], yerr=[r[f"{name}_std"] for r in rows])
    ax.set_xticks(np.arange(len(rows)), labels, fontsize=8)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("buffer per_prompt/total, pick")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _fmt(v) -> str:
  return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def analyze_workdir(workdir: str, out: str, k: int = 3) -> dict:
  """Analyses (a) and (b) of one run, or of several runs pooled (comma-separated), written to `out`."""
  runs = [records_lib.read(w) for w in workdir.split(",") if w]
  age = reuse_age_pooled(runs, k)
  recs = [r for run in runs for r in run]  # (b) pairs each record with its own full draw: pooling is safe
  stage1 = stage1_vs_full(recs)
  _write_json(out, "reuse_age", age)
  _write_json(out, "stage1_vs_full", stage1)
  plot_reuse_age(age, os.path.join(out, "reuse_age.png"))
  plot_stage1(recs, stage1, os.path.join(out, "stage1_vs_full.png"))
  return {"reuse_age": age, "stage1_vs_full": stage1}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(prog="python -m ar3po_jax.analyze", description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", default="", help="A finished run (or several, comma-separated, pooled): analyses "
                 "(a) reuse age and (b) stage 1 vs full draw.")
  p.add_argument("--sweep", default="", help="Comma-separated run folders: analysis (c) buffer size.")
  p.add_argument("--out", default="", help="Output folder; default WORKDIR/analysis, else ./analysis.")
  p.add_argument("--k", type=int, default=3, help="Later visits of a prompt looked at after a reuse.")
  args = p.parse_args(argv)
  if not args.workdir and not args.sweep:
    p.error("give --workdir and/or --sweep")
  single = args.workdir and "," not in args.workdir
  out = args.out or (os.path.join(args.workdir, "analysis") if single else "analysis")
  os.makedirs(out, exist_ok=True)
  if args.workdir:
    res = analyze_workdir(args.workdir, out, args.k)
    age = res["reuse_age"]
    print(f"(a) reuse age against benefit: {age['events']} reuse events in {age['runs']} run(s), k={args.k}")
    for r in age["bins"] + [age["withheld"], age["no_reuse"]]:
      print(f"  age {r['age']:>8}  events {r['events']:5d}  followed {r['followed']:5d}  solved_within_k "
            f"{_fmt(r['solved_within_k'])}  next_pass_rate {_fmt(r['next_pass_rate'])}  "
            f"nonzero_frac {_fmt(r['nonzero_frac'])}")
    m = age["matched"]
    for name, m in (("every eligible visit", age["matched"]), ("first eligible visit", age["matched_first"])):
      if m["withheld_followed"]:
        print(f"  matched control, {name}: reused minus withheld solved_within_k {_fmt(m['difference'])} "
              f"+- {_fmt(m['stderr'])} (n = {m['reused_followed']} and {m['withheld_followed']})")
    print("(b) stage-1 success against full-draw pass rate (Spearman):")
    for r in res["stage1_vs_full"]["phases"]:
      steps = f"{r['steps'][0]}-{r['steps'][1]}" if r["steps"] else "none"
      print(f"  {r['phase']:>6}  steps {steps:>7}  pairs {r['pairs']:4d}  "
            f"spearman {_fmt(r['spearman'])}")
  if args.sweep:
    result = buffer_sweep([w for w in args.sweep.split(",") if w])
    _write_json(out, "buffer_sweep", result)
    plot_sweep(result, os.path.join(out, "buffer_sweep.png"))
    print("(c) buffer size (per_prompt/total pick; mean +- std over seeds):")
    for r in result["rows"]:
      control = f" control {r['control']:g}" if r.get("control") else ""
      print(f"  {r['strategy']} {r['per_prompt']}/{r['total']} {r.get('pick', '')}{control}  runs {r['runs']}  "
            + "  ".join(f"{n} {_fmt(r[n + '_mean'])}+-{_fmt(r[n + '_std'])}" for n in SWEEP_METRICS))
  print(f"written to {out}")


if __name__ == "__main__":
  main()
