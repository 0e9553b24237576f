"""launch/tpu_pod.sh: --help, its own documented example, and --dry_run's whole command sequence for a
v4-32 and a v5e-64 slice."""

import importlib.util
import os
import shlex
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "launch", "tpu_pod.sh")


def _dry_run(*args: str) -> list[list[str]]:
  result = subprocess.run(["bash", SCRIPT, "--dry_run", *args], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def _help() -> str:
  result = subprocess.run(["bash", SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
  assert result.returncode == 0 and not result.stderr, result.stderr
  return result.stdout


def _documented_examples() -> list[list[str]]:
  """The commands the usage text shows, continuation lines joined, comments dropped."""
  text = _help().replace("\\\n", " ")
  lines = [line.split("#")[0].strip() for line in text.splitlines() if line.strip().startswith("launch/tpu_pod.sh")]
  return [shlex.split(line)[1:] for line in lines]


def test_help_prints_the_usage_and_runs_nothing():
  text = _help()
  assert "--checkpoint" in text and "--data" in text and "--dry_run" in text and "-h, --help" in text
  assert not any(line.startswith("+ ") for line in text.splitlines())
  assert subprocess.run(["bash", SCRIPT, "-h"], capture_output=True, text=True, timeout=60).stdout == text


def test_the_documented_examples_dry_run():
  examples = _documented_examples()
  assert len(examples) == 2
  for args in examples:
    commands = _dry_run(*[a for a in args if a != "--dry_run"])
    assert commands[0][4] == "create" and commands[-1][4] == "delete"
  # The first example: a paper config with an argument its get_config accepts, and staging.
  args = examples[0]
  config_file, _, config_arg = _flag(args, "--config").partition(":")
  spec = importlib.util.spec_from_file_location("_documented_config", os.path.join(REPO, config_file))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert module.get_config(config_arg).model.checkpoint == ""  # a valid argument; the flag fills the field
  commands = _dry_run(*args)
  staged = {}
  for argv in commands:
    if argv[4] == "ssh" and "gcloud storage cp -r gs://" in _flag(argv, "--command"):
      worker, command = _ssh(argv)
      assert worker == "all"
      staged[command.split()[-1]] = command
  assert set(staged) == {"~/ar3po_checkpoint/", "~/ar3po_data/"}
  assert f"{_flag(args, '--checkpoint')}/'*'" in staged["~/ar3po_checkpoint/"]
  assert f"{_flag(args, '--data')}/'*'" in staged["~/ar3po_data/"]
  starts = [_ssh(argv)[1] for argv in commands if argv[4] == "ssh" and "ar3po_jax.main" in _flag(argv, "--command")]
  assert len(starts) == 1
  assert "AR3PO_DATA_ROOT=$HOME/ar3po_data ~/venv/bin/python -m ar3po_jax.main --distributed" in starts[0]
  assert "--config.model.checkpoint=$HOME/ar3po_checkpoint --config.rl.steps=500" in starts[0]
  steps = []
  for argv in commands:
    command = _flag(argv, "--command") if argv[4] == "ssh" else ""
    markers = (("install", "pip install"), ("stage", "gcloud storage cp -r gs://"), ("start", "ar3po_jax.main"))
    for step, marker in markers:
      if marker in command:
        steps.append(step)
  assert steps == ["install", "stage", "stage", "start"]  # staged after the install, before the run


def test_local_checkpoint_and_data_are_copied_with_scp(tmp_path):
  (tmp_path / "ckpt").mkdir()
  (tmp_path / "data").mkdir()
  ckpt, data = tmp_path / "ckpt", tmp_path / "data"
  commands = _dry_run("--tpu_name=t", "--accelerator_type=v4-32", f"--checkpoint={ckpt}/", f"--data={data}")
  copies = [argv for argv in commands if argv[4] == "scp" and "--recurse" in argv]
  assert [argv[6:8] for argv in copies] == [[str(ckpt), "t:ar3po_checkpoint"], [str(data), "t:ar3po_data"]]
  assert all(_flag(argv, "--worker") == "all" for argv in copies)


def _flag(argv: list[str], name: str) -> str:
  values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
  assert len(values) == 1, (name, argv)
  return values[0]


def _ssh(argv: list[str]) -> tuple[str, str]:
  assert argv[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"], argv
  return _flag(argv, "--worker"), _flag(argv, "--command")


@pytest.mark.parametrize(
    "accelerator, gcloud_type, runtime, zone",
    [
        ("v4-32", "v4-32", "tpu-ubuntu2204-base", "us-central2-b"),
        ("v5e-64", "v5litepod-64", "v2-alpha-tpuv5-lite", "us-west4-a"),
    ],
)
def test_dry_run_prints_the_whole_sequence(accelerator, gcloud_type, runtime, zone):
  commands = _dry_run(
      "--tpu_name=ar3po-test", f"--accelerator_type={accelerator}", "--project=my-project",
      "--config=configs/paper.py:ar3po",
      "--results=gs://bucket/run", "--", "--config.rl.steps=5",
  )
  create, tar, scp, unpack, install, start, follow, results, delete = commands

  assert create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "ar3po-test"]
  assert _flag(create, "--accelerator-type") == gcloud_type and _flag(create, "--version") == runtime
  for argv in (create, scp, unpack, install, start, follow, results, delete):
    assert _flag(argv, "--zone") == zone and _flag(argv, "--project") == "my-project"

  assert tar[:2] == ["tar", "-czf"] and tar[2].endswith(".tgz") and "--exclude=.git" in tar
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and scp[5] == tar[2]
  assert _flag(scp, "--worker") == "all"
  worker, command = _ssh(unpack)
  assert worker == "all" and "tar -xzf" in command

  worker, command = _ssh(install)
  with open(os.path.join(REPO, "requirements.txt")) as f:
    jax_pin = next(line.split("==")[1].strip() for line in f if line.startswith("jax=="))
  assert worker == "all" and "pip install" in command and "-r ~/ar3po_jax/requirements.txt" in command
  assert f"'jax[tpu]=={jax_pin}'" in command and "python3.11" in command

  worker, command = _ssh(start)
  assert worker == "all"
  main = "python -m ar3po_jax.main --distributed --config=configs/paper.py:ar3po --workdir=/tmp/ar3po_workdir"
  assert f"{main} --config.rl.steps=5" in command
  assert "> ~/ar3po_run.log" in command and "echo $? > ~/ar3po_run.rc" in command

  worker, command = _ssh(follow)
  assert worker == "0" and "tail" in command and "~/ar3po_run.log" in command
  assert "exit $(cat ~/ar3po_run.rc)" in command
  worker, command = _ssh(results)
  assert worker == "0" and command == "gcloud storage cp -r /tmp/ar3po_workdir gs://bucket/run"
  assert delete[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "ar3po-test"] and "--quiet" in delete


def test_dry_run_with_repo_clones_instead_of_copying():
  repo = "https://example.com/ar3po_jax.git"
  commands = _dry_run("--tpu_name=t", "--accelerator_type=v4-32", f"--repo={repo}", "--branch=main", "--keep", "--spot")
  assert "--spot" in commands[0]
  worker, command = _ssh(commands[1])
  assert worker == "all" and f"git clone --depth=1 --branch=main {repo} ~/ar3po_jax" in command
  assert not any(argv[0] == "tar" for argv in commands)
  assert commands[-1][4] != "delete"  # --keep


@pytest.mark.parametrize(
    "args, message",
    [
        (["--accelerator_type=v4-32"], "--tpu_name is required"),
        (["--tpu_name=t", "--accelerator_type=v3-8"], "unsupported accelerator type"),
        (["--tpu_name=t", "--accelerator_type=v5p-64"], "--zone is required"),
        (["--tpu_name=t", "--accelerator_type=v4-32", "--results=/local"], "gs://"),
        (["--tpu_name=t", "--accelerator_type=v4-32", "--bogus=1"], "unknown flag"),
        (["--tpu_name=t", "--accelerator_type=v4-32", "--data=/no/such/folder"], "neither"),
    ],
)
def test_bad_flags_fail_before_any_command(args, message):
  result = subprocess.run(["bash", SCRIPT, "--dry_run", *args], capture_output=True, text=True, timeout=60)
  assert result.returncode == 2 and message in result.stderr and not result.stdout
