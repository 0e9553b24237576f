"""The safetensors file format, read and written with NumPy alone (no torch, no extra package).

A file is an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
byte range, then the raw bytes. Reading memory-maps the file and hands out one tensor at a time, so
a loader holds at most one converted tensor beside the mapping; writing streams tensor by tensor
after a header computed from shapes alone, so a sharded model is gathered one tensor at a time.
bfloat16 has no NumPy dtype of its own; ml_dtypes (a jax dependency) supplies it.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Callable, Iterable, Iterator

import ml_dtypes
import numpy as np

DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_ALIGN = 8  # header padded so tensor data starts 8-byte aligned, as the reference writer does


class SafetensorsFile:
  """Lazy, memory-mapped access to the tensors of one .safetensors file."""

  def __init__(self, path: str):
    self.path = path
    with open(path, "rb") as f:
      (header_len,) = struct.unpack("<Q", f.read(8))
      try:
        header = json.loads(f.read(header_len))
      except ValueError as e:
        raise ValueError(f"{path}: unreadable safetensors header: {e}") from e
    self.metadata = header.pop("__metadata__", {}) or {}
    self._entries = header
    self._data_start = 8 + header_len
    self._mmap = np.memmap(path, dtype=np.uint8, mode="r") if os.path.getsize(path) > self._data_start else None

  def keys(self) -> list[str]:
    return list(self._entries)

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._entries[name]["shape"])

  def get(self, name: str) -> np.ndarray:
    """A read-only view into the mapped file (no copy)."""
    entry = self._entries[name]
    if entry["dtype"] not in DTYPES:
      raise ValueError(f"{self.path}: tensor {name} has unsupported dtype {entry['dtype']}")
    dtype = DTYPES[entry["dtype"]]
    begin, end = entry["data_offsets"]
    shape = tuple(entry["shape"])
    if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
      raise ValueError(
          f"{self.path}: tensor {name} byte range {begin}:{end} does not fit shape {shape} {entry['dtype']}"
      )
    if end == begin:
      return np.zeros(shape, dtype)
    raw = self._mmap[self._data_start + begin : self._data_start + end]
    return raw.view(dtype).reshape(shape)

  def __iter__(self) -> Iterator[tuple[str, np.ndarray]]:
    for name in self._entries:
      yield name, self.get(name)


def dtype_name(dtype) -> str:
  dtype = np.dtype(dtype)
  if dtype not in _NAMES:
    raise ValueError(f"safetensors cannot store dtype {dtype}")
  return _NAMES[dtype]


def write(
    path: str,
    specs: Iterable[tuple[str, tuple[int, ...], np.dtype]],
    fetch: Callable[[str], np.ndarray],
    metadata: dict[str, str] | None = None,
) -> int:
  """Writes the tensors named in specs, calling fetch(name) for each only when its turn comes.

  Returns the bytes of tensor data written. Goes through a temporary file, so a crash never leaves
  a truncated file under the final name.
  """
  specs = [(name, tuple(int(d) for d in shape), np.dtype(dtype)) for name, shape, dtype in specs]
  header: dict = {"__metadata__": dict(metadata or {"format": "pt"})}
  offset = 0
  for name, shape, dtype in specs:
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    header[name] = {"dtype": dtype_name(dtype), "shape": list(shape), "data_offsets": [offset, offset + size]}
    offset += size
  header_bytes = json.dumps(header, separators=(",", ":")).encode()
  header_bytes += b" " * (-(8 + len(header_bytes)) % _ALIGN)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(struct.pack("<Q", len(header_bytes)))
    f.write(header_bytes)
    for name, shape, dtype in specs:
      array = np.ascontiguousarray(np.asarray(fetch(name)).astype(dtype, copy=False))
      if array.shape != shape:
        raise ValueError(f"{path}: tensor {name} has shape {array.shape}, expected {shape}")
      f.write(array.tobytes())
  os.replace(tmp, path)
  return offset
