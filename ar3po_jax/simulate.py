r"""Rollout cost of each strategy against a simulated policy, through the real Scheduler.

  python -m ar3po_jax.simulate --config=configs/tiny.py:ar3po --strategies=grpo,dapo,ar3po,aero \
      --pass_rate=constant:0.3 --num_prompts=10000 --steps=3 [--json]

Each step rolls out all --num_prompts prompts (rollout.batch_prompts is set to it, and DAPO's
gen_batch_prompts scaled to keep its ratio to batch_prompts); the same prompts come back every step,
in a fresh order, so the replay buffer fills. Numbers are totals over all steps: responses per drawn
prompt, per kept prompt, and fractions of zero-advantage groups before and after reuse. With a
constant pass rate the closed-form expectations are printed next to them.
"""

from __future__ import annotations

import copy
import json
import math
import time

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.rollout import simulated
from ar3po_jax.rollout.simulated import PromptCycle, SimulatedSampler, make_prompts, pass_rates
from ar3po_jax.rollout.strategies import make_strategy

_CONFIG = config_flags.DEFINE_config_file("config", "configs/tiny.py:ar3po", "Config file (configs/tiny.py:STRATEGY).")
_STRATEGIES = flags.DEFINE_string("strategies", "", "Comma-separated strategies; empty: the config's.")
_PASS_RATE = flags.DEFINE_string("pass_rate", "constant:0.3", "constant:P | uniform | beta:A,B | file:PATH")
_LENGTHS = flags.DEFINE_string("lengths", "", "constant:L | uniform:LO,HI | geometric:MEAN; empty: uniform:1,1.25*max_new_tokens")
_NUM_PROMPTS = flags.DEFINE_integer("num_prompts", 10_000, "Prompts per step (the whole pool).", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 1, "Steps; the buffer only matters from the second on.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of pass rates, data order, sampling and scheduling.")
_JSON = flags.DEFINE_bool("json", False, "One JSON object per strategy per line instead of a table.")


def closed_forms(rollout_config, strategy: str, p: float) -> dict[str, float]:
  """Expected values per prompt and step for a constant pass rate p (first step, before any reuse)."""
  q = 1.0 - p
  if strategy == "grpo":
    g = rollout_config.group_size
    return {"responses_per_prompt": g, "frac_zero_adv_groups_before_reuse": p**g + q**g}
  if strategy == "dapo":
    g = rollout_config.group_size
    # No zero-advantage formula: the overlong penalty can level a kept group's shaped rewards.
    return {"responses_per_prompt": g, "dapo_frac_kept": 1.0 - p**g - q**g}
  if strategy == "ar3po":
    s, k = rollout_config.ar3po.stages, rollout_config.ar3po.k
    return {
        "responses_per_prompt": k * sum(q ** (k * i) for i in range(s)),
        "frac_zero_adv_groups_before_reuse": p**k + q ** (s * k),
    }
  if strategy == "aero":
    return _aero_closed_forms(rollout_config.aero, p)
  return simulated.closed_forms(rollout_config, strategy, p)  # the strategies added later keep theirs there


def _aero_closed_forms(a, p: float) -> dict[str, float]:
  n, q = a.n_explore, 1.0 - p
  if not 0 <= a.u_res < 1 / n:
    return {}  # rescue would then start from c > 0 prompts too; no short formula
  expected, spent, reach = float(n), n, q**n
  while spent < a.budget:
    batch = min(a.n_extra, a.budget - spent)
    expected += reach * batch
    reach *= q**batch
    spent += batch
  rejected = 0.0
  for c in range(1, n):
    if a.u_res < c / n < 0.5:
      keep = min(n - c, max(1, math.floor(a.reject_ratio * c + 0.5)))
      rejected += math.comb(n, c) * p**c * q ** (n - c) * (n - c - keep)
  return {"responses_per_prompt": expected, "aero_rejected_per_prompt": rejected, "frac_zero_adv_groups_before_reuse": 0.0}


