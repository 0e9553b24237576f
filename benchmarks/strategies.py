r"""The rollout strategies on the embedded task, several seeds each, at one step budget.

  .venv/bin/python -m benchmarks.strategies --steps=60 --seeds=0,1,2 \
      --workdir=/tmp/ar3po_bench [--variants=grpo,ar3po] [--preset=hard|slow] [--override=rl.lr=1e-4] [--aggregate_only]

The default variants are the strategies (DEFAULT_VARIANTS); the replay-buffer sizes of AR3PO
(`ar3po_buf*`) are variants too, run by `benchmarks.buffer_sweep`. `--mix=hard` trains on
configs/tiny.py's harder level mix and `--preset=slow` at its lower learning rate (PRESETS there;
`--mix` is the same flag), each with its own results folder (RESULTS_hard, RESULTS_slow by default).
Each run folder (WORKDIR/runs/<variant>_seed<k>[_<preset>]) keeps the run's config.json,
metrics.jsonl and records.jsonl, which `python -m ar3po_jax.analyze` reads.

Each (variant, seed) run trains from the warm start of its seed (computed once per seed and cached
in WORKDIR/cache, shared by every variant) and leaves its metrics history in
RESULTS/<variant>_seed<k>.jsonl, with RESULTS/<variant>_seed<k>.json beside it holding the run's
settings and the simulator's prediction of its rollout cost. A run whose .jsonl exists is skipped,
so an interrupted sweep resumes where it stopped, and several processes may split the variants
(give each seed's warm start time to be cached by one process first). The aggregate (table,
summary.json, PNGs) is then rebuilt from whatever runs exist; see `strategy_report`.

The simulator's prediction: `simulate` over the seed's warm-start pass rates of held-out prompts
(the warm-start report's `per_prompt`), 3 steps so that reuse engages. It holds the policy fixed,
so it predicts the cost at the start of RL; a policy that improves during the run spends less.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time

from benchmarks import strategy_report
from configs import tiny

# name -> (strategy, config overrides). The (S, k) sweep of docs/ALGORITHMS.md keeps S * k = 8, GRPO's G.
VARIANTS = {
    "grpo": ("grpo", {}),
    "dapo": ("dapo", {}),
    "ar3po_opt1": ("ar3po", {"rollout.ar3po.reuse_mode": "recompute"}),
    "ar3po_opt2": ("ar3po", {"rollout.ar3po.reuse_mode": "stop_gradient"}),
    "ar3po_s4k2": ("ar3po", {"rollout.ar3po.stages": 4, "rollout.ar3po.k": 2}),
    "ar3po_s8k1": ("ar3po", {"rollout.ar3po.stages": 8, "rollout.ar3po.k": 1}),
    "aero": ("aero", {}),
    "greso": ("greso", {}),
    "knapsack": ("knapsack", {}),
    "pods": ("pods", {}),
    # configs/tiny.py's named variants (AERO at GRPO's budget), with the same fields.
    **{name: (strategy, dict(fields)) for name, (strategy, fields) in tiny.VARIANTS.items()},
}
DEFAULT_VARIANTS = tuple(VARIANTS)
# The replay-buffer sweep (issue 15, `benchmarks.buffer_sweep`): AR3PO (Option I) with
# rollout.buffer.per_prompt / total; buf0 turns reuse off (the buffer needs sizes >= 1), which the
# analysis reports as (0, 0). tot64: a shared budget of 64 responses for the 512-prompt pool.
BUFFER_VARIANTS = {
    "ar3po_buf0": ("ar3po", {"rollout.ar3po.reuse": False}),
    "ar3po_buf1": ("ar3po", {"rollout.buffer.per_prompt": 1}),
    "ar3po_buf2": ("ar3po", {"rollout.buffer.per_prompt": 2}),
    "ar3po_buf4": ("ar3po", {"rollout.buffer.per_prompt": 4}),
    "ar3po_buf2_tot64": ("ar3po", {"rollout.buffer.per_prompt": 2, "rollout.buffer.total": 64}),
    # With the newest pick, any per_prompt >= 1 runs the same trajectory (the newest is always kept);
    # a random pick over the prompt's buffered responses is where the size can matter.
    "ar3po_buf2_random": ("ar3po", {"rollout.buffer.per_prompt": 2, "rollout.ar3po.reuse_pick": "random"}),
    "ar3po_buf4_random": ("ar3po", {"rollout.buffer.per_prompt": 4, "rollout.ar3po.reuse_pick": "random"}),
    # The matched control: half the prompts (by uid hash) never get a reused response, so that
    # `python -m ar3po_jax.analyze` can compare what reuse did against what it would have done.
    "ar3po_control": ("ar3po", {"rollout.ar3po.reuse_control": 0.5}),
}
VARIANTS.update(BUFFER_VARIANTS)
MIXES = ("",) + tuple(tiny.PRESETS)
SIMULATED_STEPS = 3



def parse_args(argv=None) -> argparse.Namespace:
  # argparse, not absl flags: ar3po_jax.simulate defines absl flags (--steps, --seed) at import.
  p = argparse.ArgumentParser(prog="python -m benchmarks.strategies", description=__doc__.split("\n\n")[0])
  p.add_argument(
      "--variants", default=",".join(DEFAULT_VARIANTS), help=f"Comma-separated, from {list(VARIANTS)}."
  )
  p.add_argument(
      "--preset", "--mix", dest="mix", default="", choices=MIXES,
      help="Preset of configs/tiny.py (PRESETS: a task mix or a training setting); empty: none.",
  )
  p.add_argument(
      "--seeds", default="0,1,2", help="Comma-separated; each has its own warm start, data order and sampling."
  )
  p.add_argument("--steps", type=int, default=60, help="RL steps per run (equal for every variant).")
  p.add_argument("--eval_every", type=int, default=10, help="Held-out evaluation every this many steps.")
  p.add_argument(
      "--workdir", default="/tmp/ar3po_bench", help="Caches (tokenizer, warm starts, compiled code) and run folders."
  )
  p.add_argument(
      "--cache_dir", default="", help="Tokenizer and warm-start cache (config.cache_dir); empty: WORKDIR/cache."
  )
  p.add_argument(
      "--results", default="benchmarks/results/strategies",
      help="Where histories, summaries and plots go; with --preset=M, RESULTS_M unless given.",
  )
  p.add_argument(
      "--override", action="append", default=[], help="FIELD=VALUE for every run's config, e.g. rl.lr=1e-4; repeatable."
  )
  p.add_argument(
      "--aggregate_only", action="store_true", help="Run nothing; rebuild the table and plots from existing runs."
  )
  args = p.parse_args(argv)
  given = sys.argv[1:] if argv is None else argv
  if args.mix and not any(a == "--results" or a.startswith("--results=") for a in given):
    args.results = f"{args.results}_{args.mix}"
  args.variants = [v for v in args.variants.split(",") if v]
  args.seeds = [int(s) for s in args.seeds.split(",") if s]
  unknown = sorted(set(args.variants) - set(VARIANTS))
  if unknown:
    p.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
  return args


def _parse(value: str):
  try:
    return ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return value


def _set(config, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  node = config
  for name in parents:
    node = node[name]
  if leaf not in node:
    raise KeyError(f"config has no field {dotted!r}")
  node[leaf] = value


def make_config(
    variant: str, seed: int, steps: int, eval_every: int, overrides: list[str], cache_dir: str = "", mix: str = ""
):
  strategy, variant_overrides = VARIANTS[variant]
  config = tiny.get_config(f"{strategy},{mix}" if mix else strategy)
  config.seed = seed
  config.rl.steps = steps
  config.eval.every = eval_every
  config.log.progress = False
  config.log.tensorboard = False
  if "cache_dir" in config:
    config.cache_dir = cache_dir
  # Checkpoint writes would add to the measured wall-clock; a run here is minutes long, redone if lost.
  if "checkpoint" in config:
    config.checkpoint.enabled = False
  for field, value in variant_overrides.items():
    _set(config, field, value)
  for item in overrides:
    field, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"--override {item!r}: expected FIELD=VALUE")
    _set(config, field.strip(), _parse(value.strip()))
  from ar3po_jax import config_validation

  return config_validation.resolve(config)  # the final strategy's presets fill the fields left None


def predict(config, pass_rates: list[float], seed: int, workdir: str) -> dict:
  """The simulator's cost for this config's strategy at the warm start's pass rates."""
  from ar3po_jax.simulate import simulate

  path = os.path.join(workdir, f"pass_rates_seed{seed}.json")
  with open(path, "w") as f:
    json.dump(pass_rates, f)
  row = simulate(config, config.rollout.strategy, f"file:{path}", len(pass_rates), SIMULATED_STEPS, seed)
  keys = (
      "responses_per_prompt", "responses_per_kept_prompt", "frac_zero_adv_groups_before_reuse",
      "frac_zero_adv_groups", "frac_all_wrong_before_reuse", "frac_all_wrong",
  )
  return {k: row[k] for k in keys}


