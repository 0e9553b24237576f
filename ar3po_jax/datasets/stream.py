"""The scheduler's prompt source: a resumable stream over a fixed list of prompts, in shuffled epochs
(or in file order). Prompts themselves are built by `datasets.prompts.Template`."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ar3po_jax.types import Prompt


class IndexStream:
  """Indices 0..length-1 in shuffled epochs (file order with shuffle=False). The order depends only on
  (seed, epoch), so the position (epoch, index) is the whole state a checkpoint needs to resume."""

  def __init__(self, length: int, seed: int, shuffle: bool = True):
    if length < 1:
      raise ValueError("IndexStream needs a non-empty source")
    self.length, self.seed, self.shuffle = length, seed, shuffle
    self.epoch, self.index = 0, 0
    self._order = self._epoch_order(0)

  def _epoch_order(self, epoch: int) -> np.ndarray:
    if not self.shuffle:
      return np.arange(self.length)
    return np.random.default_rng([self.seed, epoch]).permutation(self.length)

  def next(self, n: int) -> list[int]:
    out: list[int] = []
    while len(out) < n:
      if self.index == self.length:
        self.epoch, self.index = self.epoch + 1, 0
        self._order = self._epoch_order(self.epoch)
      take = min(n - len(out), self.length - self.index)
      out.extend(int(i) for i in self._order[self.index : self.index + take])
      self.index += take
    return out

  def state_dict(self) -> dict:
    return {"epoch": self.epoch, "index": self.index}

  def load_state_dict(self, state: dict) -> None:
    self.epoch, self.index = int(state["epoch"]), int(state["index"])
    self._order = self._epoch_order(self.epoch)


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
