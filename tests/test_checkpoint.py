"""Checkpoints: exact round trips, keep/every, half-written and corrupt checkpoints, run identity,
host state that resumes the same rollouts, metrics rewind and the SIGTERM flag."""

import errno
import glob
import json
import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from ar3po_jax import checkpoint, metrics
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.rollout.simulated import SimulatedSampler, make_prompts
from ar3po_jax.rewards import ExactVerifier
from ar3po_jax.update import init_train_state, make_optimizer
from configs import tiny
from tests.helpers import tiny_model

_, PARAMS = tiny_model(seed=3)


def _state(shift=0.0):
  state = init_train_state(PARAMS, make_optimizer(1e-3))
  return jax.tree.map(lambda x: x + shift if x.dtype == np.float32 else x, state)


def _host():
  return {
      "big": 2**100,  # PCG64 states are 128-bit integers
      "text": ["a", "b\n"],
      "empty": np.zeros([0], np.int32),  # an empty replay buffer; orbax's array handler refuses these
      "nested": {"f": np.arange(3, dtype=np.float32) / 3, "b": [np.array([True, False])]},
  }


def _assert_tree_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _assert_host_equal(a, b):
  assert json.dumps(checkpoint.split_arrays(a)[0], sort_keys=True) == json.dumps(checkpoint.split_arrays(b)[0], sort_keys=True)
  for x, y in zip(checkpoint.split_arrays(a)[1].values(), checkpoint.split_arrays(b)[1].values()):
    assert x.dtype == y.dtype
    np.testing.assert_array_equal(x, y)


def test_round_trip_is_exact_and_survives_donation(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), every=1, keep=2)
  state = _state()
  expected = jax.tree.map(np.array, state)
  assert ckpt.save(1, state, _host())
  # The next update donates the state while the save may still be writing.
  donate = jax.jit(lambda s: jax.tree.map(lambda x: x * 2, s), donate_argnums=0)
  donate(state)
  restored = ckpt.restore_latest(_state(5.0), log=lambda m: None)
  assert restored.step == 1
  _assert_tree_equal(restored.train_state, expected)
  _assert_host_equal(restored.host_state, _host())
  ckpt.close()


def test_every_and_keep(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), every=2, keep=2)
  saved = [step for step in range(1, 8) if ckpt.save(step, _state(step), {"step": step}, force=step == 7)]
  ckpt.wait()
  assert saved == [2, 4, 6, 7]
  assert sorted(int(n) for n in os.listdir(tmp_path) if n.isdigit()) == [6, 7]
  ckpt.close()


def _three_checkpoints(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), every=1, keep=5)
  for step in (1, 2, 3):
    ckpt.save(step, _state(step), {"step": step})
  ckpt.close()
  return checkpoint.Checkpointer(str(tmp_path), every=1, keep=5)


