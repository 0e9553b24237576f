r"""Trains a policy by RL with verifiable rewards.

  python -m ar3po_jax.main                                   # the embedded tiny default
  python -m ar3po_jax.main --config=configs/tiny.py:grpo --workdir=/tmp/run --config.rl.lr=1e-4

Several processes run the same command (see `distributed`): on a TPU pod every worker adds
--distributed; elsewhere give --coordinator_address=HOST:PORT --num_processes=N --process_id=I (or
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID); launch/local_multiprocess.sh does
this on one machine.

See configs/tiny.py for what to expect and configs/common.py for every field. The flow is one way:
flags -> config (strategy presets resolved, validated, printed) -> mesh -> the task's Setup
(`tasks.build_setup`, by config.task.name) -> the RL loop (`train.run`). Flags are defined only when
this module runs as the program, so importing it next to `simulate` or `eval` defines nothing twice.
"""

from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "tiny.py")
FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file(
      "config", _DEFAULT_CONFIG, "Config file, optionally with ':arg' (the strategy).", lock_config=True)
  flags.DEFINE_string(
      "workdir", None, "Where metrics, caches and plots go (default: config.workdir, else ./workdir/tiny_<strategy>).")
  flags.DEFINE_string("coordinator_address", None, "Multi-process: HOST:PORT of process 0's coordinator.")
  flags.DEFINE_integer("num_processes", None, "Multi-process: how many processes run this command.")
  flags.DEFINE_integer("process_id", None, "Multi-process: this process's index, 0 to num_processes - 1.")
  flags.DEFINE_bool("distributed", False, "Multi-process with peers found by JAX itself (TPU pod workers, SLURM).")


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

  # Flags -> config: the strategy's presets fill the fields left to it, then everything is checked.
  config = FLAGS.config
  try:
    config_validation.resolve(config)
    config_validation.validate(config)
  except config_validation.ConfigError as e:
    raise SystemExit(str(e)) from e
  workdir = resolve_workdir(config, FLAGS.workdir)

  import jax

  from ar3po_jax import distributed

  distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, auto=FLAGS.distributed)
  # Compiled programs persist beside the run, unless the environment names a cache for every run (JAX's own
  # variable, which this would otherwise override): the test suite shares one across its subprocess runs.
  jax.config.update("jax_compilation_cache_dir",
                    os.environ.get("JAX_COMPILATION_CACHE_DIR") or os.path.join(workdir, "cache", "jax"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from ar3po_jax import checkpoint, sharding, tasks, train, workdir_lock

  # One run per workdir (each process of a job locks its own index), taken before anything is written there.
  lock = workdir_lock.acquire(workdir, jax.process_index())  # noqa: F841 (held until the process ends)
  # Mesh.
  mesh_problems = config_validation.mesh_problems(config.mesh, jax.device_count())
  mesh_problems += config_validation.check_memory(config)
  if mesh_problems:
    raise SystemExit("invalid config:\n  - " + "\n  - ".join(mesh_problems))
  try:  # before the config is written and before any preparation: a refused resume costs seconds
    checkpoint.check_workdir_compatible(config, workdir)
  except checkpoint.ResumeError as e:
    raise SystemExit(str(e)) from e
  _log(f"ar3po_jax: strategy {config.rollout.strategy}, task {config.task.name}, workdir {workdir}, "
       f"process {jax.process_index()} of {jax.process_count()}, devices {jax.devices()}")
  if distributed.is_leader():
    _log("config (resolved):\n" + config.to_json_best_effort(indent=1))
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=1))
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)

  # The task's setup, then the loop.
  setup = tasks.build_setup(config, workdir, _log, mesh)
  try:
    train.run(config, workdir, setup, _log, mesh=mesh)
  except checkpoint.ResumeError as e:
    raise SystemExit(str(e)) from e
  _log(f"metrics: {os.path.join(workdir, 'metrics.jsonl')}  plot: {os.path.join(workdir, 'accuracy_vs_responses.png')}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
