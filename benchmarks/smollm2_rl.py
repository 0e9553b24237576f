r"""GRPO against AR3PO on a real pretrained model (issue 12): the same `configs/hf.py` run for each
strategy, one after the other so neither shares the machine with the other, then one table.

  python scripts/smollm2_hf.py --out /tmp/smollm2_hf
  python -m benchmarks.smollm2_rl --checkpoint=/tmp/smollm2_hf --steps=5 --workdir=/tmp/smolcmp
  python -m benchmarks.smollm2_rl --workdir=/tmp/smolcmp --summarize_only     # the table again

Each run is `python -m ar3po_jax.main --config=configs/hf.py:STRATEGY,TASK` with the flags of
`run_flags` (printed before it starts): `rl.mini_batches` optimizer steps a rollout batch, a
held-out evaluation at step 0 and after the last step (greedy `eval/accuracy`, and `eval.samples`
samples a prompt at the task's temperature: `eval/<set>/avg@k`; also every `--eval_every` steps), no
checkpoints. On a GPU pass
more `--steps`; the flags are the same.

Reported per strategy (benchmarks/results/smollm2_rl.json and a markdown table on stdout): held-out
accuracy before and after, responses per prompt (mean over steps), trained rows, the clip fraction of
the last mini-batch and the sampler/trainer log-prob mismatch (max over steps), and the wall-clock:
training seconds (the steps' `time/step_s` less their evaluations), its sampling and update shares,
and the evaluations' seconds apart. The first update's seconds
include its compile; `first_update_s` is listed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from ar3po_jax import analyze

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_flags(strategy: str, task: str, checkpoint: str, workdir: str, steps: int, mini_batches: int,
              eval_samples: int, overrides: list[str], eval_every: int = 0) -> list[str]:
  return [
      f"--config=configs/hf.py:{strategy},{task}", f"--config.model.hf_path={checkpoint}", f"--workdir={workdir}",
      f"--config.rl.steps={steps}", f"--config.rl.mini_batches={mini_batches}",
      f"--config.eval.every={eval_every or steps}", f"--config.eval.samples={eval_samples}",
      "--config.checkpoint.enabled=False", "--config.model.export_every=0", "--config.log.progress=False",
      *[f"--config.{o}" for o in overrides],
  ]


def _records(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no metrics; did the run start?")
  return analyze.read_jsonl(path)  # a run stopped mid-write still summarizes


def _mean(values) -> float | None:
  values = [v for v in values if v is not None]
  return sum(values) / len(values) if values else None


def summarize(workdir: str) -> dict:
  """One run's row of the table, from its metrics.jsonl (eval records and step records)."""
  records = _records(workdir)
  evals = [r for r in records if r.get("eval/accuracy") is not None]
  steps = [r for r in records if r.get("time/step_s") is not None]
  if not evals or not steps:
    raise ValueError(f"{workdir}: {len(evals)} evaluations and {len(steps)} training steps; need both")
  sampled = sorted(k for k in evals[0] if k.startswith("eval/") and "/avg@" in k)
  row = {
      "steps": len(steps),
      "eval_steps": [r["step"] for r in evals],
      "accuracy": [r["eval/accuracy"] for r in evals],
      **{k: [r.get(k) for r in evals] for k in sampled},
      "responses_per_prompt": _mean(r.get("rollout/responses_per_prompt") for r in steps),
      "responses": steps[-1].get("rollout/cum_responses"),
      "trained_rows_per_step": _mean(r.get("train/rows") for r in steps),
      "reward_mean": [r.get("rollout/reward_mean") for r in steps],
      "clip_frac_last": [r.get("train/clip_frac_last") for r in steps],
      "logprob_mismatch_max": max((r.get("train/logprob_mismatch_max") or 0.0) for r in steps),
      "rl_s": sum(r["time/step_s"] for r in steps),
      "eval_s": sum(_eval_seconds(r) for r in steps if r.get("eval/accuracy") is not None),
      "sample_s": sum(r.get("time/sample_s") or 0.0 for r in steps),
      "update_s": sum(r.get("time/update_s") or 0.0 for r in steps),
      "first_update_s": steps[0].get("time/update_s"),
      "compiled_variants": steps[-1].get("train/compiled_variants"),
  }
  row["train_s"] = row["rl_s"] - row["eval_s"]
  return row