def test_truncated_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
  ckpt = _three_checkpoints(tmp_path)
  biggest = max(glob.glob(f"{tmp_path}/3/state/**/d/*", recursive=True), key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(10)
  messages = []
  restored = ckpt.restore_latest(_state(), log=messages.append)
  assert restored.step == 2 and restored.host_state == {"step": 2}
  _assert_tree_equal(restored.train_state, jax.tree.map(np.array, _state(2)))
  assert [m for m in messages if "step 3" in m] == [f"checkpoint: step 3 is damaged: {biggest} does not match the sha256 recorded when it was saved; trying the previous one"]
  # Moved aside, so the resumed run can write its own step 3.
  assert os.listdir(tmp_path / "unreadable")[0].startswith("3.")
  assert ckpt.save(3, _state(30), {"step": 30})
  ckpt.close()
  assert checkpoint.Checkpointer(str(tmp_path)).restore_latest(_state(), log=print).host_state == {"step": 30}


def test_truncated_checkpoint_without_checksums_falls_back_when_it_fails_to_read(tmp_path):
  ckpt = _three_checkpoints(tmp_path)
  os.remove(tmp_path / "3" / checkpoint.CHECKSUMS)  # as saved by a version without checksums
  biggest = max(glob.glob(f"{tmp_path}/3/state/**/d/*", recursive=True), key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(10)
  messages = []
  assert ckpt.restore_latest(_state(), log=messages.append).step == 2
  assert any("step 3 has no checksums.json" in m for m in messages)
  assert any("step 3 cannot be restored" in m for m in messages)


def _overwrite_middle(path, n, seed=0):
  """n random bytes written over the middle of a file, its size unchanged."""
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.seek(max(0, size // 2 - n // 2))
    f.write(np.random.default_rng(seed).bytes(min(n, size)))
  assert os.path.getsize(path) == size


def test_damaged_bytes_of_same_size_are_caught_by_the_checksums(tmp_path):
  ckpt = _three_checkpoints(tmp_path)
  recorded = json.loads((tmp_path / "3" / checkpoint.CHECKSUMS).read_text())["sha256"]
  assert any(name.startswith("state/") for name in recorded) and "arrays/arrays.npz" in recorded and "host/metadata" in recorded
  damaged = max(glob.glob(f"{tmp_path}/3/state/**/d/*", recursive=True), key=os.path.getsize)
  _overwrite_middle(damaged, 4096)
  messages = []
  restored = ckpt.restore_latest(_state(), log=messages.append)
  assert restored.step == 2
  _assert_tree_equal(restored.train_state, jax.tree.map(np.array, _state(2)))
  assert messages[0] == f"checkpoint: step 3 is damaged: {damaged} does not match the sha256 recorded when it was saved; trying the previous one"
  assert os.listdir(tmp_path / "unreadable")[0].startswith("3.")


def test_a_checkpoint_holding_non_finite_values_is_not_resumed(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path), every=1, keep=5)
  ckpt.save(1, _state(1), {"step": 1})
  poisoned = _state(2)
  poisoned = poisoned._replace(params=jax.tree.map(lambda x: x.at[0].set(np.nan) if x.ndim else x, poisoned.params))
  ckpt.save(2, poisoned, {"step": 2})
  ckpt.close()
  messages = []
  restored = checkpoint.Checkpointer(str(tmp_path)).restore_latest(_state(), log=messages.append)
  assert restored.step == 1
  assert messages[0].startswith("checkpoint: step 2 holds non-finite values in .params[") and messages[0].endswith("trying the previous one")


def test_step_folder_without_commit_marker_is_skipped(tmp_path):
  ckpt = _three_checkpoints(tmp_path)
  os.remove(tmp_path / "3" / checkpoint.COMMIT_MARKER)
  messages = []
  assert ckpt.restore_latest(_state(), log=messages.append).step == 2
  assert any("step 3 has no commit_success.txt" in m for m in messages)


def test_leftover_tmp_folder_of_a_killed_save_is_ignored(tmp_path):
  _three_checkpoints(tmp_path).close()
  os.makedirs(tmp_path / "4.orbax-checkpoint-tmp" / "state")
  (tmp_path / "4.orbax-checkpoint-tmp" / "state" / "junk").write_bytes(b"\0" * 100)
  ckpt = checkpoint.Checkpointer(str(tmp_path), every=1, keep=5)
  assert ckpt.restore_latest(_state(), log=lambda m: None).step == 3
  assert ckpt.save(4, _state(4), {"step": 4})
  ckpt.close()


def test_no_checkpoint_restores_nothing(tmp_path):
  assert checkpoint.Checkpointer(str(tmp_path)).restore_latest(_state(), log=print) is None


class _Tok:
  path = ""


def test_identity_names_every_changed_field_and_allows_resumable_ones(tmp_path):
  base = tiny.get_config("ar3po")
  saved = checkpoint.run_identity(base, _Tok())
  same_run = tiny.get_config("ar3po")
  same_run.rl.steps, same_run.log.progress, same_run.checkpoint.every, same_run.eval.every = 500, False, 3, 7
  checkpoint.check_identity(saved, checkpoint.run_identity(same_run, _Tok()))
  other = tiny.get_config("ar3po")
  other.rl.lr, other.model.d_model = 1e-5, 64
  with pytest.raises(checkpoint.ResumeError) as e:
    checkpoint.check_identity(saved, checkpoint.run_identity(other, _Tok()))
  message = str(e.value)
  assert f"rl.lr: checkpoint {base.rl.lr}, now 1e-05" in message and "model.d_model: checkpoint 128, now 64" in message
  assert message.count("\n  - ") == 2


def test_identity_checks_the_tokenizer_file(tmp_path):
  config = tiny.get_config("grpo")
  tok = _Tok()
  tok.path = str(tmp_path / "tok.model")
  (tmp_path / "tok.model").write_bytes(b"v1")
  saved = checkpoint.run_identity(config, tok)
  (tmp_path / "tok.model").write_bytes(b"v2")
  with pytest.raises(checkpoint.ResumeError, match="tokenizer"):
    checkpoint.check_identity(saved, checkpoint.run_identity(config, tok))


def test_resume_with_a_changed_config_is_refused_before_reading_arrays(tmp_path):
  config = tiny.get_config("ar3po")
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  ckpt.save(1, _state(), {"identity": checkpoint.run_identity(config, _Tok())}, force=True)
  ckpt.close()
  config.rollout.ar3po.k = 2
  with pytest.raises(checkpoint.ResumeError, match="rollout.ar3po.k: checkpoint 4, now 2"):
    checkpoint.Checkpointer(str(tmp_path)).restore_latest(_state(), checkpoint.run_identity(config, _Tok()), log=print)
  assert os.path.isdir(tmp_path / "1")  # a refused resume leaves the checkpoints alone


class _KeyedSampler:
  """SimulatedSampler drawing from a JAX key it splits per call, as PolicySampler does."""

  def __init__(self, rates):
    self.rates, self.rng = rates, jax.random.key(7)

  def __call__(self, prompts, counts, step):
    self.rng, key = jax.random.split(self.rng)
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    return SimulatedSampler(self.rates, np.random.default_rng(seed), 16, "uniform:1,20")(prompts, counts, step)

  def state_dict(self):  # the same state protocol as PolicySampler
    return {"impl": str(jax.random.key_impl(self.rng)), "data": np.asarray(jax.random.key_data(self.rng)).tolist()}

  def load_state_dict(self, state):
    self.rng = jax.random.wrap_key_data(np.asarray(state["data"], np.uint32), impl=state["impl"])


def _scheduler(strategy):
  rollout = tiny.get_config(strategy).rollout
  rollout.batch_prompts = 6
  prompts = make_prompts(10)
  rates = {p.uid: r for p, r in zip(prompts, np.linspace(0.0, 1.0, 10))}
  return Scheduler(make_strategy(rollout), _KeyedSampler(rates), ExactVerifier(), ReplayBuffer(2, 12), PromptStream(prompts, 5))


def _metrics(scheduler, rng, steps):
  return [
      {k: v for k, v in scheduler.rollout(step, rng).metrics.items() if not k.startswith("time/")}
      for step in steps
  ]


@pytest.mark.parametrize("strategy", ["ar3po", "aero"])
def test_host_state_resumes_the_same_rollouts(tmp_path, strategy):
  scheduler, rng = _scheduler(strategy), np.random.default_rng(1)
  _metrics(scheduler, rng, range(3))
  counters = metrics.RunCounters(5, 70, {(8, 64)})
  parts = {"sampler": scheduler.sampler, "scheduler": scheduler, "counters": counters, "host_rng": checkpoint.GeneratorState(rng)}
  host = checkpoint.host_state(parts, {"config": {}, "tokenizer": {"sha256": ""}})
  assert set(host) == {"sampler", "scheduler", "counters", "host_rng", "identity"}  # saved by name
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  ckpt.save(3, _state(), host, force=True)
  ckpt.close()
  expected = _metrics(scheduler, rng, range(3, 7))
  assert any(m["rollout/reused"] for m in expected) or strategy == "aero"

  fresh, fresh_rng = _scheduler(strategy), np.random.default_rng(99)
  restored = checkpoint.Checkpointer(str(tmp_path)).restore_latest(_state(), log=print)
  fresh_counters = metrics.RunCounters()
  fresh_parts = {"sampler": fresh.sampler, "scheduler": fresh, "counters": fresh_counters, "host_rng": checkpoint.GeneratorState(fresh_rng)}
  checkpoint.load_host_state(restored.host_state, fresh_parts)
  assert fresh_counters == counters
  assert json.dumps(_metrics(fresh, fresh_rng, range(3, 7)), sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_a_missing_host_part_is_named(tmp_path):
  with pytest.raises(checkpoint.ResumeError, match="counters"):
    checkpoint.load_host_state({"sampler": {}}, {"counters": metrics.RunCounters()})


def test_rewind_metrics_drops_later_steps_and_a_cut_line(tmp_path):
  lines = [json.dumps({"step": s, "x": s}) + "\n" for s in range(5)]
  (tmp_path / "metrics.jsonl").write_text("".join(lines) + '{"step": 5, "x"')
  kept = checkpoint.rewind_metrics(str(tmp_path), 2)
  assert [r["step"] for r in kept] == [0, 1, 2]
  assert (tmp_path / "metrics.jsonl").read_text() == "".join(lines[:3])


def test_sigterm_sets_the_flag_until_uninstalled():
  previous = signal.getsignal(signal.SIGTERM)
  flag = checkpoint.PreemptionFlag()
  try:
    os.kill(os.getpid(), signal.SIGTERM)
    assert flag.set
  finally:
    flag.uninstall()
  assert signal.getsignal(signal.SIGTERM) == previous


def test_config_validation_of_the_checkpoint_section():
  from ar3po_jax import config_validation

  c = tiny.get_config("grpo")
  c.checkpoint.every = 0
  assert "checkpoint.every and checkpoint.keep must be >= 1, got 0, 3" in config_validation.problems(c)


# --- A save that fails stops the run at once with one line; a second SIGTERM ends a stuck process.

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SAVE_UNTIL_FULL = """
import sys, jax, numpy as np
from absl import logging
from ar3po_jax import checkpoint
logging.set_verbosity(logging.WARNING)
ckpt = checkpoint.Checkpointer(sys.argv[1], every=1, keep=10)
rng = np.random.default_rng(0)
for step in range(1, 9):  # 160 KB of incompressible floats a step, on a 400 KB disk
  ckpt.save(step, {"w": jax.numpy.asarray(rng.standard_normal(40_000).astype(np.float32))}, {"step": step})
  print(f"step {step} done", flush=True)
ckpt.close()
"""


def test_a_full_disk_stops_the_run_with_one_line_naming_the_step_and_cause(tmp_path):
  disk = tmp_path / "disk"
  disk.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True).returncode:
    pytest.skip("cannot mount a tmpfs here (needs root); test_a_failed_background_save_... covers the code path")
  try:
    result = subprocess.run([sys.executable, "-c", _SAVE_UNTIL_FULL, str(disk / "ckpt")], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": REPO})
  finally:
    subprocess.run(["umount", str(disk)], check=True)
  assert result.returncode == 1, result.stderr[-3000:]
  errors = result.stderr.strip().splitlines()
  assert len(errors) == 1, result.stderr[-3000:]  # not orbax's pages of traceback
  m = re.fullmatch(r"checkpoint save at step (\d+) failed: \[Errno 28\] No space left on device: '[^']+' \(writing (\S+)\)", errors[0])
  assert m, errors[0]
  failed = int(m.group(1))
  assert m.group(2) == str(disk / "ckpt" / str(failed))
  # Stopped at the first save after the failed one: no step past it ran.
  assert result.stdout.split() == " ".join(f"step {s} done" for s in range(1, failed + 1)).split()


def test_a_failed_background_save_is_raised_at_the_next_step_with_one_line(tmp_path, monkeypatch):
  def full_disk(self, arrays, directory):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / self._FILE))

  ckpt = checkpoint.Checkpointer(str(tmp_path), every=2, keep=5)
  assert ckpt.save(2, _state(2), {"step": 2})
  ckpt.wait()
  monkeypatch.setattr(checkpoint.NpzHandler, "_write", full_disk)
  assert ckpt.save(4, _state(4), {"step": 4})
  with pytest.raises(checkpoint.CheckpointSaveError) as e:
    ckpt.wait()  # what the next step's save() does once the background save has ended
  assert e.value.step == 4 and e.value.code == str(e.value)
  assert re.fullmatch(rf"checkpoint save at step 4 failed: \[Errno 28\] No space left on device: '.*arrays.npz' \(writing {tmp_path}/4\)", str(e.value))
  monkeypatch.undo()
  assert checkpoint.Checkpointer(str(tmp_path)).restore_latest(_state(), log=print).step == 2


_STUCK_STEP = """
import time
from ar3po_jax import checkpoint
flag = checkpoint.PreemptionFlag()
print("ready", flush=True)
while not flag.set:
  time.sleep(0.01)
print("flag set", flush=True)
time.sleep(120)  # a step that does not end
"""


def test_a_second_sigterm_ends_the_process_at_once():
  proc = subprocess.Popen([sys.executable, "-c", _STUCK_STEP], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": REPO})
  try:
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "flag set\n"  # the first only sets the flag
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # the shell reports 143
    assert "a second SIGTERM stops at once" in proc.stderr.read()
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
