"""TensorFlow Datasets builders over the local math files and the embedded arithmetic task.

Written as array_record, read back through `as_data_source()`: random access by index, no
TensorFlow needed (tfrecord and `tfds.as_numpy` would need it). Data sets are built once into
`data_dir/<name>/<fingerprint>`, where the fingerprint covers the source file's size and modification
time and the loader settings, so a changed file or setting builds afresh instead of reusing a stale
copy. `IndexStream` then walks a source in shuffled epochs that depend only on (seed, epoch), so
its position is the whole state a checkpoint needs to resume.

  source = build_file_dataset("math500", "/data/math500_test.jsonl", "/tmp/tfds")["test"]
  stream = IndexStream(len(source), seed=0)
  rows = [decode(source[i]) for i in stream.next(8)]

A run reads a built data set by its folder, through the same `datasets.load` as a file: build it
once, then give the printed folder as the data path (`task.path`, `eval.benchmarks.NAME.path`, or
eval's `benchmarks.NAME.path`):

  python -m ar3po_jax.datasets.tfds_builders --loader=math500 --path=/data/math500_test.jsonl --data_dir=/data/tfds

Our choices: records keep the source file's order (`disable_shuffling`), so a TFDS load returns the
same problems in the same order as the file it was built from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from typing import Any

import tensorflow_datasets as tfds

from ar3po_jax.datasets.stream import IndexStream  # noqa: F401  (re-exported: the stream over built data sets)
from ar3po_jax.datasets import loaders
from ar3po_jax.datasets.records import DataError, FieldMap, MathProblem

_FEATURES = ("uid", "question", "answer", "source")


class _LocalBuilder(tfds.core.GeneratorBasedBuilder):
  """Builders that download nothing. No code_path: TFDS would look for a checksums file beside the
  module, through importlib_resources, a package it does not install."""

  code_path = None

_FILE_FORMAT = "array_record"


def _features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({name: tfds.features.Text() for name in _FEATURES})


def _example(p: MathProblem) -> tuple[str, dict[str, str]]:
  return p.uid, {"uid": p.uid, "question": p.question, "answer": p.answer, "source": p.source}


class MathFileDataset(_LocalBuilder):
  """One local data file as a TFDS data set with a single split (train or test)."""

  VERSION = tfds.core.Version("1.0.0")

  def __init__(
      self, *, loader: str, path: str, split: str, fields: dict | None = None, on_error: str = "raise", **kwargs
  ):
    self._loader, self._path, self._split = loader, path, split
    self._fields, self._on_error = fields, on_error
    self.load_stats: dict = {}
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self, description=f"{self._loader} from {self._path}", features=_features(), disable_shuffling=True
    )

  def _split_generators(self, dl_manager):
    return {self._split: self._generate_examples()}

  def _generate_examples(self):
    problems, stats = loaders.load(self._loader, self._path, self._fields, self._on_error)
    self.load_stats = stats.to_dict()
    for p in problems:
      yield _example(p)


class ArithmeticDataset(_LocalBuilder):
  """The embedded arithmetic task (train and test splits) from its generator settings."""

  VERSION = tfds.core.Version("1.0.0")

  def __init__(
      self, *, seed: int, num_train: int, num_eval: int, level_weights: tuple[float, ...], teacher_slip: float = 0.0,
      **kwargs,
  ):
    self._task_args = (seed, num_train, num_eval, tuple(level_weights), teacher_slip)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description="embedded arithmetic task", features=_features())

  def _split_generators(self, dl_manager):
    from ar3po_jax.tasks.arithmetic import ArithmeticTask

    task = ArithmeticTask.generate(*self._task_args)
    return {"train": self._generate_examples(task.train), "test": self._generate_examples(task.eval)}

  def _generate_examples(self, problems):
    for p in problems:
      yield _example(MathProblem(p.uid, p.question, p.answer, f"arithmetic/level{p.level}"))


def _fingerprint(*parts: Any) -> str:
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _prepare(builder_cls, data_dir: str, **kwargs) -> tfds.core.DatasetBuilder:
  builder = builder_cls(data_dir=data_dir, file_format=_FILE_FORMAT, **kwargs)
  builder.download_and_prepare(file_format=_FILE_FORMAT)
  return builder


def _build(builder_cls, data_dir: str, **kwargs) -> dict:
  builder = _prepare(builder_cls, data_dir, **kwargs)
  return {split: builder.as_data_source(split=split) for split in builder.info.splits}


def _file_builder(loader: str, path: str, data_dir: str, split: str | None, fields, on_error: str):
  split = split or ("train" if loader == "dapo_math" else "test")
  fields = dict(fields.__dict__) if isinstance(fields, FieldMap) else (dict(fields) if fields else None)
  stat = os.stat(path)
  key = _fingerprint(os.path.abspath(path), stat.st_size, stat.st_mtime_ns, loader, split, fields, on_error)
  return _prepare(
      MathFileDataset, os.path.join(data_dir, loader, key), loader=loader, path=path, split=split, fields=fields,
      on_error=on_error,
  )


def build_file_dataset(
    loader: str, path: str, data_dir: str, split: str | None = None, fields: FieldMap | dict | None = None,
    on_error: str = "raise",
) -> dict:
  """{split: data source} for a local file; split defaults to 'train' for DAPO-Math, else 'test'."""
  builder = _file_builder(loader, path, data_dir, split, fields, on_error)
  return {name: builder.as_data_source(split=name) for name in builder.info.splits}


def build_file_folder(
    loader: str, path: str, data_dir: str, split: str | None = None, fields: FieldMap | dict | None = None,
    on_error: str = "raise",
) -> str:
  """Builds (or finds) the TFDS data set of a local file; returns the folder `datasets.load` reads."""
  return str(_file_builder(loader, path, data_dir, split, fields, on_error).data_dir)


def open_folder(folder: str, split: str = ""):
  """The array_record data source of one split of a prepared TFDS folder (no TensorFlow needed)."""
  if not loaders.is_tfds_folder(folder):
    raise DataError(f"{folder}: not a prepared TFDS data set (no dataset_info.json); build one with "
                    "`python -m ar3po_jax.datasets.tfds_builders`")
  builder = tfds.builder_from_directory(folder)
  splits = sorted(builder.info.splits)
  if not split:
    if len(splits) != 1:
      raise DataError(f"{folder}: holds splits {splits}; name one (the data spec's split field)")
    split = splits[0]
  if split not in splits:
    raise DataError(f"{folder}: no split {split!r}; it holds {splits}")
  if str(builder.info.file_format) != str(tfds.core.FileFormat.ARRAY_RECORD):
    raise DataError(f"{folder}: stored as {builder.info.file_format}; only array_record reads without TensorFlow")
  return builder.as_data_source(split=split)


def build_arithmetic_dataset(task_config, data_dir: str) -> dict:
  """{'train', 'test': data source} for `config.task` of the embedded run."""
  args = dict(
      seed=task_config.seed,
      num_train=task_config.num_train,
      num_eval=task_config.num_eval,
      level_weights=tuple(task_config.level_weights),
      teacher_slip=task_config.get("teacher_slip", 0.0),
  )
  return _build(ArithmeticDataset, os.path.join(data_dir, "arithmetic", _fingerprint(args)), **args)


def decode_row(example: dict) -> dict[str, str]:
  """A data source element (bytes fields) as a row of text fields."""
  return {k: v.decode("utf-8") if isinstance(v, bytes) else str(v) for k, v in example.items()}


def decode(example: dict) -> MathProblem:
  """A data source element (bytes fields) as a MathProblem."""
  text = decode_row(example)
  return MathProblem(text["uid"], text["question"], text["answer"], text["source"])


def main(argv: list[str] | None = None) -> str:
  parser = argparse.ArgumentParser(
      prog="python -m ar3po_jax.datasets.tfds_builders",
      description="Build a TFDS (array_record) data set from a local jsonl / json / parquet file and print its folder, "
      "the data path a config then names.",
  )
  known = sorted(loaders.KNOWN)
  parser.add_argument("--loader", required=True, help=f"a known layout {known}, or any name with --fields")
  parser.add_argument("--path", required=True, help="the source file")
  parser.add_argument("--data_dir", required=True, help="where TFDS data sets are built")
  parser.add_argument("--split", default="", help="split name (default: train for dapo_math, else test)")
  parser.add_argument("--fields", default="", help='field mapping as JSON, e.g. \'{"question": "q", "answer": "a"}\'')
  parser.add_argument("--on_error", default="raise", choices=("raise", "skip"))
  args = parser.parse_args(argv)
  fields = json.loads(args.fields) if args.fields else None
  folder = build_file_folder(args.loader, args.path, args.data_dir, args.split or None, fields, args.on_error)
  print(folder)
  return folder


if __name__ == "__main__":
  main()


