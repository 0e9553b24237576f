"""Rows of jsonl, json and parquet files, one at a time with their 1-based row numbers.

A row that cannot be parsed comes back as a RowError in place of the row, so the loader's error
policy, not the reader, decides whether it ends the load.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

from ar3po_jax.datasets.records import DataError, RowError

FORMATS = ("jsonl", "json", "parquet")


def file_format(path: str) -> str:
  for fmt in FORMATS:
    if path.endswith("." + fmt):
      return fmt
  raise DataError(f"{path}: unknown data file format; expected one of {['.' + f for f in FORMATS]}")


def read_rows(path: str) -> Iterator[tuple[int, Any]]:
  if not os.path.isfile(path):
    raise DataError(f"data file not found: {path}")
  fmt = file_format(path)
  if fmt == "parquet":
    import pyarrow.parquet as pq

    try:
      batches = pq.ParquetFile(path).iter_batches(batch_size=1024)
    except Exception as e:  # pyarrow raises several types for a corrupt file
      raise DataError(f"{path}: not a readable parquet file: {e}") from e
    number = 0
    for batch in batches:
      for row in batch.to_pylist():
        number += 1
        yield number, row
  elif fmt == "json":
    with open(path, "rb") as f:
      raw = f.read()
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError as e:  # one document: no row to skip, so name the line and stop
      line = raw.count(b"\n", 0, e.start) + 1
      raise DataError(f"{path}: line {line}: not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
      rows = json.loads(text)
    except ValueError as e:
      raise DataError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(rows, list):
      raise DataError(f"{path}: a .json data file must hold a list of rows")
    yield from enumerate(rows, 1)
  else:
    # Bytes, decoded a line at a time: a line that is not UTF-8 is one bad row, not the end of the file.
    with open(path, "rb") as f:
      for number, raw in enumerate(f, 1):
        try:
          line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
          yield number, RowError(f"not UTF-8 ({e.reason} at byte {e.start} of the line)", "not UTF-8")
          continue
        if not line.strip():
          continue
        try:
          yield number, json.loads(line)
        except ValueError as e:
          yield number, RowError(f"invalid JSON: {e}", "invalid JSON")
