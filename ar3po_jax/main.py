r"""Trains a policy by RL with verifiable rewards.

  python -m ar3po_jax.main                                   # the embedded tiny default
  python -m ar3po_jax.main --config=configs/tiny.py:grpo --workdir=/tmp/run --config.rl.lr=1e-4

Several processes run the same command (see `distributed`): on a TPU pod every worker adds
--distributed; elsewhere give --coordinator_address=HOST:PORT --num_processes=N --process_id=I (or
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID); launch/local_multiprocess.sh does
this on one machine.

See configs/tiny.py for what to expect and every field.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "tiny.py")
config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Config file, optionally with ':arg' (the strategy).", lock_config=True)
flags.DEFINE_string("workdir", None, "Where metrics, caches and plots go (default: config.workdir, else ./workdir/tiny_<strategy>).")
flags.DEFINE_string("coordinator_address", None, "Multi-process: HOST:PORT of process 0's coordinator.")
flags.DEFINE_integer("num_processes", None, "Multi-process: how many processes run this command.")
flags.DEFINE_integer("process_id", None, "Multi-process: this process's index, 0 to num_processes - 1.")
flags.DEFINE_bool("distributed", False, "Multi-process with peers found by JAX itself (TPU pod workers, SLURM).")
FLAGS = flags.FLAGS


def _log(message: str) -> None:
  print(message, flush=True)


def resolve_workdir(config, flag_value: str | None) -> str:
  workdir = flag_value or config.workdir or os.path.join("workdir", f"tiny_{config.rollout.strategy}")
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test_{os.getpid()}")  # processes sharing a workdir each probe their own
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise SystemExit(f"workdir {workdir!r} cannot be written: {e}") from e
  return workdir


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # orbax logs every checkpoint file at INFO through absl; the progress bar and metrics say what matters.
  logging.set_verbosity(logging.WARNING)
  from ar3po_jax import config_validation

  config = FLAGS.config
  try:
    config_validation.validate(config)
  except config_validation.ConfigError as e:
    raise SystemExit(str(e)) from e
  workdir = resolve_workdir(config, FLAGS.workdir)

  import jax

  from ar3po_jax import distributed

  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, auto=FLAGS.distributed)
  jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "cache", "jax"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from ar3po_jax import checkpoint, embedded, real, train

  mesh_problems = config_validation.mesh_problems(config.mesh, jax.device_count())
  if mesh_problems:
    raise SystemExit("invalid config:\n  - " + "\n  - ".join(mesh_problems))
  _log(f"ar3po_jax: strategy {config.rollout.strategy}, workdir {workdir}, process {jax.process_index()} of {jax.process_count()}, devices {jax.devices()}")
  if distributed.is_leader():
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=1))
  prepared = _prepare(config, workdir, embedded, real)
  try:
    train.run(config, workdir, prepared, _log)
  except checkpoint.ResumeError as e:
    raise SystemExit(str(e)) from e
  _log(f"metrics: {os.path.join(workdir, 'metrics.jsonl')}  plot: {os.path.join(workdir, 'accuracy_vs_responses.png')}")


def _prepare(config, workdir, embedded, real):
  """Every process's copy of the prepared run, identical on all of them."""
  from ar3po_jax import distributed

  if config.task.name == "arithmetic_chat":
    from ar3po_jax.tasks import arithmetic_chat

    return arithmetic_chat.prepare(config, workdir, _log)
  if config.task.name != "arithmetic":
    return real.prepare(config, workdir, _log)  # collective: each host loads its own parameter shards
  # Process 0 builds the cached tokenizer and warm start first, so that processes sharing a disk read
  # them rather than race to write them; its parameters then win, whatever each host computed.
  prepared = distributed.leader_first(lambda: embedded.prepare(config, workdir, _log), "embedded.prepare")
  prepared.params = distributed.broadcast(prepared.params)
  distributed.check_same_on_all_hosts([p.token_ids for p in prepared.train_prompts + prepared.eval_prompts], "the tokenized prompts")
  return prepared


if __name__ == "__main__":
  app.run(main)
