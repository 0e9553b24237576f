"""One run per workdir: a lock that a second run on the same workdir finds held, and names its holder.

Two runs writing one workdir interleave metrics.jsonl lines, write two TensorBoard files and save each
checkpoint twice. So every process of a run takes an exclusive `flock` on `WORKDIR/.lock.<process
index>` before it writes anything there, and writes its PID, host and start time into the file.

Our choices:
- flock, not a PID file: the kernel drops the lock when its holder dies, however it dies (SIGKILL,
  OOM killer), so a lock left by a dead process is simply taken over; the file's text only names the
  holder. (On NFS, Linux emulates flock with byte-range locks, which hold across clients.)
- One lock per process index: the processes of one multi-process job hold different files, so they do
  not block each other, while every process of a second job on the same workdir meets the process of
  the same index and exits at once (not only process 0, leaving its peers waiting on a coordinator).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time


class WorkdirLocked(SystemExit):
  """Another live process holds the workdir; exits with code 1 and a message naming it."""


class WorkdirLock:
  def __init__(self, path: str, file):
    self.path = path
    self._file = file

  def release(self) -> None:
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None


def lock_path(workdir: str, process_index: int = 0) -> str:
  return os.path.join(workdir, f".lock.{process_index}")


def acquire(workdir: str, process_index: int = 0) -> WorkdirLock:
  """Takes the workdir for this process or raises WorkdirLocked naming the holder. Keep the returned
  lock referenced for the whole run (the lock lives as long as its open file)."""
  path = lock_path(workdir, process_index)
  f = open(path, "a+")  # not "w": a refused run must not erase the holder's name
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.seek(0)
    holder = f.read().strip() or "a process that has not written its name yet"
    f.close()
    raise WorkdirLocked(
        f"workdir {os.path.abspath(workdir)} is in use by another run ({holder}; lock file {path}); "
        "wait for it to end, stop it, or use another --workdir"
    ) from None
  f.seek(0)
  f.truncate()
  f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
  f.flush()
  return WorkdirLock(path, f)
