"""Checkpoints of an RL run (orbax), so that a killed run resumes exactly where its last one left it.

A checkpoint at step s holds the state after s RL steps, in three orbax items of one step folder:
  state    the TrainState (params, optimizer state, step counters), sharded arrays;
  arrays   the numpy arrays of the host state (replay buffer contents, AERO counts), one .npz;
  host     the rest of the host state as JSON, by part name (`host_state`): "sampler" (its RNG),
           "scheduler" (prompt stream position, buffer, strategy), "counters", "host_rng", and the
           run identity (config fingerprint and tokenizer reference).
Saves are asynchronous (the arrays are copied off the device before `save` returns, so the next
update may donate them) and the newest `keep` checkpoints are kept.

A step folder counts only once orbax has finished it: a save cut short leaves either a
`*.orbax-checkpoint-tmp*` folder (ignored and cleaned up) or a folder without `commit_success.txt`
(skipped). A complete-looking checkpoint that fails to restore is moved aside to `unreadable/` and the
previous one is tried, so the next save of that step number does not collide with it.

SIGTERM (a preemption notice) sets a flag; the training loop saves at the end of the current step and
stops, and the process exits with `PREEMPTED_EXIT_CODE` (143, the shell's code for "terminated by
SIGTERM"), so a supervisor restarts it and the restart resumes from that checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import signal
import threading
import time
from typing import Any, Callable, Mapping, Protocol

import jax
import numpy as np
import orbax.checkpoint as ocp

PREEMPTED_EXIT_CODE = 143
COMMIT_MARKER = "commit_success.txt"

# Config fields that may change between a run and its resume: they change how long it runs, what is
# logged, how often it is evaluated or saved, and where arrays live, not what a step computes. (The
# strategy presets only fill other fields, which are compared themselves.)
RESUMABLE_CHANGES = (
    "rl.steps", "workdir", "cache_dir", "log.", "checkpoint.", "eval.", "mesh.", "model.export_every", "presets.",
)


class ResumeError(RuntimeError):
  """The workdir's checkpoints belong to a different run than the one asked for."""


class Preempted(SystemExit):
  def __init__(self, step: int):
    super().__init__(PREEMPTED_EXIT_CODE)
    self.step = step


# --- The npz item: orbax's pytree handler refuses zero-size arrays, and an empty replay buffer is one.


class NpzHandler(ocp.AsyncCheckpointHandler):
  """Saves a flat {name: np.ndarray} dict as one .npz file, written by the primary host."""

  _FILE = "arrays.npz"

  def _write(self, arrays: dict[str, np.ndarray], directory) -> None:
    if jax.process_index() == 0:
      buffer = io.BytesIO()
      np.savez(buffer, **arrays)
      (directory / self._FILE).write_bytes(buffer.getvalue())

  async def async_save(self, directory, args: "NpzSave"):
    async def write():
      self._write(dict(args.arrays), directory)

    return [ocp.future.CommitFutureAwaitingContractedSignals(write(), name="npz_save")]

  def save(self, directory, args: "NpzSave"):
    self._write(dict(args.arrays), directory)

  def restore(self, directory, args: "NpzRestore | None" = None) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO((directory / self._FILE).read_bytes())) as data:
      return {k: data[k] for k in data.files}


@ocp.args.register_with_handler(NpzHandler, for_save=True)
@dataclasses.dataclass
class NpzSave(ocp.args.CheckpointArgs):
  arrays: dict


@ocp.args.register_with_handler(NpzHandler, for_restore=True)
@dataclasses.dataclass
class NpzRestore(ocp.args.CheckpointArgs):
  pass


