"""The scheduler's prompt source: a resumable stream over a fixed list of prompts, in shuffled epochs
(or in file order). Prompts themselves are built by `datasets.prompts.Template`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ar3po_jax.types import Prompt


class IndexStream:
  """Indices 0..length-1 in shuffled epochs (file order with shuffle=False). The order depends only on
  (seed, epoch), so the position (epoch, index) is the whole state a checkpoint needs to resume,
  together with the few indices one call moved (below).

  A call that crosses an epoch boundary never hands out an index twice (when n <= length): indices
  it already took from the old epoch's tail move to the end of the new epoch's order, so each epoch
  still visits every index once and one step's prompts stay distinct."""

  def __init__(self, length: int, seed: int, shuffle: bool = True):
    if length < 1:
      raise ValueError("IndexStream needs a non-empty source")
    self.length, self.seed, self.shuffle = length, seed, shuffle
    self.epoch, self.index = 0, 0
    self._moved: list[int] = []  # indices of this epoch moved to its end by a boundary-crossing call
    self._order = self._epoch_order(0)

  def _epoch_order(self, epoch: int, moved=()) -> np.ndarray:
    if self.shuffle:
      order = np.random.default_rng([self.seed, epoch]).permutation(self.length)
    else:
      order = np.arange(self.length)
    if len(moved):
      order = np.concatenate([order[~np.isin(order, moved)], np.asarray(moved, order.dtype)])
    return order

  def next(self, n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:
      if self.index == self.length:
        self.epoch, self.index = self.epoch + 1, 0
        self._order = self._epoch_order(self.epoch)
        self._moved = []
        if out and n <= self.length:
          # Defer what this call already took, in the order it comes in the new epoch.
          taken = set(out)
          self._moved = [int(i) for i in self._order if i in taken]
          self._order = self._epoch_order(self.epoch, self._moved)
      take = min(n - len(out), self.length - self.index)
      out.extend(int(i) for i in self._order[self.index : self.index + take])
      self.index += take
    return out

  def state_dict(self) -> dict:
    return {"epoch": self.epoch, "index": self.index, "moved": list(self._moved)}

  def load_state_dict(self, state: dict) -> None:
    self.epoch, self.index = int(state["epoch"]), int(state["index"])
    self._moved = [int(i) for i in state.get("moved", [])]  # absent in checkpoints written before it
    self._order = self._epoch_order(self.epoch, self._moved)


class PromptStream:
  """The scheduler's prompt source (training, the simulator, tests): `stream(n)` returns the next n
  prompts of shuffled epochs, or of the list in order, again and again, with seed=None."""

  def __init__(self, prompts: Sequence[Prompt], seed: int | None = None):
    if not prompts:
      raise ValueError("PromptStream needs at least one prompt")
    self.prompts = list(prompts)
    self._indices = IndexStream(len(self.prompts), 0 if seed is None else seed, shuffle=seed is not None)

  def __call__(self, n: int) -> list[Prompt]:
    return [self.prompts[i] for i in self._indices.next(n)]

  def state_dict(self) -> dict:
    return self._indices.state_dict()

  def load_state_dict(self, state: dict) -> None:
    self._indices.load_state_dict(state)
