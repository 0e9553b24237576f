"""Tokenizers behind one small interface: a sentencepiece `.model` (`spm`, the embedded run's, trained
on the task's own text) or a Hugging Face `tokenizer.json` (`hf`), opened from a path by `load_tokenizer`."""

from __future__ import annotations

import os
from typing import Protocol, Sequence

from ar3po_jax.tokenizers.hf import HFTokenizer
from ar3po_jax.tokenizers.spm import SentencePieceTokenizer, load_or_train, train_sentencepiece


class Tokenizer(Protocol):
  vocab_size: int
  pad_id: int
  bos_id: int
  eos_id: int
  stop_ids: tuple[int, ...]  # every token that ends a response; eos_id is the first

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...


def load_tokenizer(path: str, **special):
  """A sentencepiece `.model` file, a `tokenizer.json`, or a checkpoint folder holding either."""
  if os.path.isdir(path):
    if os.path.isfile(os.path.join(path, "tokenizer.json")):
      return HFTokenizer.load(path, **special)
    if os.path.isfile(os.path.join(path, "tokenizer.model")):
      return SentencePieceTokenizer.load(os.path.join(path, "tokenizer.model"))
    raise FileNotFoundError(f"{path}: no tokenizer.json or tokenizer.model")
  if path.endswith(".json"):
    return HFTokenizer.load(path, **special)
  return SentencePieceTokenizer.load(path)


__all__ = [
    "HFTokenizer", "SentencePieceTokenizer", "Tokenizer", "load_or_train", "load_tokenizer", "train_sentencepiece",
]
