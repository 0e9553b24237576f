"""Math problems as rows of a file: the record, the field mapping that finds it in a row, and the
error policy for rows that do not fit."""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Mapping

ON_ERROR = ("raise", "skip")
ANSWER_FORMATS = ("raw", "gsm8k", "number")


@dataclasses.dataclass(frozen=True)
class MathProblem:
  """uid: '<data set>/<row id>', unique within a data set (it keys replay buffers and posteriors)."""

  uid: str
  question: str
  answer: str
  source: str = ""


class DataError(ValueError):
  pass


class RowError(ValueError):
  """A row that does not fit its field mapping; the loader adds the file and row. kind: the short
  reason that skipped rows are counted under."""

  def __init__(self, message: str, kind: str = ""):
    super().__init__(message)
    self.kind = kind or message


@dataclasses.dataclass(frozen=True)
class FieldMap:
  """Where a row keeps each field: dotted paths ('reward_model.ground_truth'; integers index lists).

  question: a string, or a chat (a list of {role, content}), whose last user turn is the question.
  uid: empty means the row number. answer_format: 'raw'; 'gsm8k' (the text after '####');
  'number' (a float answer such as 27.0 written as 27).
  """

  question: str
  answer: str
  uid: str = ""
  source: str = ""
  answer_format: str = "raw"

  def __post_init__(self):
    if self.answer_format not in ANSWER_FORMATS:
      raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}")
    if not self.question or not self.answer:
      raise ValueError("a field mapping needs question and answer paths")

  @classmethod
  def from_config(cls, fields: Mapping[str, Any]) -> "FieldMap":
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
      raise ValueError(f"unknown field mapping keys {unknown}; known: {sorted(known)}")
    return cls(**dict(fields))


def lookup(row: Any, path: str) -> Any:
  value = row
  for part in path.split("."):
    if isinstance(value, Mapping) and part in value:
      value = value[part]
    elif isinstance(value, (list, tuple)) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
      value = value[int(part)]
    else:
      raise RowError(f"no field {path!r}", "missing field")
  return value


def _question_text(value: Any) -> str:
  if isinstance(value, (list, tuple)):
    users = [m.get("content") for m in value if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users:
      raise RowError("chat prompt has no user turn", "bad question")
    value = users[-1]
  if not isinstance(value, str) or not value.strip():
    raise RowError(
        f"question must be a non-empty string, got {type(value).__name__} {str(value)[:40]!r}", "bad question"
    )
  return value


def _answer_text(value: Any, answer_format: str) -> str:
  if value is None or isinstance(value, bool) or isinstance(value, (list, dict)):
    raise RowError(f"answer must be a string or number, got {str(value)[:60]!r}", "bad answer")
  if isinstance(value, float):
    if not math.isfinite(value):
      raise RowError(f"answer is {value}", "bad answer")
    if answer_format == "number" and value.is_integer():
      return str(int(value))
  text = str(value).strip()
  if answer_format == "gsm8k":
    if "####" not in text:
      raise RowError("GSM8K answer has no '#### N' line", "bad answer")
    text = text.rsplit("####", 1)[1].strip().replace(",", "")
  if answer_format == "number":
    try:
      number = float(text)
    except ValueError:
      number = None
    if number is not None and math.isfinite(number) and number.is_integer() and "." in text:
      text = str(int(number))
  if not text:
    raise RowError("answer is empty", "bad answer")
  return text


def extract(row: Any, fields: FieldMap, name: str, row_number: int) -> MathProblem:
  if not isinstance(row, Mapping):
    raise RowError(f"row is a {type(row).__name__}, not an object", "not an object")
  uid = str(lookup(row, fields.uid)) if fields.uid else str(row_number)
  source = str(lookup(row, fields.source)) if fields.source else name
  return MathProblem(
      uid=f"{name}/{uid}",
      question=_question_text(lookup(row, fields.question)),
      answer=_answer_text(lookup(row, fields.answer), fields.answer_format),
      source=source,
  )


@dataclasses.dataclass
class LoadStats:
  """What a load read, kept and skipped (reason -> count), for logs and eval reports."""

  path: str
  rows: int = 0
  loaded: int = 0
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)

  @property
  def num_skipped(self) -> int:
    return sum(self.skipped.values())

  def to_dict(self) -> dict:
    return {"path": self.path, "rows": self.rows, "loaded": self.loaded, "skipped": dict(self.skipped)}
