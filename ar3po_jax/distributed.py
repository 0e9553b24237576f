"""Multi-host runs on JAX's own multi-controller runtime: every process runs the same program.

The design, and why it keeps the hosts in step:
  - Every process holds the same host-side state: the same prompts, the same seeds, the same
    scheduler. Prompt ids, rewards and response tokens are small, so copying them to every host
    costs nothing next to sampling, and it removes a whole class of "process 0 decided, the others
    wait" protocol.
  - Device arrays are global: `put` builds them from that identical host data, each process
    supplying only the shards its own devices hold (`jax.make_array_from_callback`, no collective).
  - Kernel outputs come back to every host whole (`to_host`, an all-gather across processes), so
    the scheduler on each host sees the same responses.
  - Only rewards could differ between hosts (a verifier time limit can fire on one host and not on
    another), so `LeaderVerifier` verifies on process 0 and broadcasts the rewards.
  - Process 0 alone writes metrics and plots; checkpoints are collective (every process writes its
    own shards).

Data loading: the embedded task and the real data sets are text, loaded whole by every host (a
17k-problem set is a few MB); the parameters of a real checkpoint are read shard by shard, each
host reading only what its devices hold (`models.hf`).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    auto: bool = False,
) -> bool:
  """Starts the multi-process runtime if flags or the environment ask for it; returns whether it did.

  Flags win over JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID. `auto` calls
  `jax.distributed.initialize()` with nothing given, which is how TPU pod workers (and clusters JAX
  detects, such as SLURM) find their peers. Must run before anything touches a JAX device.
  """
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
  if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
    num_processes = int(os.environ["JAX_NUM_PROCESSES"])
  if process_id is None and os.environ.get("JAX_PROCESS_ID"):
    process_id = int(os.environ["JAX_PROCESS_ID"])
  if coordinator_address is None and num_processes is None and process_id is None and not auto:
    return False
  jax.distributed.initialize(coordinator_address, num_processes, process_id)
  return True


def is_leader() -> bool:
  return jax.process_index() == 0


def put(tree, shardings):
  """Host arrays (identical on every process) as global arrays; `shardings` is one sharding or a
  matching tree. Device arrays that one process can move itself, or that already span processes,
  are resharded on device instead of being copied through the host."""

  def place(x, sharding):
    if isinstance(x, jax.Array) and (jax.process_count() == 1 or not x.is_fully_addressable):
      return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  if isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda x: place(x, shardings), tree)
  return jax.tree.map(place, tree, shardings)


def to_host(tree):
  """Global arrays as whole numpy arrays on every process."""

  def fetch(x):
    if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
      return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

  return jax.tree.map(fetch, tree)


def broadcast(tree):
  """Process 0's value of a host tree, on every process (identity on one process)."""
  if jax.process_count() == 1:
    return tree
  return multihost_utils.broadcast_one_to_all(tree)


def barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def leader_first(fn: Callable[[], object], name: str):
  """Runs fn on process 0, then on the others: whatever fn caches on a shared disk is built once
  and read by the rest, and nobody reads a half-written file. fn must not run collectives."""
  if not is_leader():
    barrier(name)
  result = fn()
  if is_leader():
    barrier(name)
  return result


def check_same_on_all_hosts(arrays: Sequence[np.ndarray], what: str) -> None:
  """Fails fast when hosts hold different data (a different tokenizer, say): they would diverge."""
  if jax.process_count() == 1:
    return
  digest = np.frombuffer(_digest(arrays), np.uint8).astype(np.int32)
  multihost_utils.assert_equal(digest, f"{what} differs between processes; every host must load the same data")


def _digest(arrays: Sequence[np.ndarray]) -> bytes:
  import hashlib

  h = hashlib.sha256()
  for a in arrays:
    h.update(np.ascontiguousarray(a).tobytes())
    h.update(b"|")
  return h.digest()


class LeaderVerifier:
  """Rewards computed on process 0 and broadcast, so that every host's scheduler sees the same."""

  def __init__(self, verifier):
    self.verifier = verifier

  def __call__(self, texts, answers) -> np.ndarray:
    if jax.process_count() == 1 or not len(texts):
      return np.asarray(self.verifier(texts, answers), np.float32)
    rewards = np.asarray(self.verifier(texts, answers), np.float32) if is_leader() else np.zeros(len(texts), np.float32)
    return np.asarray(broadcast(rewards), np.float32)

  def metrics(self) -> dict:
    """The wrapped verifier's counters, if it keeps any (process 0's are the ones that get logged)."""
    return self.verifier.metrics() if hasattr(self.verifier, "metrics") else {}

  def close(self) -> None:
    if hasattr(self.verifier, "close"):
      self.verifier.close()