def split_arrays(tree) -> tuple[Any, dict[str, np.ndarray]]:
  """(tree with every numpy array replaced by {"__npz__": name}, {name: array})."""
  arrays: dict[str, np.ndarray] = {}

  def walk(node):
    if isinstance(node, np.ndarray):
      name = f"a{len(arrays)}"
      arrays[name] = node
      return {"__npz__": name}
    if isinstance(node, dict):
      return {k: walk(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
      return [walk(v) for v in node]
    if isinstance(node, (np.integer, np.floating, np.bool_)):
      return node.item()
    return node

  return walk(tree), arrays


def join_arrays(tree, arrays: dict[str, np.ndarray]):
  if isinstance(tree, dict):
    if set(tree) == {"__npz__"}:
      return arrays[tree["__npz__"]]
    return {k: join_arrays(v, arrays) for k, v in tree.items()}
  if isinstance(tree, list):
    return [join_arrays(v, arrays) for v in tree]
  return tree


# --- What identifies a run: its config (less the fields a resume may change) and its tokenizer.


def _flat_config(config) -> dict[str, Any]:
  flat = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(value, f"{prefix}{key}.")
      else:
        flat[prefix + key] = value

  walk(json.loads(config.to_json_best_effort()), "")
  return flat


def tokenizer_reference(tokenizer) -> dict[str, str]:
  """The tokenizer's file and the sha256 of its contents ('' where it has no file)."""
  path = getattr(tokenizer, "path", "") or ""
  file = os.path.join(path, "tokenizer.json") if path and os.path.isdir(path) else path
  digest = ""
  if file and os.path.isfile(file):
    with open(file, "rb") as f:
      digest = hashlib.sha256(f.read()).hexdigest()
  return {"path": path, "sha256": digest}


def run_identity(config, tokenizer) -> dict[str, Any]:
  flat = _flat_config(config)
  return {
      "config": {k: v for k, v in flat.items() if not k.startswith(RESUMABLE_CHANGES)},
      "tokenizer": tokenizer_reference(tokenizer),
  }


def check_identity(saved: dict, current: dict) -> None:
  """Raises ResumeError naming every field in which the checkpointed run differs from this one."""
  old, new = saved["config"], current["config"]
  diffs = [f"{k}: checkpoint {old.get(k, '<absent>')!r}, now {new.get(k, '<absent>')!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
  if saved["tokenizer"]["sha256"] != current["tokenizer"]["sha256"]:
    diffs.append(f"tokenizer: checkpoint {saved['tokenizer']}, now {current['tokenizer']}")
  if diffs:
    raise ResumeError(
        "the workdir holds checkpoints of a different run; use another --workdir or restore these settings:\n  - " + "\n  - ".join(diffs)
    )


# --- The manager.


@dataclasses.dataclass
class Restored:
  step: int
  train_state: Any
  host_state: dict


class Checkpointer:
  """Saves every `every` steps (and when forced), keeps the newest `keep`, restores the newest good one."""

  def __init__(self, directory: str, every: int = 1, keep: int = 3, async_save: bool = True):
    if every < 1 or keep < 1:
      raise ValueError(f"checkpoint.every and checkpoint.keep must be >= 1, got {every}, {keep}")
    self.directory = os.path.abspath(directory)
    self.every = every
    self.last_save_s = 0.0  # seconds the last save blocked the caller
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save, cleanup_tmp_directories=True
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "arrays", "host"))

  def should_save(self, step: int) -> bool:
    return step % self.every == 0

  def save(self, step: int, train_state, host_state: dict, force: bool = False) -> bool:
    """Starts writing the checkpoint of `step` unless it is not due; returns whether it started."""
    if not (force or self.should_save(step)):
      return False
    start = time.perf_counter()
    host, arrays = split_arrays(host_state)
    self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(train_state), arrays=NpzSave(arrays), host=ocp.args.JsonSave(host)),
        force=True,
    )
    self.last_save_s = time.perf_counter() - start
    return True

  def complete_steps(self) -> list[int]:
    """Steps whose folder orbax finished, newest first."""
    steps = self._manager.all_steps()
    return sorted((s for s in steps if os.path.isfile(os.path.join(self.directory, str(s), COMMIT_MARKER))), reverse=True)

  def restore_latest(self, like_train_state, identity: dict | None = None, log: Callable[[str], None] = print) -> Restored | None:
    """The newest checkpoint that restores, with the TrainState placed like `like_train_state`.

    identity (`run_identity`): checked against each checkpoint's before its arrays are read, so a
    changed config is named (ResumeError) instead of failing as a shape mismatch.
    """
    self.wait()
    self._manager.reload()
    complete = self.complete_steps()
    for step in self._manager.all_steps():
      if step not in complete:
        log(f"checkpoint: step {step} has no {COMMIT_MARKER} (a save cut short); ignored")
        self._set_aside(step)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), like_train_state)
    for step in complete:
      try:
        host = self._manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore())).host
        if identity is not None:
          check_identity(host["identity"], identity)
        out = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), arrays=NpzRestore()))
      except ResumeError:
        raise
      except Exception as e:  # any unreadable piece: fall back to the previous checkpoint
        log(f"checkpoint: step {step} cannot be restored ({type(e).__name__}: {str(e)[:200]}); trying the previous one")
        self._set_aside(step)
        continue
      log(f"checkpoint: resuming from step {step} ({os.path.join(self.directory, str(step))})")
      return Restored(step, out.state, join_arrays(host, out.arrays))
    return None

  def _set_aside(self, step: int) -> None:
    if jax.process_index() == 0:
      aside = os.path.join(self.directory, "unreadable")
      os.makedirs(aside, exist_ok=True)
      shutil.move(os.path.join(self.directory, str(step)), os.path.join(aside, f"{step}.{time.time_ns()}"))
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def from_config(config, workdir: str) -> Checkpointer | None:
  c = config.get("checkpoint")
  if c is None or not c.enabled:
    return None
  return Checkpointer(os.path.join(workdir, "checkpoints"), c.every, c.keep, c.get("async_save", True))


