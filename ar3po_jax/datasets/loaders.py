"""Loaders for the papers' data sets (DAPO-Math-17k, MATH-500, AIME24, AMC23, GSM8K) and for any
jsonl / json / parquet file with a field mapping.

  problems, stats = load("math500", "/data/math500_test.jsonl")
  problems, stats = load("my_set", "/data/x.parquet", FieldMap("q", "a"), on_error="skip")

on_error='raise' stops at the first malformed row with the file and row number in the message;
'skip' drops such rows and counts them by reason in `stats.skipped`.

A path may also be a prepared TensorFlow Datasets folder (`format='tfds'`, or found by its
`dataset_info.json` with the default `format='auto'`): a data set built once from a local file by
`python -m ar3po_jax.datasets.tfds_builders` and read back through TFDS's array_record
`data_source`, which needs no TensorFlow. Its rows hold problems already extracted (uid, question,
answer, source), so no field mapping applies; they come back in the source file's order.

  problems, stats = load("math500", "/data/tfds/math500/<key>/math_file_dataset/1.0.0")
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator

from ar3po_jax.datasets.readers import read_rows
from ar3po_jax.datasets.records import ON_ERROR, DataError, FieldMap, LoadStats, MathProblem, RowError, extract

# Field mappings of the files as published (verl's parquet schema for DAPO-Math-17k).
KNOWN: dict[str, FieldMap] = {
    "dapo_math": FieldMap(question="prompt", answer="reward_model.ground_truth", uid="extra_info.index"),
    "math500": FieldMap(question="problem", answer="answer", uid="unique_id"),
    "aime24": FieldMap(question="problem", answer="answer", uid="id"),
    "amc23": FieldMap(question="problem", answer="answer", uid="id", answer_format="number"),
    "gsm8k": FieldMap(question="question", answer="answer", answer_format="gsm8k"),
    "math_aime_eval": FieldMap(question="question", answer="ref_answer", source="data_source"),
}
# The shared data folder's file names, for configs that name a data set without a path.
DEFAULT_FILES = {
    "dapo_math": "dapo_math_17k.parquet",
    "math500": "math500_test.jsonl",
    "aime24": "aime24_test.jsonl",
    "amc23": "amc23_test.jsonl",
    "gsm8k": "gsm8k_test.jsonl",
    "math_aime_eval": "math_aime_eval.jsonl",
}
# DAPO-Math-17k as released wraps each problem in its answer instruction; we strip it so that the
# prompt template alone decides the wording (`prompts.INSTRUCTIONS['dapo']` puts it back).
_DAPO_PREFIX = (
    "Solve the following math problem step by step. The last line of your response should be of the form "
    "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
)
_DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'


def strip_dapo_instruction(question: str) -> str:
  if question.startswith(_DAPO_PREFIX) and question.endswith(_DAPO_SUFFIX):
    return question[len(_DAPO_PREFIX) : -len(_DAPO_SUFFIX)]
  return question


FORMATS = ("auto", "file", "tfds")
# The features every TFDS data set of ours stores (tfds_builders._FEATURES).
_TFDS_FIELDS = FieldMap(question="question", answer="answer", uid="uid", source="source")


def is_tfds_folder(path: str) -> bool:
  """A prepared TFDS data set: the version folder that holds dataset_info.json and the record files."""
  return os.path.isdir(path) and os.path.isfile(os.path.join(path, "dataset_info.json"))


def _tfds_rows(path: str, split: str) -> Iterator[tuple[int, Any]]:
  from ar3po_jax.datasets import tfds_builders  # imports tensorflow_datasets: only when asked for

  source = tfds_builders.open_folder(path, split)
  for index in range(len(source)):
    yield index + 1, tfds_builders.decode_row(source[index])


def field_map(name: str, fields: FieldMap | dict | None = None) -> FieldMap:
  if fields:
    return fields if isinstance(fields, FieldMap) else FieldMap.from_config(fields)
  if name not in KNOWN:
    raise DataError(f"data set {name!r} has no known layout; give a field mapping (known: {sorted(KNOWN)})")
  return KNOWN[name]


def load(
    name: str,
    path: str,
    fields: FieldMap | dict | None = None,
    on_error: str = "raise",
    limit: int = 0,
    format: str = "auto",
    split: str = "",
) -> tuple[list[MathProblem], LoadStats]:
  """Every problem in the file (the first `limit` when > 0), in file order.

  format: 'file' (jsonl / json / parquet), 'tfds' (a prepared TFDS folder, see the module
  docstring) or 'auto' (tfds when `path` is such a folder). split: the TFDS split to read; empty
  means the folder's only split.
  """
  if on_error not in ON_ERROR:
    raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
  if format not in FORMATS:
    raise ValueError(f"data format must be one of {FORMATS}, got {format!r} (for {path})")
  tfds = format == "tfds" or (format == "auto" and is_tfds_folder(path))
  if tfds:
    if fields:
      raise DataError(f"{path}: a TFDS data set holds extracted problems (uid, question, answer, source); "
                      "drop the field mapping")
    mapping, rows = _TFDS_FIELDS, _tfds_rows(path, split)
  else:
    mapping, rows = field_map(name, fields), read_rows(path)
  stats = LoadStats(path)
  problems: list[MathProblem] = []
  seen: set[str] = set()
  for number, row in rows:
    stats.rows += 1
    try:
      if isinstance(row, RowError):
        raise row
      problem = extract(row, mapping, name, number)
      if tfds:  # the stored uid already carries its data set's name
        problem = dataclasses.replace(problem, uid=problem.uid.split("/", 1)[1])
      if problem.uid in seen:
        raise RowError(f"duplicate uid {problem.uid!r}", "duplicate uid")
    except RowError as e:
      if on_error == "raise":
        raise DataError(f"{path}: row {number}: {e}") from None
      stats.skipped[e.kind] += 1
      continue
    if name == "dapo_math":
      problem = MathProblem(problem.uid, strip_dapo_instruction(problem.question), problem.answer, problem.source)
    seen.add(problem.uid)
    problems.append(problem)
    if limit and len(problems) >= limit:
      break
  stats.loaded = len(problems)
  if not problems:
    raise DataError(f"{path}: no usable rows ({stats.rows} read, {stats.num_skipped} skipped: {dict(stats.skipped)})")
  return problems, stats
