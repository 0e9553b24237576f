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
(skipped). Once orbax has finished a step, the sha256 of every file of its items is written to
`<step>/checksums.json`; a restore checks them, and that every restored float is finite, so bytes
damaged on disk after the save are caught. A complete-looking checkpoint that fails any of these is
moved aside to `unreadable/` with one log line naming the step and the file, and the previous one is
tried, so the next save of that step number does not collide with it. (A checkpoint without
checksums, from before they existed or killed between orbax's commit and the checksums, is restored
unverified but still checked for finiteness.)

A save that fails (a full disk, a lost mount) stops the run with one line naming the step and the
cause (`CheckpointSaveError`), raised at the first step that sees the background save finished;
orbax's own multi-page tracebacks of it are dropped from the log.

SIGTERM (a preemption notice) sets a flag; the training loop saves at the end of the current step and
stops, and the process exits with `PREEMPTED_EXIT_CODE` (143, the shell's code for "terminated by
SIGTERM"), so a supervisor restarts it and the restart resumes from that checkpoint. A second SIGTERM
ends the process at once, without saving (for a step that does not end).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from typing import Any, Callable, Mapping, Protocol

import jax
import numpy as np
import orbax.checkpoint as ocp

from ar3po_jax.models.transformer import ModelConfig

PREEMPTED_EXIT_CODE = 143
COMMIT_MARKER = "commit_success.txt"
CHECKSUMS = "checksums.json"
ITEMS = ("state", "arrays", "host")

# Config fields that may change between a run and its resume: they change how long it runs, what is
# logged, how often it is evaluated or saved, and where arrays live, not what a step computes. (The
# strategy presets only fill other fields, which are compared themselves.)
RESUMABLE_CHANGES = (
    "rl.steps", "rl.max_skipped_steps", "workdir", "cache_dir", "log.", "checkpoint.", "eval.", "mesh.",
    "model.export_every", *(f"model.{f}" for f in ModelConfig.EXECUTION_FIELDS), "presets.", "analysis.",
    # How responses are sampled, not what: the engine's keys do not depend on its slot count, and either
    # sampler saves the same key state.
    "rollout.sampler", "rollout.engine.",
)


class ResumeError(RuntimeError):
  """The workdir's checkpoints belong to a different run than the one asked for."""


class Preempted(SystemExit):
  def __init__(self, step: int):
    super().__init__(PREEMPTED_EXIT_CODE)
    self.step = step


class CheckpointSaveError(SystemExit):
  """A checkpoint could not be written; ends the run (exit code 1) with one line naming the cause."""

  def __init__(self, step: int, error: BaseException, directory: str):
    self.step = step
    self.cause = describe_error(error)
    super().__init__(f"checkpoint save at step {step} failed: {self.cause} (writing {directory})")


def describe_error(error: BaseException) -> str:
  """One line for an exception that may wrap its cause several levels deep (orbax re-raises through
  futures and exception groups): the innermost OSError if there is one, else the first line."""
  seen, todo, found = set(), [error], None
  while todo:
    e = todo.pop(0)
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno is not None:
      found = e
    todo.extend([e.__cause__, e.__context__, *getattr(e, "exceptions", ())])
  if found is not None:
    where = f": {found.filename!r}" if found.filename else ""
    return f"[Errno {found.errno}] {found.strerror}{where}"
  text = " ".join(str(error).split())
  # TensorStore reports the OS error inside its message: 'Error writing local file "F": ... [os_error_code='28']'.
  code = re.search(r"os_error_code='?(\d+)", text)
  if code:
    file = re.search(r'"([^"]+)"', text)
    return f"[Errno {code.group(1)}] {os.strerror(int(code.group(1)))}" + (f": {file.group(1)!r}" if file else "")
  return f"{type(error).__name__}: {text[:300]}"


class _DropOrbaxTracebacks(logging.Filter):
  """Orbax logs a failed background save as several pages of traceback (1,605 lines for a full disk);
  the Checkpointer raises it as one line instead."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (record.exc_info and f"{os.sep}orbax{os.sep}" in record.pathname)


_ORBAX_FILTER = _DropOrbaxTracebacks()


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
  """What a resume must match: the config's fields that change what a step computes, and the tokenizer.

  Other strategies' sections (`rollout.<name>` of a registered strategy that is not running) are left
  out: they change nothing in this run, and a strategy added later must not make old checkpoints
  unresumable just by adding its section to every config."""
  from ar3po_jax.rollout.strategies import REGISTRY

  idle = tuple(f"rollout.{name}." for name in REGISTRY if name != config.rollout.strategy)
  flat = _flat_config(config)
  return {
      "config": {k: v for k, v in flat.items() if not k.startswith(RESUMABLE_CHANGES + idle)},
      "tokenizer": tokenizer_reference(tokenizer),
  }


def check_identity(saved: dict, current: dict) -> None:
  """Raises ResumeError naming every field in which the checkpointed run differs from this one."""
  old, new = saved["config"], current["config"]
  diffs = [
      f"{k}: checkpoint {old.get(k, '<absent>')!r}, now {new.get(k, '<absent>')!r}"
      for k in sorted(set(old) | set(new))
      if old.get(k) != new.get(k)
  ]
  if saved["tokenizer"]["sha256"] != current["tokenizer"]["sha256"]:
    diffs.append(f"tokenizer: checkpoint {saved['tokenizer']}, now {current['tokenizer']}")
  if diffs:
    raise ResumeError(
        "the workdir holds checkpoints of a different run; use another --workdir or restore these settings:\n  - "
        + "\n  - ".join(diffs)
    )


def saved_identity(checkpoint_dir: str) -> tuple[int, dict] | None:
  """(step, identity) of the newest complete checkpoint whose host item reads, without orbax or JAX."""
  try:
    names = os.listdir(checkpoint_dir)
  except FileNotFoundError:
    return None
  for step in sorted((int(n) for n in names if n.isdigit()), reverse=True):
    folder = os.path.join(checkpoint_dir, str(step))
    if not os.path.isfile(os.path.join(folder, COMMIT_MARKER)):
      continue
    try:
      with open(os.path.join(folder, "host", "metadata")) as f:
        return step, json.load(f)["identity"]
    except (OSError, ValueError, KeyError, TypeError):
      continue  # restore_latest will set it aside and try the previous one
  return None


def check_workdir_compatible(config, workdir: str) -> None:
  """Raises ResumeError naming every changed config field if the workdir holds checkpoints of another
  run. Call it before any preparation (tokenizer training, warm start, model loading) and before the
  config is written to the workdir: a refused run then costs seconds and changes nothing. The
  tokenizer, known only once prepared, is compared at restore."""
  c = config.get("checkpoint")
  if c is None or not c.enabled:
    return
  found = saved_identity(os.path.join(workdir, "checkpoints"))
  if found is None:
    return
  step, saved = found
  current = {"config": run_identity(config, None)["config"], "tokenizer": saved.get("tokenizer", {"sha256": ""})}
  try:
    check_identity(saved, current)
  except ResumeError as e:
    where = os.path.join(workdir, "checkpoints")
    raise ResumeError(f"{e}\n(compared with the checkpoint of step {step} in {where})") from None


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
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
    self._pending: int | None = None  # the step of the save orbax may still be writing
    self._manifest: tuple[int, threading.Thread, list] | None = None  # (step, thread, its errors)
    logging.getLogger("absl").addFilter(_ORBAX_FILTER)

  def should_save(self, step: int) -> bool:
    return step % self.every == 0

  def save(self, step: int, train_state, host_state: dict, force: bool = False) -> bool:
    """Starts writing the checkpoint of `step` unless it is not due; returns whether it started.

    Call it every step: it also raises CheckpointSaveError as soon as an earlier background save has
    failed, rather than at the next save.
    """
    self._settle(block=False)
    if not (force or self.should_save(step)):
      return False
    start = time.perf_counter()
    self._settle(block=True)
    self._join_manifest()  # before orbax may delete its step to keep `keep`
    host, arrays = split_arrays(host_state)
    try:
      self._manager.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(train_state), arrays=NpzSave(arrays), host=ocp.args.JsonSave(host)
          ),
          force=True,
      )
    except Exception as e:  # the synchronous part: the temporary folder, the device-to-host copy
      raise CheckpointSaveError(step, e, os.path.join(self.directory, str(step))) from None
    self._pending = step
    self.last_save_s = time.perf_counter() - start
    return True

  def _settle(self, block: bool) -> None:
    """Once orbax has finished the pending save: raises its error, or starts writing its checksums."""
    if self._manifest is not None and not self._manifest[1].is_alive():
      self._join_manifest()
    if self._pending is None or (not block and self._manager.is_saving_in_progress()):
      return
    step, self._pending = self._pending, None
    try:
      self._manager.wait_until_finished()
      self._manager.check_for_errors()
    except Exception as e:
      raise CheckpointSaveError(step, e, os.path.join(self.directory, str(step))) from None
    if jax.process_index() == 0 and os.path.isdir(os.path.join(self.directory, str(step))):
      # Hashing a large checkpoint takes a while: off the training thread.
      errors: list = []
      thread = threading.Thread(target=self._write_checksums, args=(step, errors), name=f"checksums_{step}")
      self._manifest = (step, thread, errors)
      thread.start()

  def _write_checksums(self, step: int, errors: list) -> None:
    try:
      folder = os.path.join(self.directory, str(step))
      digests = {name: _sha256(os.path.join(folder, name)) for name in _item_files(folder)}
      tmp = os.path.join(folder, CHECKSUMS + ".tmp")
      with open(tmp, "w") as f:
        json.dump({"step": step, "sha256": digests}, f, indent=0)
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, os.path.join(folder, CHECKSUMS))
    except BaseException as e:  # any failure, handed to the training thread
      errors.append(e)

  def _join_manifest(self) -> None:
    if self._manifest is None:
      return
    step, thread, errors = self._manifest
    thread.join()
    self._manifest = None
    if errors:
      raise CheckpointSaveError(step, errors[0], os.path.join(self.directory, str(step), CHECKSUMS))

  def verify(self, step: int) -> str | None:
    """Why the files of `step` differ from what was saved (None: they match, or no checksums exist)."""
    folder = os.path.join(self.directory, str(step))
    path = os.path.join(folder, CHECKSUMS)
    if not os.path.isfile(path):
      return None
    try:
      with open(path) as f:
        recorded = json.load(f)["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
      return f"{path} is unreadable ({type(e).__name__})"
    for name, digest in sorted(recorded.items()):
      file = os.path.join(folder, name)
      if not os.path.isfile(file):
        return f"{file} is missing"
      if _sha256(file) != digest:
        return f"{file} does not match the sha256 recorded when it was saved"
    return None

  def complete_steps(self) -> list[int]:
    """Steps whose folder orbax finished, newest first."""
    steps = self._manager.all_steps()
    return sorted(
        (s for s in steps if os.path.isfile(os.path.join(self.directory, str(s), COMMIT_MARKER))), reverse=True
    )

  def restore_latest(
      self, like_train_state, identity: dict | None = None, log: Callable[[str], None] = print
  ) -> Restored | None:
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
      damage = self.verify(step)
      if damage:
        log(f"checkpoint: step {step} is damaged: {damage}; trying the previous one")
        self._set_aside(step)
        continue
      if not os.path.isfile(os.path.join(self.directory, str(step), CHECKSUMS)):
        log(f"checkpoint: step {step} has no {CHECKSUMS} (saved by an older version, or killed before they were "
            "written); restoring it unverified")
      try:
        host = self._manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore())).host
        if identity is not None:
          check_identity(host["identity"], identity)
        out = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), arrays=NpzRestore())
        )
      except ResumeError:
        raise
      except Exception as e:  # any unreadable piece: fall back to the previous checkpoint
        reason = " ".join(str(e).split())[:200]  # one line, however many orbax wrote
        log(f"checkpoint: step {step} cannot be restored ({type(e).__name__}: {reason}); trying the previous one")
        self._set_aside(step)
        continue
      bad = non_finite_leaves(out.state) + [f"host array {k}" for k, v in out.arrays.items() if not _all_finite(v)]
      if bad:
        named = ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
        log(f"checkpoint: step {step} holds non-finite values in {named}; trying the previous one")
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
    """Blocks until the pending save and its checksums are written; raises CheckpointSaveError if it failed."""
    self._settle(block=True)
    self._join_manifest()

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._manager.close()


def _item_files(folder: str) -> list[str]:
  """The files of a step's items, relative to the step folder."""
  out = []
  for item in ITEMS:
    for root, _, files in os.walk(os.path.join(folder, item)):
      out.extend(os.path.relpath(os.path.join(root, f), folder) for f in files)
  return sorted(out)


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _all_finite(x) -> bool:
  x = np.asarray(x)
  return not np.issubdtype(x.dtype, np.inexact) or bool(np.isfinite(x).all())


def non_finite_leaves(tree) -> list[str]:
  """Paths of the float leaves of a (possibly sharded) pytree that hold a NaN or an infinity."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  named = [(jax.tree_util.keystr(path), x) for path, x in flat if np.issubdtype(x.dtype, np.inexact)]
  if not named:
    return []
  finite = jax.jit(lambda xs: [jax.numpy.isfinite(x).all() for x in xs])([x for _, x in named])
  return [name for (name, _), ok in zip(named, finite) if not bool(ok)]


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
  """Set by SIGTERM while installed; the loop checks it once a step.

  The first SIGTERM only sets the flag (the step ends, is saved, and the run exits 143); it also puts
  SIGTERM back to its default action, so a second one ends the process at once, without saving, even
  inside a step that never ends (the kernel acts on it; no Python code has to run).
  """

  def __init__(self):
    self.set = False
    self._previous = None
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

  def _on_sigterm(self, signum, frame) -> None:
    self.set = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # os.write: print() from a signal handler can find stdout's buffer mid-write and raise.
    os.write(2, b"SIGTERM: stopping after this step; a second SIGTERM stops at once, without saving\n")

  def uninstall(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