# --- Host state: everything random or cumulative outside the TrainState, saved part by part by name.


class Stateful(Protocol):
  """What the checkpoint saves of a host-side part: plain numpy arrays, lists, numbers and strings."""

  def state_dict(self) -> dict[str, Any]: ...

  def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GeneratorState:
  """A numpy Generator as a `Stateful` part (its bit generator's state)."""

  def __init__(self, rng: np.random.Generator):
    self.rng = rng

  def state_dict(self) -> dict[str, Any]:
    return self.rng.bit_generator.state

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.rng.bit_generator.state = state


def host_state(parts: Mapping[str, Stateful], identity: dict) -> dict:
  """{name: part.state_dict()} for every part, and the run's identity."""
  if "identity" in parts:
    raise ValueError("'identity' is reserved for the run identity")
  return {**{name: part.state_dict() for name, part in parts.items()}, "identity": identity}


def load_host_state(state: dict, parts: Mapping[str, Stateful]) -> None:
  """Puts each part's saved state back; a part the checkpoint lacks is named."""
  missing = [name for name in parts if name not in state]
  if missing:
    raise ResumeError(f"the checkpoint's host state has no {missing} (saved parts: {sorted(state)})")
  for name, part in parts.items():
    part.load_state_dict(state[name])


def rewind_metrics(workdir: str, step: int) -> list[dict]:
  """Cuts metrics.jsonl back to the records of steps <= step (a run killed after logging a step but
  before checkpointing it logs that step again) and returns them."""
  path = os.path.join(workdir, "metrics.jsonl")
  kept, lines = [], []
  if os.path.isfile(path):
    with open(path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the kill
          break
        if record["step"] <= step:
          kept.append(record)
          lines.append(line if line.endswith("\n") else line + "\n")
  if jax.process_index() == 0:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(lines)
    os.replace(tmp, path)
  return kept


class PreemptionFlag:
  """Set by SIGTERM while installed; the loop checks it once a step."""

  def __init__(self):
    self.set = False
    self._previous = None
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, signum, frame) -> None:
    self.set = True

  def uninstall(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
