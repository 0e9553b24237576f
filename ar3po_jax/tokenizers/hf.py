"""Hugging Face `tokenizer.json` tokenizers (Qwen2.5, Llama 3.x) behind the project's Tokenizer
interface (`ar3po_jax.tokenizers`).

Special tokens follow tokenizer_config.json unless given. Models without a BOS token (Qwen) get
bos_id = -1: `datasets.prompts.Template.encode` then adds none. The sampling kernel stops on one id, eos_id;
decode also cuts at any of `stop_ids`, so a template's other stop tokens still end the text the
verifier sees.
"""

from __future__ import annotations

import json
import os
from typing import Sequence


NO_TOKEN = -1


def _token_text(value) -> str | None:
  """tokenizer_config.json writes special tokens as strings or as {"content": ...} records."""
  if isinstance(value, dict):
    return value.get("content")
  return value or None


class HFTokenizer:
  """A `tokenizers.Tokenizer`; encode adds no special tokens (templates spell them out)."""

  def __init__(self, backend, path: str = "", bos: str | None = None, eos: str | None = None, pad: str | None = None, stops: Sequence[str] = ()):
    self._backend, self.path = backend, path
    self._names = {"bos": bos, "eos": eos, "pad": pad}
    self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
    self.bos_id = self.token_id(bos) if bos else NO_TOKEN
    if not eos:
      raise ValueError(f"tokenizer {path or '<json>'}: no EOS token in tokenizer_config.json; pass eos=")
    self.eos_id = self.token_id(eos)
    self.pad_id = self.token_id(pad) if pad else self.eos_id  # Llama 3 has no pad; masks mark padding
    self.stop_ids = tuple(dict.fromkeys([self.eos_id] + [self.token_id(s) for s in stops]))

  @classmethod
  def from_json(cls, tokenizer_json: str, **kwargs) -> "HFTokenizer":
    from tokenizers import Tokenizer as Backend

    return cls(Backend.from_str(tokenizer_json), **kwargs)

  @classmethod
  def load(cls, path: str, bos: str | None = None, eos: str | None = None, pad: str | None = None) -> "HFTokenizer":
    """path: a tokenizer.json file or a folder holding one (and usually tokenizer_config.json)."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    json_path = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
    if not os.path.isfile(json_path):
      raise FileNotFoundError(f"tokenizer file not found: {json_path}")
    special: dict = {}
    config_path = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(config_path):
      with open(config_path) as f:
        special = json.load(f)
    with open(json_path, encoding="utf-8") as f:
      text = f.read()
    return cls.from_json(
        text,
        path=json_path,
        bos=bos or _token_text(special.get("bos_token")),
        eos=eos or _token_text(special.get("eos_token")),
        pad=pad or _token_text(special.get("pad_token")),
    )

  def token_id(self, token: str) -> int:
    i = self._backend.token_to_id(token)
    if i is None:
      raise ValueError(f"tokenizer {self.path or '<json>'} has no token {token!r}")
    return int(i)

  def with_stop_tokens(self, stops: Sequence[str]) -> "HFTokenizer":
    """The same tokenizer with eos_id = the first stop token and decode cut at any of them."""
    if not stops:
      return self
    return HFTokenizer(self._backend, self.path, self._names["bos"], stops[0], self._names["pad"] or self._names["eos"], stops)

  def encode(self, text: str) -> list[int]:
    return list(self._backend.encode(text, add_special_tokens=False).ids)

  def decode(self, ids: Sequence[int]) -> str:
    kept = []
    for i in ids:
      i = int(i)
      if i in self.stop_ids:
        break
      if i not in (self.bos_id, self.pad_id):
        kept.append(i)
    return self._backend.decode(kept, skip_special_tokens=False)
