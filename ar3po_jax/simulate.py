r"""Rollout cost of each strategy against a simulated policy, through the real Scheduler.

  python -m ar3po_jax.simulate --config=configs/tiny.py:ar3po --strategies=grpo,dapo,ar3po,aero \
      --pass_rate=constant:0.3 --num_prompts=10000 --steps=3 [--json]

Each step rolls out all --num_prompts prompts (rollout.batch_prompts is set to it, and DAPO's
gen_batch_prompts scaled to keep its ratio to batch_prompts); the same prompts come back every step,
in a fresh order, so the replay buffer fills. Numbers are totals over all steps: responses per drawn
prompt, per kept prompt, and fractions of zero-advantage groups before and after reuse. With a
constant pass rate the closed-form expectations are printed next to them. The work is done by
`ar3po_jax.rollout.simulation`; flags are defined only when this module runs as the program, so
importing it next to `main` defines nothing twice.
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

from ar3po_jax.rollout.simulation import print_table, simulate

__all__ = ["simulate"]


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", "configs/tiny.py:ar3po", "Config file (configs/tiny.py:STRATEGY).")
  flags.DEFINE_string("strategies", "", "Comma-separated strategies; empty: the config's.")
  flags.DEFINE_string("pass_rate", "constant:0.3", "constant:P | uniform | beta:A,B | file:PATH")
  flags.DEFINE_string("lengths", "", "constant:L | uniform:LO,HI | geometric:MEAN; empty: uniform:1,1.25*max_new_tokens")
  flags.DEFINE_integer("num_prompts", 10_000, "Prompts per step (the whole pool).", lower_bound=1)
  flags.DEFINE_integer("steps", 1, "Steps; the buffer only matters from the second on.", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of pass rates, data order, sampling and scheduling.")
  flags.DEFINE_bool("json", False, "One JSON object per strategy per line instead of a table.")


def main(argv):
  del argv
  f = flags.FLAGS
  config = f.config
  strategies = [s for s in f.strategies.split(",") if s] or [config.rollout.strategy]
  rows = []
  for strategy in strategies:
    row = simulate(config, strategy, f.pass_rate, f.num_prompts, f.steps, f.seed, f.lengths)
    if f.json:
      print(json.dumps(row), flush=True)
    rows.append(row)
  if not f.json:
    print_table(rows)


if __name__ == "__main__":
  define_flags()
  app.run(main)