def _eval_seconds(record: dict) -> float:
  """A step's evaluation seconds: `time/eval_s`, or for runs from before it was logged, the step's time
  beyond its sampling, verifying and update (what else a step does is bookkeeping)."""
  if record.get("time/eval_s") is not None:
    return record["time/eval_s"]
  parts = sum(record.get(k) or 0.0 for k in ("time/sample_s", "time/verify_s", "time/update_s"))
  return max(record["time/step_s"] - parts, 0.0)


def table(rows: dict[str, dict]) -> str:
  def acc(values):
    return " → ".join(f"{v:.3f}" for v in values if v is not None)

  head = ("| strategy | steps | greedy accuracy | sampled accuracy | responses/prompt | trained rows/step "
          "| clip frac (last mini-batch) | max log-prob mismatch | training s (sample, update) | eval s |")
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  for name, r in rows.items():
    sampled = next((r[k] for k in r if "/avg@" in k), [])
    clips = ", ".join(f"{c:.3f}" for c in r["clip_frac_last"] if c is not None)
    lines.append(
        f"| {name} | {r['steps']} | {acc(r['accuracy'])} | {acc(sampled)} | {r['responses_per_prompt']:.2f} "
        f"| {r['trained_rows_per_step']:.1f} | {clips} | {r['logprob_mismatch_max']:.1e} "
        f"| {r['train_s']:.0f} ({r['sample_s']:.0f}, {r['update_s']:.0f}) | {r['eval_s']:.0f} |")
  return "\n".join(lines)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(prog="python -m benchmarks.smollm2_rl", description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", default="", help="Local HF folder (scripts/smollm2_hf.py makes SmolLM2's).")
  p.add_argument("--strategies", default="grpo,ar3po", help="Comma-separated, run in this order.")
  p.add_argument("--task", default="arithmetic_chat", help="The task of configs/hf.py.")
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--mini_batches", type=int, default=4)
  p.add_argument("--eval_every", type=int, default=0, help="0: only before the first step and after the last.")
  p.add_argument("--eval_samples", type=int, default=4)
  p.add_argument("--workdir", default="/tmp/smollm2_rl", help="One run folder per strategy inside it.")
  p.add_argument("--override", action="append", default=[], help="FIELD=VALUE for both runs; repeatable.")
  p.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "smollm2_rl.json"))
  p.add_argument("--summarize_only", action="store_true", help="Run nothing; summarize the run folders.")
  args = p.parse_args(argv)
  strategies = [s for s in args.strategies.split(",") if s]
  commands = {}
  for s in strategies:
    workdir = os.path.join(args.workdir, s)
    flags = run_flags(s, args.task, args.checkpoint, workdir, args.steps, args.mini_batches, args.eval_samples,
                      args.override, args.eval_every)
    commands[s] = " ".join(["python -m ar3po_jax.main", *flags])
    if args.summarize_only:
      continue
    if not args.checkpoint:
      p.error("--checkpoint is required unless --summarize_only")
    os.makedirs(workdir, exist_ok=True)
    print(commands[s], flush=True)
    start = time.time()
    with open(os.path.join(args.workdir, f"{s}.log"), "w") as log:
      rc = subprocess.run([sys.executable, "-m", "ar3po_jax.main", *flags], cwd=REPO, stdout=log,
                          stderr=subprocess.STDOUT).returncode
    print(f"{s}: exit {rc} after {time.time() - start:.0f} s (log {args.workdir}/{s}.log)", flush=True)
    if rc != 0:
      sys.exit(f"{s} failed; see its log")
  rows = {s: summarize(os.path.join(args.workdir, s)) for s in strategies}
  report = {"commands": commands, "runs": rows, "date": time.strftime("%Y-%m-%d")}
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(report, f, indent=1)
  print(table(rows))
  print(f"wrote {args.output}")


if __name__ == "__main__":
  main()
