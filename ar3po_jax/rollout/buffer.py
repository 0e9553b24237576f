"""The replay buffer of correct responses that AR3PO's response reuse draws from.

Per prompt uid it keeps the newest `per_prompt` correct responses (newest by producing step, then by
insertion order); across all prompts at most `total`, evicting the globally oldest first. Picking
does not remove an entry: the same correct response may rescue its prompt again at a later step, as
long as nothing newer has displaced it (our choice; the paper does not say).

Eviction uses a heap with lazy deletion, so `add` costs O(log n) even at 100k entries.
"""

from __future__ import annotations

import dataclasses
import heapq
from typing import Any, Sequence

import numpy as np

from ar3po_jax.types import Response

PICK_MODES = ("newest", "random")


@dataclasses.dataclass(frozen=True)
class _Entry:
  step: int
  seq: int  # insertion counter: breaks ties between entries of the same step, oldest first
  response: Response

  @property
  def age_key(self) -> tuple[int, int]:
    return (self.step, self.seq)


class ReplayBuffer:
  """Correct responses per prompt uid, with the step whose policy produced each."""

  def __init__(self, per_prompt: int = 2, total: int = 100_000):
    if per_prompt < 1 or total < 1:
      raise ValueError(f"ReplayBuffer: per_prompt={per_prompt} and total={total} must be >= 1")
    self.per_prompt = int(per_prompt)
    self.total = int(total)
    self._by_uid: dict[str, list[_Entry]] = {}  # each list sorted oldest first
    self._heap: list[tuple[int, int, str]] = []  # (step, seq, uid), may hold evicted entries
    self._live: set[int] = set()  # seqs currently stored; heap items outside it are stale
    self._next_seq = 0

  @property
  def size(self) -> int:
    return len(self._live)

  def __len__(self) -> int:
    return self.size

  def __contains__(self, uid: str) -> bool:
    return bool(self._by_uid.get(uid))

  def add(self, uid: str, response: Response, step: int) -> None:
    """Stores a copy of a correct response of prompt `uid`, produced by the policy of `step`."""
    stored = _copy(response)
    stored.step, stored.reused = int(step), False
    self._insert(uid, _Entry(int(step), self._next_seq, stored))
    self._next_seq += 1

  def pick(self, uid: str, mode: str, rng: np.random.Generator) -> Response | None:
    """A copy of one buffered response of `uid` marked reused (its `step` is the producing step)."""
    entries = self._by_uid.get(uid)
    if not entries:
      return None
    if mode == "newest":
      entry = entries[-1]
    elif mode == "random":
      entry = entries[int(rng.integers(len(entries)))]
    else:
      raise ValueError(f"ReplayBuffer.pick: mode {mode!r} not in {PICK_MODES}")
    picked = _copy(entry.response)
    picked.reused = True
    return picked

  def responses(self, uid: str) -> list[Response]:
    """The buffered responses of uid, oldest first (copies not made: do not mutate)."""
    return [e.response for e in self._by_uid.get(uid, [])]

  def staleness(self, step: int) -> np.ndarray:
    """Current step minus producing step, for every buffered response."""
    return np.asarray([step - e.step for es in self._by_uid.values() for e in es], np.int64)

  def _insert(self, uid: str, entry: _Entry) -> None:
    entries = self._by_uid.setdefault(uid, [])
    entries.append(entry)
    entries.sort(key=lambda e: e.age_key)
    self._live.add(entry.seq)
    heapq.heappush(self._heap, (entry.step, entry.seq, uid))
    while len(entries) > self.per_prompt:
      self._live.discard(entries.pop(0).seq)
    while len(self._live) > self.total:
      self._evict_oldest()
    if len(self._heap) > 2 * len(self._live) + 1024:
      self._compact_heap()

  def _evict_oldest(self) -> None:
    while True:
      step, seq, uid = heapq.heappop(self._heap)
      if seq in self._live:
        break
    self._live.discard(seq)
    entries = self._by_uid[uid]
    entries[:] = [e for e in entries if e.seq != seq]
    if not entries:
      del self._by_uid[uid]

  def _compact_heap(self) -> None:
    # Per-prompt drops leave stale heap items that only total-capacity eviction would pop; without
    # this the heap would grow with every step of a long run.
    self._heap = [(e.step, e.seq, uid) for uid, es in self._by_uid.items() for e in es]
    heapq.heapify(self._heap)

  def state_dict(self) -> dict[str, Any]:
    """Everything needed to rebuild the buffer exactly, as plain numpy arrays and lists."""
    entries = sorted((e for es in self._by_uid.values() for e in es), key=lambda e: e.seq)
    uid_of = {e.seq: uid for uid, es in self._by_uid.items() for e in es}
    lengths = np.asarray([e.response.num_tokens for e in entries], np.int64)
    return {
        "per_prompt": self.per_prompt,
        "total": self.total,
        "next_seq": self._next_seq,
        "uids": [uid_of[e.seq] for e in entries],
        "seqs": np.asarray([e.seq for e in entries], np.int64),
        "steps": np.asarray([e.step for e in entries], np.int64),
        "lengths": lengths,
        "token_ids": _concat([e.response.token_ids for e in entries], np.int32),
        "logprobs": _concat([e.response.logprobs for e in entries], np.float32),
        "texts": [e.response.text for e in entries],
        "truncated": np.asarray([e.response.truncated for e in entries], bool),
        "rewards": np.asarray([e.response.reward for e in entries], np.float32),
        "penalties": np.asarray([e.response.penalty for e in entries], np.float32),
    }

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.__init__(int(state["per_prompt"]), int(state["total"]))
    bounds = np.concatenate([[0], np.cumsum(np.asarray(state["lengths"], np.int64))])
    token_ids = np.asarray(state["token_ids"], np.int32)
    logprobs = np.asarray(state["logprobs"], np.float32)
    for i, uid in enumerate(state["uids"]):
      lo, hi = bounds[i], bounds[i + 1]
      response = Response(
          token_ids=token_ids[lo:hi].copy(),
          logprobs=logprobs[lo:hi].copy(),
          text=state["texts"][i],
          truncated=bool(state["truncated"][i]),
          reward=float(state["rewards"][i]),
          penalty=float(state["penalties"][i]),
          step=int(state["steps"][i]),
      )
      self._insert(uid, _Entry(int(state["steps"][i]), int(state["seqs"][i]), response))
    self._next_seq = int(state["next_seq"])


def _copy(response: Response) -> Response:
  # A shallow copy at a fraction of dataclasses.replace's cost: add() runs for every correct response
  # of every step. The arrays are shared; nobody writes into a response's arrays in place.
  clone = object.__new__(Response)
  clone.__dict__.update(response.__dict__)
  return clone


def _concat(arrays: Sequence[np.ndarray], dtype) -> np.ndarray:
  if not arrays:
    return np.zeros([0], dtype)
  return np.concatenate([np.asarray(a, dtype) for a in arrays])
