r"""Trains a policy by RL with verifiable rewards.

  python -m ar3po_jax.main                                   # the embedded tiny default
  python -m ar3po_jax.main --config=configs/tiny.py:grpo --workdir=/tmp/run --config.rl.lr=1e-4

See configs/tiny.py for what to expect and every field.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "tiny.py")
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Config file, optionally with ':arg' (the strategy).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where metrics, caches and plots go (default: config.workdir, else ./workdir/tiny_<strategy>).")
FLAGS = flags.FLAGS


def _log(message: str) -> None:
  print(message, flush=True)


def resolve_workdir(config, flag_value: str | None) -> str:
  workdir = flag_value or config.workdir or os.path.join("workdir", f"tiny_{config.rollout.strategy}")
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_test")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise SystemExit(f"workdir {workdir!r} cannot be written: {e}") from e
  return workdir


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from ar3po_jax import config_validation

  config = FLAGS.config
  try:
    config_validation.validate(config)
  except config_validation.ConfigError as e:
    raise SystemExit(str(e)) from e
  workdir = resolve_workdir(config, FLAGS.workdir)

  import jax

  jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "cache", "jax"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from ar3po_jax import embedded, real, train

  _log(f"ar3po_jax: strategy {config.rollout.strategy}, workdir {workdir}, devices {jax.devices()}")
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=1))
  prepared = (embedded if config.task.name == "arithmetic" else real).prepare(config, workdir, _log)
  train.run(config, workdir, prepared, _log)
  _log(f"metrics: {os.path.join(workdir, 'metrics.jsonl')}  plot: {os.path.join(workdir, 'accuracy_vs_responses.png')}")


if __name__ == "__main__":
  app.run(main)