def simulate(config, strategy: str, pass_rate: str, num_prompts: int, steps: int, seed: int, lengths: str = "") -> dict:
  """Runs `steps` rollouts of `strategy` over num_prompts simulated prompts; totals and closed forms."""
  rollout = copy.deepcopy(config.rollout)
  ratio = rollout.dapo.gen_batch_prompts / rollout.batch_prompts
  rollout.strategy = strategy
  rollout.batch_prompts = num_prompts
  rollout.dapo.gen_batch_prompts = max(1, round(ratio * num_prompts))
  prompts = make_prompts(num_prompts)
  rates = pass_rates(pass_rate, num_prompts, np.random.default_rng(seed))
  lengths = lengths or f"uniform:1,{int(1.25 * rollout.max_new_tokens)}"
  sampler = SimulatedSampler(
      {pr.uid: r for pr, r in zip(prompts, rates.tolist())}, np.random.default_rng([seed, 1]), rollout.max_new_tokens, lengths
  )
  scheduler = Scheduler(
      make_strategy(rollout),
      sampler,
      ExactVerifier(),
      ReplayBuffer(rollout.buffer.per_prompt, rollout.buffer.total),
      PromptCycle(prompts, np.random.default_rng([seed, 2])),
  )
  rng = np.random.default_rng([seed, 3])
  totals: dict[str, float] = {}
  start = time.perf_counter()
  for step in range(steps):
    m = scheduler.rollout(step, rng).metrics
    groups = m["rollout/prompts"]
    for name, value in (
        ("responses", m["rollout/responses"]),
        ("tokens", m["rollout/tokens"]),
        ("drawn", m["rollout/prompts_drawn"]),
        ("groups", groups),
        ("zero_before", m["rollout/frac_zero_adv_groups_before_reuse"] * groups if groups else 0.0),
        ("zero_after", m["rollout/frac_zero_adv_groups"] * groups if groups else 0.0),
        ("all_wrong_before", m["rollout/frac_all_wrong_before_reuse"] * groups if groups else 0.0),
        ("all_wrong", m["rollout/frac_all_wrong"] * groups if groups else 0.0),
        ("correct", m["rollout/reward_mean"] * m["rollout/responses"]),
        ("reused", m["rollout/reused"]),
        ("gen_batches", m["dapo/gen_batches"]),
        ("cap_hit", m["dapo/cap_hit"]),
        ("dapo_kept", m.get("dapo/kept_prompts", 0.0)),
        ("rejected", m["aero/rejected"]),
        ("rescued", m["aero/rescued"]),
    ):
      totals[name] = totals.get(name, 0.0) + value
  seconds = time.perf_counter() - start
  div = lambda a, b: totals[a] / totals[b] if totals[b] else float("nan")
  row = {
      "strategy": strategy,
      "steps": steps,
      "num_prompts": num_prompts,
      "pass_rate": pass_rate,
      "responses_per_prompt": div("responses", "drawn"),
      "responses_per_kept_prompt": div("responses", "groups"),
      "frac_zero_adv_groups_before_reuse": div("zero_before", "groups"),
      "frac_zero_adv_groups": div("zero_after", "groups"),
      "frac_all_wrong_before_reuse": div("all_wrong_before", "groups"),
      "frac_all_wrong": div("all_wrong", "groups"),
      "reward_mean": div("correct", "responses"),
      "tokens_per_prompt": div("tokens", "drawn"),
      "reused_per_prompt": div("reused", "groups"),
      "dapo_gen_batches_per_step": totals["gen_batches"] / steps,
      "dapo_cap_hits": totals["cap_hit"],
      "dapo_frac_kept": div("dapo_kept", "drawn") if strategy == "dapo" else float("nan"),
      "aero_rejected_per_prompt": div("rejected", "groups"),
      "aero_rescued_per_prompt": div("rescued", "groups"),
      "seconds": seconds,
  }
  kind, _, arg = pass_rate.partition(":")
  if kind == "constant":
    row.update({f"closed_form/{k}": v for k, v in closed_forms(rollout, strategy, float(arg)).items()})
  return row


_TABLE = (
    ("strategy", "strategy", "{:>8}"),
    ("resp/prompt", "responses_per_prompt", "{:>12.3f}"),
    ("expected", "closed_form/responses_per_prompt", "{:>9.3f}"),
    ("resp/kept", "responses_per_kept_prompt", "{:>10.3f}"),
    ("zero-adv before", "frac_zero_adv_groups_before_reuse", "{:>16.4f}"),
    ("expected", "closed_form/frac_zero_adv_groups_before_reuse", "{:>9.4f}"),
    ("zero-adv after", "frac_zero_adv_groups", "{:>15.4f}"),
    ("all-wrong after", "frac_all_wrong", "{:>16.4f}"),
    ("seconds", "seconds", "{:>8.2f}"),
)


def _print_table(rows: list[dict]) -> None:
  print(" ".join(f"{title:>{len(fmt.format(0.0 if 'f' in fmt else ''))}}" for title, _, fmt in _TABLE))
  for row in rows:
    cells = []
    for _, key, fmt in _TABLE:
      value = row.get(key, float("nan"))
      cells.append(fmt.format(value))
    print(" ".join(cells))


def main(argv):
  del argv
  config = _CONFIG.value
  strategies = [s for s in _STRATEGIES.value.split(",") if s] or [config.rollout.strategy]
  rows = []
  for strategy in strategies:
    row = simulate(config, strategy, _PASS_RATE.value, _NUM_PROMPTS.value, _STEPS.value, _SEED.value, _LENGTHS.value)
    if _JSON.value:
      print(json.dumps(row), flush=True)
    rows.append(row)
  if not _JSON.value:
    _print_table(rows)


if __name__ == "__main__":
  app.run(main)
