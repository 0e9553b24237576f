"""Rollout cost of a strategy against the simulated policy (`rollout.simulated`), through the real
Scheduler: what `python -m ar3po_jax.simulate` prints.

Each step rolls out all `num_prompts` prompts (rollout.batch_prompts is set to it, and DAPO's
gen_batch_prompts scaled to keep its ratio to batch_prompts); the same prompts come back every step,
in a fresh order, so the replay buffer fills. Numbers are totals over all steps: responses per drawn
prompt, per kept prompt, and fractions of zero-advantage groups before and after reuse; the running
strategy's own metrics (its `metrics_doc`) per step, per kept prompt and per drawn prompt. With a
constant pass rate, the strategy's closed-form expectations (`Strategy.closed_forms`) are printed
beside them.
"""

from __future__ import annotations

import copy
import time

import numpy as np

from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.rollout.simulated import SimulatedSampler, make_prompts, pass_rates
from ar3po_jax.rollout.strategies import make_strategy


def simulate(config, strategy: str, pass_rate: str, num_prompts: int, steps: int, seed: int, lengths: str = "") -> dict:
  """Runs `steps` rollouts of `strategy` over num_prompts simulated prompts; totals and closed forms."""
  from ar3po_jax.config_validation import resolve

  config = copy.deepcopy(config)
  config.rollout.strategy = strategy
  rollout = resolve(config).rollout  # this strategy's presets (e.g. DAPO's group size in configs/paper.py)
  ratio = rollout.dapo.gen_batch_prompts / rollout.batch_prompts
  rollout.batch_prompts = num_prompts
  rollout.dapo.gen_batch_prompts = max(1, round(ratio * num_prompts))
  prompts = make_prompts(num_prompts)
  rates = pass_rates(pass_rate, num_prompts, np.random.default_rng(seed))
  lengths = lengths or f"uniform:1,{int(1.25 * rollout.max_new_tokens)}"
  sampler = SimulatedSampler(
      {pr.uid: r for pr, r in zip(prompts, rates.tolist())},
      np.random.default_rng([seed, 1]),
      rollout.max_new_tokens,
      lengths,
  )
  scheduler = Scheduler(
      make_strategy(rollout),
      sampler,
      ExactVerifier(),
      ReplayBuffer(rollout.buffer.per_prompt, rollout.buffer.total),
      PromptStream(prompts, seed + 2),
  )
  strategy_metrics = sorted(scheduler.strategy.metrics_doc)
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
    ):
      totals[name] = totals.get(name, 0.0) + value
    for name in strategy_metrics:  # the strategy's own counts, summed like the rest
      totals[name] = totals.get(name, 0.0) + (m[name] if m[name] == m[name] else 0.0)
  seconds = time.perf_counter() - start

  def div(a: str, b: str) -> float:
    return totals[a] / totals[b] if totals[b] else float("nan")

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
      "seconds": seconds,
  }
  for name in strategy_metrics:  # e.g. dapo/gen_batches -> dapo_gen_batches_per_step, _per_prompt, _per_drawn
    key = name.replace("/", "_")
    row[f"{key}_per_step"] = totals[name] / steps
    row[f"{key}_per_prompt"] = div(name, "groups")
    row[f"{key}_per_drawn"] = div(name, "drawn")
  kind, _, arg = pass_rate.partition(":")
  if kind == "constant":
    row.update({f"closed_form/{k}": v for k, v in type(scheduler.strategy).closed_forms(rollout, float(arg)).items()})
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


def print_table(rows: list[dict]) -> None:
  print(" ".join(f"{title:>{len(fmt.format(0.0 if 'f' in fmt else ''))}}" for title, _, fmt in _TABLE))
  for row in rows:
    cells = []
    for _, key, fmt in _TABLE:
      value = row.get(key, float("nan"))
      cells.append(fmt.format(value))
    print(" ".join(cells))
