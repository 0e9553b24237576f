"""Worker processes that run checks under a hard wall-clock limit, killing and replacing stuck ones.

Each worker holds at most one task, so killing a stuck worker loses only its own task; the others'
results keep arriving. Inside a worker a SIGALRM timer stops work that checks for signals cheaply (the
worker survives); C code that never checks (gmpy2 big-integer arithmetic when sympy uses it, a stuck
extension) cannot be interrupted that way, so the parent also holds a deadline a little later and
SIGKILLs the process when it passes.

The parent runs JAX, which is multithreaded, so workers come from 'forkserver' (a clean
single-threaded server that has preloaded the check's module, making replacements cheap) or
'spawn', never from a fork of the parent.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing as mp
import signal
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence

OK, TIMEOUT, ERROR = "ok", "timeout", "error"


class _SoftTimeout(BaseException):
  """A BaseException so that library code's broad `except Exception` cannot swallow it."""


def _on_alarm(signum, frame):
  raise _SoftTimeout()


def _worker_main(conn: Connection, fn: Callable, timeout_s: float, memory_limit_mb: int | None) -> None:
  if memory_limit_mb:
    import resource

    limit = memory_limit_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard if hard != resource.RLIM_INFINITY and hard < limit else limit))
  signal.signal(signal.SIGALRM, _on_alarm)
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it will close us
  conn.send(("ready",))
  while True:
    try:
      message = conn.recv()
    except (EOFError, OSError):
      return
    if message is None:
      return
    task_id, args = message
    status, value = ERROR, None
    try:
      try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        value = fn(*args)
        status = OK
      finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:
      status, value = TIMEOUT, None
    except (Exception, RecursionError, MemoryError) as e:
      status, value = ERROR, f"{type(e).__name__}: {e}"[:300]
    try:
      conn.send((task_id, status, value))
    except (OSError, ValueError):
      return


@dataclasses.dataclass
class _Slot:
  proc: Any
  conn: Connection
  started: float
  ready: bool = False
  task: int | None = None
  deadline: float = 0.0


class WorkerPool:
  """Runs `fn(*args)` for many argument tuples in worker processes, each under `timeout_s`.

  fn must be a module-level function (it is pickled by name); `preload` names modules the forkserver
  imports once so that each new worker starts with them loaded.

  `map` returns one (status, value) per tuple, status in {"ok", "timeout", "error"}. Workers start on
  the first `map`, not at construction, so a run whose answers all take the fast path never pays for
  them. A check is timed from when its worker receives it, so a batch queued behind others is not
  penalised; the one-time worker start is bounded separately by `startup_timeout_s`.
  """

  def __init__(
      self,
      fn: Callable,
      num_workers: int,
      timeout_s: float,
      grace_s: float = 0.3,
      memory_limit_mb: int | None = 4096,
      start_method: str | None = None,
      startup_timeout_s: float = 120.0,
      preload: Sequence[str] = (),
  ):
    if num_workers < 1:
      raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if start_method is None:
      start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    if start_method == "fork":
      raise ValueError("fork is unsafe in a multithreaded (JAX) parent; use forkserver or spawn")
    self._ctx = mp.get_context(start_method)
    if start_method == "forkserver":
      self._ctx.set_forkserver_preload([fn.__module__, *preload])
    self._fn = fn
    self.num_workers = num_workers
    self.timeout_s = timeout_s
    self.grace_s = grace_s
    self.memory_limit_mb = memory_limit_mb
    self.startup_timeout_s = startup_timeout_s
    self._slots: list[_Slot] = []
    self._lock = threading.Lock()
    self._closed = False
    self.timeouts = 0
    self.errors = 0
    self.restarts = 0

  def _start(self) -> _Slot:
    parent_conn, child_conn = self._ctx.Pipe(duplex=True)
    proc = self._ctx.Process(
        target=_worker_main,
        args=(child_conn, self._fn, self.timeout_s, self.memory_limit_mb),
        daemon=True,
        name="math-verifier-worker",
    )
    proc.start()
    child_conn.close()
    return _Slot(proc, parent_conn, time.monotonic())

  def _replace(self, index: int) -> None:
    slot = self._slots[index]
    try:
      slot.proc.kill()
      slot.proc.join(timeout=2.0)
    except (OSError, ValueError):
      pass
    slot.conn.close()
    self.restarts += 1
    self._slots[index] = self._start()

  def map(self, args: Sequence[tuple]) -> list[tuple[str, Any]]:
    if not args:
      return []
    with self._lock:
      if self._closed:
        raise RuntimeError("WorkerPool is closed")
      if not self._slots:
        self._slots = [self._start() for _ in range(self.num_workers)]
      return self._run(args)

  def _run(self, args: Sequence[tuple]) -> list[tuple[str, Any]]:
    results: list[tuple[str, Any] | None] = [None] * len(args)
    pending = collections.deque(range(len(args)))
    failed_starts = 0
    while pending or any(s.task is not None for s in self._slots):
      now = time.monotonic()
      for slot in self._slots:
        if slot.ready and slot.task is None and pending:
          task = pending.popleft()
          try:
            slot.conn.send((task, args[task]))
          except (OSError, ValueError):
            pending.appendleft(task)
            slot.ready = False  # its EOF below replaces it
            continue
          slot.task, slot.deadline = task, now + self.timeout_s + self.grace_s
      deadlines = [s.deadline for s in self._slots if s.task is not None]
      deadlines += [s.started + self.startup_timeout_s for s in self._slots if not s.ready]
      wait_s = max(0.0, min(deadlines) - now) if deadlines else 0.0
      for conn in wait([s.conn for s in self._slots], timeout=wait_s):
        index = next(i for i, s in enumerate(self._slots) if s.conn is conn)
        slot = self._slots[index]
        try:
          message = conn.recv()
        except (EOFError, OSError):
          if slot.task is not None:
            results[slot.task] = (ERROR, "worker died")
            self.errors += 1
          elif not slot.ready:
            failed_starts += 1
          self._replace(index)
          continue
        if message[0] == "ready":
          slot.ready, failed_starts = True, 0
          continue
        task, status, value = message
        if task == slot.task:
          results[task] = (status, value)
          self.timeouts += status == TIMEOUT
          self.errors += status == ERROR
          slot.task = None
      now = time.monotonic()
      for index, slot in enumerate(self._slots):
        if slot.task is not None and now > slot.deadline:
          results[slot.task] = (TIMEOUT, None)
          self.timeouts += 1
          self._replace(index)
        elif not slot.ready and now > slot.started + self.startup_timeout_s:
          failed_starts += 1
          self._replace(index)
      if failed_starts > 2 * self.num_workers and not any(s.ready for s in self._slots):
        # Workers cannot even start (a broken install): fail the batch rather than spin forever.
        while pending:
          results[pending.popleft()] = (ERROR, "workers failed to start")
          self.errors += 1
    return [r if r is not None else (ERROR, "lost") for r in results]

  def close(self) -> None:
    with self._lock:
      self._closed = True
      for slot in self._slots:
        try:
          slot.conn.send(None)
        except (OSError, ValueError):
          pass
      for slot in self._slots:
        slot.proc.join(timeout=1.0)
        if slot.proc.is_alive():
          slot.proc.kill()
          slot.proc.join(timeout=1.0)
        slot.conn.close()
      self._slots = []
