r"""The replay-buffer sweep of issue 15: AR3PO on the embedded task at several
`rollout.buffer.per_prompt` / `total` settings (and reuse off), several seeds each, then the buffer-size
analysis of `ar3po_jax.analyze` over the run folders.

  .venv/bin/python -m benchmarks.buffer_sweep --steps=60 --seeds=0,1,2 --workdir=/tmp/ar3po_bench \
      [--variants=ar3po_buf0,ar3po_buf1,ar3po_buf4] [--mix=hard] [--override=FIELD=VALUE] [--aggregate_only]

The runs are `benchmarks.strategies` runs of its BUFFER_VARIANTS (same warm starts, caches, skipping of
finished runs, results histories and strategy table in RESULTS, default benchmarks/results/buffer_sweep
or RESULTS_<mix>); the analysis (`buffer_sweep.json` and `.png`: final accuracy, mean all-wrong
fraction and responses per prompt per buffer setting, mean and std over seeds) goes to RESULTS/analysis.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

from benchmarks import strategies


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
  p = argparse.ArgumentParser(prog="python -m benchmarks.buffer_sweep", description=__doc__.split("\n\n")[0])
  p.add_argument(
      "--variants", default=",".join(strategies.BUFFER_VARIANTS),
      help=f"Comma-separated, from {list(strategies.BUFFER_VARIANTS)}.",
  )
  p.add_argument("--results", default="benchmarks/results/buffer_sweep", help="Histories, table and analysis.")
  p.add_argument("--preset", "--mix", dest="mix", default="", choices=strategies.MIXES,
                 help="Preset of configs/tiny.py (a task mix or a training setting); empty: none.")
  args, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
  unknown = sorted(set(v for v in args.variants.split(",") if v) - set(strategies.BUFFER_VARIANTS))
  if unknown:
    p.error(f"unknown buffer variants {unknown}; choose from {list(strategies.BUFFER_VARIANTS)}")
  return args, rest


def finished_runs(results: str) -> list[tuple[str, int]]:
  """(variant, seed) of every buffer variant whose history RESULTS holds."""
  out = []
  for path in sorted(glob.glob(os.path.join(results, "*_seed*.jsonl"))):
    variant, _, seed = os.path.basename(path)[: -len(".jsonl")].rpartition("_seed")
    if variant in strategies.BUFFER_VARIANTS and seed.isdigit():
      out.append((variant, int(seed)))
  return out


def main(argv=None) -> None:
  args, rest = parse_args(argv)
  results = f"{args.results}_{args.mix}" if args.mix else args.results
  forwarded = [f"--variants={args.variants}", f"--results={results}", f"--mix={args.mix}", *rest]
  strategies.main(forwarded)
  run_args = strategies.parse_args(forwarded)
  # Every finished buffer run in RESULTS, not only this call's variants: the analysis is rewritten each
  # time and must not drop the settings run by earlier calls. A run is finished once its history is in
  # RESULTS (strategies writes it last).
  done = [
      strategies.run_folder(run_args.workdir, v, s, run_args.mix)
      for v, s in finished_runs(results)
      if os.path.isdir(strategies.run_folder(run_args.workdir, v, s, run_args.mix))
  ]
  if not done:
    print("no finished runs to analyse")
    return
  from ar3po_jax import analyze

  analyze.main([f"--sweep={','.join(done)}", f"--out={os.path.join(results, 'analysis')}"])


if __name__ == "__main__":
  main()
