r"""Evaluates a Hugging Face checkpoint on math benchmarks: k samples per problem, verified, reported
as avg@k and pass@k in a JSON report and a printed table.

  python -m ar3po_jax.eval --config=configs/eval.py:math500,aime24,amc23 --checkpoint=/ckpt/Qwen2.5-7B

See configs/eval.py for every field and `ar3po_jax.evaluation.benchmarks` for the report. Flags are
defined only when this module runs as the program, so importing it next to `main` or `simulate`
defines nothing twice.
"""

from __future__ import annotations

import os

from absl import app, flags
from ml_collections import config_flags

from ar3po_jax.evaluation.benchmarks import run

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "eval.py")


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Eval config, optionally with ':benchmark,benchmark'.", lock_config=True)
  flags.DEFINE_string("checkpoint", None, "Hugging Face checkpoint folder (overrides config.checkpoint).")
  flags.DEFINE_string("output", None, "Report path (default: config.output, else <checkpoint>/eval_report.json).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  FLAGS = flags.FLAGS
  run(FLAGS.config, FLAGS.checkpoint, FLAGS.output, lambda m: print(m, flush=True))


__all__ = ["run"]

if __name__ == "__main__":
  define_flags()
  app.run(main)
