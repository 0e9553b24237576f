r"""AERO's explore and rescue sizes that spend a target rollout budget, from measured pass rates.

  python -m benchmarks.aero_fit --target=8 \
      --rates=benchmarks/results/strategies_hard/grpo_seed0.json,benchmarks/results/strategies_hard/grpo_seed1.json,benchmarks/results/strategies_hard/grpo_seed2.json

Each --rates file is either a JSON list of per-prompt pass rates (what `benchmarks.strategies` writes to
WORKDIR/pass_rates_seedK.json for the simulator) or a strategy run's settings file, whose
`warm_start_pass_rates.histogram` counts the held-out prompts solved k of n times. Every
(n_explore, n_extra, budget) in the grid is scored with AERO's closed form (`Aero.closed_forms`, which
the simulator checks): expected responses per prompt, responses removed by selective rejection, and
the rows left to train, each averaged over the prompts of a file, then over the files. The table lists
the settings whose average spend is nearest the target, fewest trained rows first among equals.

Why a closed form and not the simulator: the grid has about a thousand settings, and AERO's cost
depends on the pass rates only through per-prompt expectations, so each score is exact and instant.
It holds the policy fixed at the pass rates given (the warm start's), like the simulator does.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

from ar3po_jax.rollout.strategies.aero import Aero
from configs.tiny import get_config


def read_rates(path: str) -> list[float]:
  """Per-prompt pass rates from a JSON list, or from a run's warm-start histogram."""
  with open(path) as f:
    data = json.load(f)
  if isinstance(data, list):
    rates = [float(x) for x in data]
  elif isinstance(data, dict) and "histogram" in data.get("warm_start_pass_rates", {}):
    histogram = data["warm_start_pass_rates"]["histogram"]
    n = len(histogram) - 1
    rates = [k / n for k, count in enumerate(histogram) for _ in range(int(count))]
  else:
    raise ValueError(f"{path}: expected a JSON list of pass rates or a run file with "
                     "warm_start_pass_rates.histogram")
  if not rates or not all(0.0 <= r <= 1.0 for r in rates):
    raise ValueError(f"{path}: pass rates must be a non-empty list of numbers in [0, 1]")
  return rates


def score(rollout_config, rates: list[float]) -> dict[str, float]:
  """AERO's expected per-prompt cost over one set of pass rates (closed form, policy held fixed)."""
  forms = [Aero.closed_forms(rollout_config, p) for p in rates]
  if not forms[0]:
    raise ValueError("no closed form for these knobs (u_res must lie in [0, 1/n_explore))")
  responses = float(np.mean([f["responses_per_prompt"] for f in forms]))
  rejected = float(np.mean([f["aero_rejected_per_prompt"] for f in forms]))
  return {"responses_per_prompt": responses, "rejected_per_prompt": rejected,
          "trained_per_prompt": responses - rejected}


def fit(rate_sets: list[list[float]], target: float, max_budget: int = 16, config=None) -> list[dict]:
  """Every (n_explore, n_extra, budget) up to max_budget, nearest the target spend first."""
  config = config or get_config("aero")
  a = config.rollout.aero
  rows = []
  for n_explore, budget in itertools.product(range(1, max_budget + 1), repeat=2):
    if budget < n_explore:
      continue
    # Without rescue (budget == n_explore) the rescue size changes nothing: list it once.
    for n_extra in range(1, (budget - n_explore if budget > n_explore else 1) + 1):
      a.n_explore, a.n_extra, a.budget = n_explore, n_extra, budget
      per_set = [score(config.rollout, rates) for rates in rate_sets]
      row = {"n_explore": n_explore, "n_extra": n_extra, "budget": budget,
             "per_set_responses": [s["responses_per_prompt"] for s in per_set]}
      for key in ("responses_per_prompt", "rejected_per_prompt", "trained_per_prompt"):
        row[key] = float(np.mean([s[key] for s in per_set]))
      rows.append(row)
  rows.sort(key=lambda r: (round(abs(r["responses_per_prompt"] - target), 2), r["trained_per_prompt"]))
  return rows


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--rates", required=True, help="Comma-separated files (one per seed); see the module docstring.")
  p.add_argument("--target", type=float, default=8.0, help="Responses per prompt to spend on average (GRPO's G).")
  p.add_argument("--max_budget", type=int, default=16, help="Largest budget (responses per prompt) searched.")
  p.add_argument("--top", type=int, default=12, help="Rows printed.")
  args = p.parse_args(argv)
  if args.target <= 0 or args.max_budget < 1 or args.top < 1:
    p.error("--target must be > 0, --max_budget and --top >= 1")
  rate_sets = [read_rates(path) for path in args.rates.split(",") if path]
  if not rate_sets:
    p.error("--rates names no file")
  rows = fit(rate_sets, args.target, args.max_budget)
  print("| n_explore | n_extra | budget | responses/prompt (per file) | rejected/prompt | trained rows/prompt |")
  print("|---|---|---|---|---|---|")
  for r in rows[: args.top]:
    per = " / ".join(f"{x:.2f}" for x in r["per_set_responses"])
    print(f"| {r['n_explore']} | {r['n_extra'] if r['budget'] > r['n_explore'] else '-'} | {r['budget']} | "
          f"{r['responses_per_prompt']:.2f} ({per}) | {r['rejected_per_prompt']:.3f} | {r['trained_per_prompt']:.2f} |")


if __name__ == "__main__":
  main()
