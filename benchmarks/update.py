r"""Speed of the compiled RL update, and how well a real run fills its padded batches.

  .venv/bin/python -m benchmarks.update --out=benchmarks/results/update.json \
      --histories='benchmarks/results/strategies/ar3po_opt1_seed*.jsonl'

Part 1 times `update.make_update_fn` under `jit_update` on the embedded (tiny) config's model at
every row bucket an AR3PO run can compile (S * k + 1 rows per prompt, `rl.row_buckets` buckets),
with full buckets of random tokens: tokens/s of padded slots (what the compiled code processes)
and of real tokens, compile time per bucket, and the FLOP rate against the float32 matmul peak
(6 x parameters FLOPs per slot token for forward and backward).

Part 2 reads the metrics histories of full AR3PO runs (from `benchmarks.strategies`): padding
efficiency as the run logs it (`train/padding_efficiency`: real response tokens over the response
slots of all rows of the update batch, padding rows included), its two factors (row fill: real
rows over bucket rows; slot fill: the rest, response length over the batch's response slots, one
of `rl.response_buckets` lengths), and the number of update variants compiled per run.
"""

from __future__ import annotations

import glob
import json
import os
import statistics
import time

import jax
import numpy as np
from absl import app, flags

from benchmarks import machine

_HISTORIES = flags.DEFINE_string("histories", "benchmarks/results/strategies/ar3po_opt1_seed*.jsonl", "Glob of AR3PO run histories.")
_PROMPT_SLOTS = flags.DEFINE_integer("prompt_slots", 16, "Prompt slots of the timed batches (the embedded prompts fit 16).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed updates per bucket; the median is kept.")
_BUCKETS = flags.DEFINE_list("buckets", [], "Row counts to time; empty: every bucket of the tiny AR3PO config.")
_TIMING = flags.DEFINE_bool("timing", True, "Time the update (part 1); --notiming keeps the timings already in --out.")
_OUT = flags.DEFINE_string("out", "", "Write the results as JSON here.")


