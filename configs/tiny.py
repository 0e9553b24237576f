r"""The embedded run: a 0.6M-parameter decoder learns arithmetic by RL with verifiable rewards.

Everything is made locally: the task generator writes the problems, a sentencepiece tokenizer is
trained on them, a supervised warm start gives a policy that is right on some prompts and wrong on
others, then RL with the chosen rollout strategy improves it.

Run (2 CPU cores: RL 268 s, the whole first run 15 minutes with the warm start on a shared machine,
30 November 2026; tokenizer and warm start are cached in the workdir):

  python -m ar3po_jax.main --config=configs/tiny.py:ar3po --workdir=/tmp/ar3po_tiny

The argument picks the rollout strategy: any registered one (grpo, dapo, ar3po (the default), aero,
greso, knapsack, pods, ...), or a named variant of one (VARIANTS below: aero_budget,
aero_budget_hard, aero_reject), optionally followed by presets after commas (PRESETS below: the task
mix `hard`, the learning rate `slow`; `configs/tiny.py:grpo,hard`). Override any
field with --config.FIELD=VALUE, e.g. --config.rl.steps=50 --config.rollout.ar3po.k=2.
Every field, and how strategy presets and the data root work: configs/common.py.

The warm start imitates worked solutions that forget the carry in 60% of the sums that need one
(task.teacher_slip); the verifier checks the true answer, so RL has to teach the policy to carry.

Expect (measured, seeds 0 / 1 / 2): warm-start histograms with 17 / 36 / 40% of held-out prompts never
solved and 34 / 24 / 24% always solved; greedy held-out accuracy 0.574 -> 0.686, 0.420 -> 0.566 and
0.394 -> 0.474 after 100 AR3PO steps (mean +11.3 points; most of it by step 25); about 5 responses per
prompt for ar3po against 8 for grpo. Metrics in WORKDIR/metrics.jsonl, TensorBoard events in
WORKDIR/tb, and WORKDIR/accuracy_vs_responses.png. Per-step records (stage outcomes, reuse ages) in
WORKDIR/records.jsonl, which `python -m ar3po_jax.analyze --workdir=WORKDIR` turns into the reuse-age
and stage-1 analyses; the latter needs full draws: --config.analysis.full_draw_every=10.
"""

try:
  from configs import common
except ImportError:  # loaded by path from outside the repository root: import it from this folder's parent
  import os
  import sys

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common

STRATEGIES = common.STRATEGIES
# Named variants: a registered strategy with other knob values (dotted field -> value). They are not
# strategies: the config's rollout.strategy is the strategy, and each keeps its own default workdir.
VARIANTS = {
    # AERO at GRPO's rollout budget: 5 explore, then rescue 4 at a time up to 13, averages 7.96 responses
    # per prompt over the warm-start pass rates of seeds 0 / 1 / 2 (6.71 / 8.37 / 8.79; simulated 6.75 /
    # 8.35 / 8.80). The default aero (8, then 2 at a time up to 16) spends 9.53 / 11.15 / 11.54 there.
    "aero_budget": ("aero", {"rollout.aero.n_explore": 5, "rollout.aero.budget": 13, "rollout.aero.n_extra": 4}),
    # The same for the hard mix, whose warm starts leave 57 to 70% of prompts never solved: 5 explore and
    # one rescue of 4 (budget 9) average 7.98 there (7.97 / 7.75 / 8.21); aero_budget spent 9.81.
    # `python -m benchmarks.aero_fit` finds such sizes from a run's warm-start pass rates.
    "aero_budget_hard": ("aero", {"rollout.aero.n_explore": 5, "rollout.aero.budget": 9, "rollout.aero.n_extra": 4}),
    # Selective rejection alone at GRPO's exact budget: the default 8 explore and no rescue (budget =
    # n_explore). By the closed form it removes the most rows any setting at an average of 8 can remove here:
    # 0.74 a prompt on the default mix's warm starts, 0.88 on the hard mix's (9 and 11%).
    "aero_reject": ("aero", {"rollout.aero.budget": 8}),
}
# Presets: the parts of the argument after the strategy (`grpo,hard`, `grpo,slow`, `grpo,hard,slow`),
# applied in order after the variant's fields; each run gets its own workdir. A task mix changes the
# problems, so the held-out split, the tokenizer and the warm start change with it (their cache keys
# include every task field); a training setting leaves them shared.
PRESETS = {
    # Task mix: weight moved from the levels learned first (1, 2) to two-digit sums with and without a
    # carry (4) and multi-step problems (5), so that more prompts sit between never and always solved
    # after the warm start. It plateaus too, at about 0.19 held-out, whatever the prompt pool or the
    # learning rate: the ceiling is the 0.6M-parameter model's (BENCHMARKS.md section 8).
    "hard": {"task.level_weights": (1.0, 0.5, 1.5, 3.0, 3.0)},
    # Training setting: a tenth of the default learning rate. The default mix then climbs for the whole
    # 100 steps instead of reaching its plateau (about 0.70 held-out) by step 25, so strategies can be
    # compared by their cost to an accuracy on the rising part of the curve (BENCHMARKS.md section 9).
    "slow": {"rl.lr": 1e-5},
}


def get_config(arg: str | None = None):
  name, *presets = (arg or "ar3po").split(",")
  presets = [p for p in presets if p]
  name = name or "ar3po"
  strategy, fields = VARIANTS.get(name, (name, {}))
  if strategy not in common.REGISTRY:
    raise ValueError(f"configs/tiny.py: unknown strategy {name!r}; choose one of {STRATEGIES} or a variant "
                     f"{tuple(VARIANTS)}")
  unknown = [p for p in presets if p not in PRESETS]
  if unknown:
    raise ValueError(f"configs/tiny.py: unknown preset {unknown[0]!r} in {arg!r}; choose from {tuple(PRESETS)}")
  c = common.base(strategy)
  fields = dict(fields)
  for preset in presets:
    fields.update(PRESETS[preset])
  if fields:
    # Not the plain strategy's: a checkpoint there belongs to another run.
    c.workdir = "_".join([f"workdir/tiny_{name}", *presets])
  for dotted, value in fields.items():
    *parents, leaf = dotted.split(".")
    node = c
    for part in parents:
      node = node[part]
    node[leaf] = value
  return c
