"""launch/tpu_pod.sh --dry_run: the whole command sequence for a v4-32 and a v5e-64 slice."""

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


def _flag(argv: list[str], name: str) -> str:
  values = [a.split("=", 1)[1] for a in argv if a.startswith(name + "=")]
  assert len(values) == 1, (name, argv)
  return values[0]


def _ssh(argv: list[str]) -> tuple[str, str]:
  assert argv[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"], argv
  return _flag(argv, "--worker"), _flag(argv, "--command")


@pytest.mark.parametrize(
    "accelerator, gcloud_type, runtime, zone",
    [("v4-32", "v4-32", "tpu-ubuntu2204-base", "us-central2-b"), ("v5e-64", "v5litepod-64", "v2-alpha-tpuv5-lite", "us-west4-a")],
)
def test_dry_run_prints_the_whole_sequence(accelerator, gcloud_type, runtime, zone):
  commands = _dry_run(
      "--tpu_name=ar3po-test", f"--accelerator_type={accelerator}", "--project=my-project", "--config=configs/paper.py:ar3po",
      "--results=gs://bucket/run", "--", "--config.rl.steps=5",
  )
  create, tar, scp, unpack, install, start, follow, results, delete = commands

  assert create[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "ar3po-test"]
  assert _flag(create, "--accelerator-type") == gcloud_type and _flag(create, "--version") == runtime
  for argv in (create, scp, unpack, install, start, follow, results, delete):
    assert _flag(argv, "--zone") == zone and _flag(argv, "--project") == "my-project"

  assert tar[:2] == ["tar", "-czf"] and tar[2].endswith(".tgz") and "--exclude=.git" in tar
  assert scp[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "scp"] and scp[5] == tar[2] and _flag(scp, "--worker") == "all"
  worker, command = _ssh(unpack)
  assert worker == "all" and "tar -xzf" in command

  worker, command = _ssh(install)
  with open(os.path.join(REPO, "requirements.txt")) as f:
    jax_pin = next(line.split("==")[1].strip() for line in f if line.startswith("jax=="))
  assert worker == "all" and "pip install" in command and "-r ~/ar3po_jax/requirements.txt" in command
  assert f"'jax[tpu]=={jax_pin}'" in command and "python3.11" in command

  worker, command = _ssh(start)
  assert worker == "all"
  assert "python -m ar3po_jax.main --distributed --config=configs/paper.py:ar3po --workdir=/tmp/ar3po_workdir --config.rl.steps=5" in command
  assert "> ~/ar3po_run.log" in command and "echo $? > ~/ar3po_run.rc" in command

  worker, command = _ssh(follow)
  assert worker == "0" and "tail" in command and "~/ar3po_run.log" in command and "exit $(cat ~/ar3po_run.rc)" in command
  worker, command = _ssh(results)
  assert worker == "0" and command == "gcloud storage cp -r /tmp/ar3po_workdir gs://bucket/run"
  assert delete[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "ar3po-test"] and "--quiet" in delete


def test_dry_run_with_repo_clones_instead_of_copying():
  commands = _dry_run("--tpu_name=t", "--accelerator_type=v4-32", "--repo=https://example.com/ar3po_jax.git", "--branch=main", "--keep", "--spot")
  assert "--spot" in commands[0]
  worker, command = _ssh(commands[1])
  assert worker == "all" and "git clone --depth=1 --branch=main https://example.com/ar3po_jax.git ~/ar3po_jax" in command
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
    ],
)
def test_bad_flags_fail_before_any_command(args, message):
  result = subprocess.run(["bash", SCRIPT, "--dry_run", *args], capture_output=True, text=True, timeout=60)
  assert result.returncode == 2 and message in result.stderr and not result.stdout