def random_batch(rows: int, prompt_slots: int, response_slots: int, vocab: int, group: int, rng: np.random.Generator) -> dict:
  """A full batch in the layout of `batching.pack_update_batch`: left-padded prompts of 60-100%
  of the slots, right-padded responses of 20-100%, binary rewards, groups of `group` rows."""
  T = prompt_slots + response_slots
  tokens = rng.integers(2, vocab, (rows, T)).astype(np.int32)
  prompt_len = rng.integers(int(0.6 * prompt_slots), prompt_slots + 1, rows)
  response_len = rng.integers(max(1, response_slots // 5), response_slots + 1, rows)
  cols = np.arange(T)
  mask = (cols[None] >= prompt_slots - prompt_len[:, None]) & (cols[None] < prompt_slots + response_len[:, None])
  tokens = np.where(mask, tokens, 0)
  old_logp = np.where(mask[:, prompt_slots:], -rng.uniform(0.1, 3.0, (rows, response_slots)), 0.0).astype(np.float32)
  return {
      "tokens_BxT": tokens,
      "mask_BxT": mask,
      "old_logp_BxTr": old_logp,
      "ref_logp_BxTr": np.zeros_like(old_logp),
      "rewards_B": rng.integers(0, 2, rows).astype(np.float32),
      "group_ids_B": (np.arange(rows) // group).astype(np.int32),
      "row_valid_B": np.ones(rows, bool),
      "train_row_B": np.ones(rows, bool),
      "posterior_mean_B": np.full(rows, 0.5, np.float32),
      "use_posterior_B": np.zeros(rows, bool),
  }


def time_update(config, rows_list: list[int], prompt_slots: int, repeats: int) -> tuple[list[dict], int]:
  from ar3po_jax.models.transformer import ModelConfig, Transformer, init_params
  from ar3po_jax.update import UpdateSettings, init_train_state, jit_update, make_optimizer, make_update_fn

  model_config = ModelConfig.from_config(config.model, config.tokenizer.vocab_size)
  model = Transformer(model_config)
  optimizer = make_optimizer(config.rl.lr, config.rl.weight_decay, config.rl.grad_clip)
  update = jit_update(make_update_fn(model, optimizer, UpdateSettings.from_config(config.rl, config.rollout.temperature)))
  state = init_train_state(init_params(model_config, jax.random.key(0)), optimizer)
  rng = np.random.default_rng(0)
  group = config.rollout.ar3po.stages * config.rollout.ar3po.k
  out = []
  for rows in rows_list:
    batch = random_batch(rows, prompt_slots, config.rollout.max_new_tokens, model_config.vocab_size, group, rng)
    start = time.perf_counter()
    state, metrics = update(state, batch)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      state, metrics = update(state, batch)
      jax.block_until_ready(metrics)
      times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    slots = batch["mask_BxT"].size
    real = int(batch["mask_BxT"].sum())
    out.append(
        {
            "rows": rows,
            "tokens_per_row": batch["mask_BxT"].shape[1],
            "seconds": seconds,
            "compile_s": max(first - seconds, 0.0),
            "slot_tokens_per_s": slots / seconds,
            "real_tokens_per_s": real / seconds,
            "flops_per_s": 6 * model_config.num_params * slots / seconds,
        }
    )
    print(
        f"rows {rows:4d}: {seconds * 1e3:7.1f} ms  {slots / seconds:9.0f} slot tok/s  {real / seconds:9.0f} real tok/s  compile {out[-1]['compile_s']:.1f} s",
        flush=True,
    )
  return out, model_config.num_params


def run_padding(pattern: str) -> dict:
  """Padding efficiency and compiled variants of every AR3PO history matching `pattern`."""
  per_run = {}
  for path in sorted(glob.glob(pattern)):
    with open(path) as f:
      steps = [r for r in map(json.loads, f) if r.get("train/row_bucket")]
    if not steps:
      continue
    efficiency = np.array([r["train/padding_efficiency"] for r in steps])
    row_fill = np.array([r["train/rows"] / r["train/row_bucket"] for r in steps])
    per_run[os.path.basename(path)] = {
        "steps": len(steps),
        "padding_efficiency": float(efficiency.mean()),
        "padding_efficiency_min": float(efficiency.min()),
        "row_fill": float(row_fill.mean()),
        "slot_fill": float((efficiency / row_fill).mean()),
        "compiled_variants": int(max(r["train/compiled_variants"] for r in steps)),
        "row_buckets_used": sorted({int(r["train/row_bucket"]) for r in steps}),
        "response_slots_used": sorted({int(r["train/response_slots"]) for r in steps if "train/response_slots" in r}),
    }
  if not per_run:
    return {"runs": {}}
  mean = lambda key: float(np.mean([r[key] for r in per_run.values()]))
  return {
      "runs": per_run,
      "padding_efficiency": mean("padding_efficiency"),
      "row_fill": mean("row_fill"),
      "slot_fill": mean("slot_fill"),
      "compiled_variants_max": max(r["compiled_variants"] for r in per_run.values()),
  }


def table(report: dict) -> str:
  """The Markdown table BENCHMARKS.md shows."""
  lines = ["| rows x tokens | update (ms) | slot tokens/s | real tokens/s | % of matmul peak | compile (s) |", "|---|---|---|---|---|---|"]
  for r in report["update"]:
    lines.append(
        f"| {r['rows']} x {r['tokens_per_row']} | {1e3 * r['seconds']:.0f} | {r['slot_tokens_per_s']:,.0f} | {r['real_tokens_per_s']:,.0f} |"
        f" {100 * r['fraction_of_peak']:.0f}% | {r['compile_s']:.1f} |"
    )
  return "\n".join(lines)


def main(_):
  from ar3po_jax import batching, config_validation, train
  from configs import tiny

  config = config_validation.resolve(tiny.get_config("ar3po"))
  max_rows = train.max_rows_per_step(config.rollout)
  granule = batching.row_bucket(1, max_rows, config.rl.row_buckets)
  rows_list = [int(b) for b in _BUCKETS.value] or list(range(granule, max_rows + granule, granule))[: config.rl.row_buckets]
  if _TIMING.value:
    info = machine.describe()
    print(f"machine: {info}")
    peak = machine.matmul_peak_flops()
    print(f"float32 matmul peak (2048^3): {peak / 1e9:.1f} GFLOP/s")
    timings, num_params = time_update(config, rows_list, _PROMPT_SLOTS.value, _REPEATS.value)
    for row in timings:
      row["fraction_of_peak"] = row["flops_per_s"] / peak
    report = {"machine": info, "matmul_peak_flops": peak, "num_params": num_params, "update": timings}
  else:
    with open(_OUT.value) as f:
      report = json.load(f)
  report["padding"] = padding = run_padding(_HISTORIES.value)
  print(table(report))
  print(json.dumps({k: v for k, v in padding.items() if k != "runs"}, indent=1))
  if _OUT.value:
    machine.write_report(_OUT.value, report)


if __name__ == "__main__":
  app.run(main)
