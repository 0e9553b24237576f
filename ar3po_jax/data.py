"""Prompts for the scheduler: tokenized problems and a resumable, shuffled stream over them."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ar3po_jax.rollout.types import Prompt
from ar3po_jax.tokenizer import Tokenizer


def to_prompt(uid: str, question: str, answer: str, tokenizer: Tokenizer) -> Prompt:
  bos = [tokenizer.bos_id] if tokenizer.bos_id >= 0 else []  # Qwen's tokenizers have no BOS
  ids = np.asarray(bos + tokenizer.encode(question), np.int32)
  return Prompt(uid=uid, token_ids=ids, answer=answer, text=question)


class PromptStream:
  """Draws prompts in shuffled epochs; the order depends only on (seed, epoch), so the position
  (epoch, index) is the whole state a checkpoint needs to resume the same stream."""

  def __init__(self, prompts: Sequence[Prompt], seed: int):
    if not prompts:
      raise ValueError("PromptStream needs at least one prompt")
    self.prompts, self.seed = list(prompts), seed
    self.epoch, self.index = 0, 0
    self._order = self._shuffle(0)

  def _shuffle(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(len(self.prompts))

  def __call__(self, n: int) -> list[Prompt]:
    out = []
    while len(out) < n:
      if self.index == len(self._order):
        self.epoch, self.index = self.epoch + 1, 0
        self._order = self._shuffle(self.epoch)
      take = min(n - len(out), len(self._order) - self.index)
      out.extend(self.prompts[i] for i in self._order[self.index : self.index + take])
      self.index += take
    return out

  def state_dict(self) -> dict:
    return {"epoch": self.epoch, "index": self.index}

  def load_state_dict(self, state: dict) -> None:
    self.epoch, self.index = int(state["epoch"]), int(state["index"])
    self._order = self._shuffle(self.epoch)
