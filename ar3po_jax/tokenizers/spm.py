"""Sentencepiece tokenizers, and training one on a task's own text.

The embedded run trains its tokenizer on the arithmetic corpus in-process (well under a second) and
caches the `.model` file in the workdir, so a second run reuses it byte for byte.
"""

from __future__ import annotations

import io
import os
from typing import Iterable, Sequence

import sentencepiece as spm

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class SentencePieceTokenizer:
  """A sentencepiece `.model`; decode stops at the first EOS and drops padding."""

  def __init__(self, model_proto: bytes, path: str = ""):
    self.path = path
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.vocab_size = self._sp.get_piece_size()
    self.pad_id, self.bos_id, self.eos_id = self._sp.pad_id(), self._sp.bos_id(), self._sp.eos_id()
    if min(self.pad_id, self.bos_id, self.eos_id) < 0:
      raise ValueError(f"sentencepiece model {path or '<bytes>'} must define pad, bos and eos ids")

  @property
  def stop_ids(self) -> tuple[int, ...]:
    return (self.eos_id,)

  @classmethod
  def load(cls, path: str) -> "SentencePieceTokenizer":
    if not os.path.isfile(path):
      raise FileNotFoundError(f"tokenizer file not found: {path}")
    with open(path, "rb") as f:
      return cls(f.read(), path)

  def encode(self, text: str) -> list[int]:
    return list(self._sp.encode(text))

  def decode(self, ids: Sequence[int]) -> str:
    kept = []
    for i in ids:
      i = int(i)
      if i == self.eos_id:
        break
      if i not in (self.pad_id, self.bos_id):
        kept.append(i)
    return self._sp.decode(kept)


def train_sentencepiece(corpus: Iterable[str], vocab_size: int, path: str) -> SentencePieceTokenizer:
  """Trains a BPE model with single-digit pieces (numbers stay digit by digit) and saves it at path."""
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(corpus),
      model_writer=model,
      vocab_size=vocab_size,
      model_type="bpe",
      split_digits=True,
      character_coverage=1.0,
      hard_vocab_limit=False,
      pad_id=PAD_ID,
      unk_id=UNK_ID,
      bos_id=BOS_ID,
      eos_id=EOS_ID,
      user_defined_symbols=["\\boxed{"],
      add_dummy_prefix=True,
      minloglevel=2,
  )
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(model.getvalue())
  os.replace(tmp, path)  # atomic: a killed run never leaves a half-written tokenizer
  return SentencePieceTokenizer(model.getvalue(), path)


def load_or_train(path: str, corpus_fn, vocab_size: int) -> SentencePieceTokenizer:
  """The tokenizer at path, training and saving it there first if the file does not exist."""
  if os.path.isfile(path):
    return SentencePieceTokenizer.load(path)
  return train_sentencepiece(corpus_fn(), vocab_size, path)