def run_folder(workdir: str, variant: str, seed: int, mix: str = "") -> str:
  """The run's folder: its config.json, metrics.jsonl and records.jsonl."""
  return os.path.join(workdir, "runs", f"{variant}_seed{seed}" + (f"_{mix}" if mix else ""))


def run_one(variant: str, seed: int, args: argparse.Namespace, log) -> None:
  results = args.results
  name = f"{variant}_seed{seed}"
  history_path = os.path.join(results, f"{name}.jsonl")
  if os.path.exists(history_path):
    log(f"{name}: done before, skipped")
    return
  import jax

  from ar3po_jax import tasks, train

  workdir = args.workdir
  jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "cache", "jax"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  cache_dir = args.cache_dir or os.path.join(args.workdir, "cache")
  config = make_config(variant, seed, args.steps, args.eval_every, args.override, cache_dir, args.mix)
  setup = tasks.build_setup(config, workdir, log)
  run_dir = run_folder(workdir, variant, seed, args.mix)
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, "config.json"), "w") as f:  # what `ar3po_jax.analyze --sweep` reads
    f.write(config.to_json_best_effort(indent=1))
  start = time.time()
  history = train.run(config, run_dir, setup, log)
  seconds = time.time() - start
  meta = {
      "variant": variant,
      "seed": seed,
      "strategy": config.rollout.strategy,
      "steps": config.rl.steps,
      "mix": args.mix,
      "run_dir": run_dir,
      "overrides": {**VARIANTS[variant][1], **dict(o.split("=", 1) for o in args.override)},
      "run_seconds": seconds,
      "warm_start_pass_rates": setup.report["pass_rates"],
      "simulated": predict(config, setup.report["per_prompt"], seed, workdir),
  }
  with open(os.path.join(results, f"{name}.json"), "w") as f:
    json.dump(meta, f, indent=1)
  # The history is written last and atomically: its presence is what marks the run done.
  with open(history_path + ".tmp", "w") as f:
    for record in history:
      f.write(json.dumps(record, sort_keys=True) + "\n")
  os.replace(history_path + ".tmp", history_path)
  log(f"{name}: {seconds:.0f} s")


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.results, exist_ok=True)
  os.makedirs(args.workdir, exist_ok=True)
  def log(message):
    print(message, flush=True)

  if not args.aggregate_only:
    # Seed-major order: every variant of a seed shares its warm start, which the first one caches.
    for seed in args.seeds:
      for variant in args.variants:
        run_one(variant, seed, args, log)
  print(strategy_report.build(args.results, list(VARIANTS)))


if __name__ == "__main__":
  main()
