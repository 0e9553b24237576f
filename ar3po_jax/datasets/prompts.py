"""The one prompt builder: a chat format wrapped around an answer instruction, tokenized into a
`types.Prompt` (`Template().prompt(...)` is the embedded run's plain BOS + question).

Formats (how the turn is spelled, and the tokens that end the assistant's answer):
  plain        the question as is, BOS prepended when the tokenizer has one; the embedded run's format
               and the usual one for base-model completions. Stops at the tokenizer's EOS.
  qwen_chat    Qwen2.5's ChatML (<|im_start|>role ... <|im_end|>), used by the papers' verl runs on
               both base and instruct Qwen2.5 models; the system turn defaults to the one Qwen2.5's
               own chat template inserts. Stops at <|im_end|>, then <|endoftext|>.
  llama3_chat  Llama 3.x instruct headers; stops at <|eot_id|>, then <|end_of_text|>. Our choice omits
               the date lines Llama 3.1's template adds to the system turn.
Instructions (where the answer goes, so the verifier can find it):
  boxed        "Please reason step by step, and put your final answer within \\boxed{}." (Qwen2.5-Math)
  dapo         DAPO-Math-17k's own wording, answer on a last line "Answer: ..." (DAPO paper)
  none         the question alone
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ar3po_jax.types import Prompt

INSTRUCTIONS = {
    "none": "{question}",
    "boxed": "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    "dapo": (
        "Solve the following math problem step by step. The last line of your response should be of the form "
        "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{question}\n\n"
        'Remember to put your answer on its own line after "Answer:".'
    ),
}
QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
FORMATS = {
    # format: (text around the user message, stop tokens (first = EOS for sampling), default system)
    "plain": ("{user}", (), ""),
    "qwen_chat": (
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
        ("<|im_end|>", "<|endoftext|>"),
        QWEN_DEFAULT_SYSTEM,
    ),
    "llama3_chat": (
        "<|begin_of_text|>{system_turn}<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        ("<|eot_id|>", "<|end_of_text|>"),
        "",
    ),
}


@dataclasses.dataclass(frozen=True)
class Template:
  format: str = "plain"
  instruction: str = "none"
  system: str | None = None  # None: the format's default system turn

  def __post_init__(self):
    if self.format not in FORMATS:
      raise ValueError(f"prompt format must be one of {sorted(FORMATS)}, got {self.format!r}")
    if self.instruction not in INSTRUCTIONS:
      raise ValueError(f"prompt instruction must be one of {sorted(INSTRUCTIONS)}, got {self.instruction!r}")

  @classmethod
  def from_config(cls, tokenizer_config) -> "Template":
    """From `config.tokenizer` (fields format, instruction, system; '' system means the default)."""
    get = lambda name, default: tokenizer_config.get(name, default) if hasattr(tokenizer_config, "get") else default  # noqa: E731
    system = get("system", "")
    return cls(get("format", "plain"), get("instruction", "none"), system or None)

  @property
  def stop_tokens(self) -> tuple[str, ...]:
    return FORMATS[self.format][1]

  def render(self, question: str) -> str:
    text, _, default_system = FORMATS[self.format]
    user = INSTRUCTIONS[self.instruction].format(question=question)
    system = default_system if self.system is None else self.system
    system_turn = f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>" if system else ""
    return text.format(user=user, system=system, system_turn=system_turn)

  def bind(self, tokenizer):
    """The tokenizer whose stop_ids (all of them) end this format's answers (HF tokenizers only; plain keeps any)."""
    if not self.stop_tokens:
      return tokenizer
    if not hasattr(tokenizer, "with_stop_tokens"):
      raise ValueError(f"prompt format {self.format!r} needs a tokenizer.json tokenizer with its special tokens")
    return tokenizer.with_stop_tokens(self.stop_tokens)

  def encode(self, question: str, tokenizer) -> np.ndarray:
    ids = tokenizer.encode(self.render(question))
    if self.format == "plain" and tokenizer.bos_id >= 0:
      ids = [tokenizer.bos_id] + ids
    return np.asarray(ids, np.int32)

  def prompt(self, uid: str, question: str, answer: str, tokenizer) -> Prompt:
    return Prompt(uid=uid, token_ids=self.encode(question, tokenizer), answer=answer, text=question)


def field_overrides(spec) -> dict | None:
  """A data set spec's `fields` section as a FieldMap override: the non-empty entries (None: none)."""
  fields = {k: v for k, v in spec.get("fields", {}).items() if v and not (k == "answer_format" and v == "raw")}
  return fields or None
