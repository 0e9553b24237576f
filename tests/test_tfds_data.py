"""A data set built once as TFDS array_record and read back by the loader every run uses
(`datasets.load`, called by the real-model setup and by evaluation with a data spec's path)."""

from __future__ import annotations

import json

import pytest

from ar3po_jax import datasets
from ar3po_jax.datasets import loaders

tfds_builders = pytest.importorskip("ar3po_jax.datasets.tfds_builders")

ROWS = [
    {"id": 7, "problem": "What is $3+4$?", "answer": "7"},
    {"id": 2, "problem": "Compute $2^{10}$.", "answer": "1024"},
    {"id": 9, "problem": "Solve $x+1=0$.", "answer": "-1"},
    {"id": 1, "problem": "Simplify $\\frac{6}{8}$.", "answer": "\\frac{3}{4}"},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """(source jsonl, TFDS folder) made through the command-line builder users run."""
  root = tmp_path_factory.mktemp("tfds")
  path = root / "aime_like.jsonl"
  path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
  folder = tfds_builders.main(["--loader=aime24", f"--path={path}", f"--data_dir={root / 'built'}"])
  return str(path), folder


def test_a_tfds_folder_loads_the_same_problems_in_the_same_order_as_its_file(built):
  path, folder = built
  assert loaders.is_tfds_folder(folder) and not loaders.is_tfds_folder(path)
  from_file, _ = datasets.load("aime24", path)
  from_tfds, stats = datasets.load("aime24", folder)  # format 'auto' finds the folder's dataset_info.json
  assert [p.uid for p in from_tfds] == ["aime24/7", "aime24/2", "aime24/9", "aime24/1"]
  assert from_tfds == from_file
  assert from_tfds[3] == datasets.MathProblem("aime24/1", "Simplify $\\frac{6}{8}$.", "\\frac{3}{4}", "aime24")
  assert (stats.rows, stats.loaded, stats.num_skipped, stats.path) == (4, 4, 0, folder)
  explicit, _ = datasets.load("aime24", folder, format="tfds", split="test", limit=2)
  assert explicit == from_file[:2]


def test_a_rebuild_of_an_unchanged_file_reuses_the_folder(built):
  path, folder = built
  again = tfds_builders.build_file_folder("aime24", path, folder.split("/aime24/")[0])
  assert again == folder


def test_tfds_mistakes_name_the_folder(built, tmp_path):
  path, folder = built
  with pytest.raises(datasets.DataError, match="no split 'train'.*'test'"):
    datasets.load("aime24", folder, split="train")
  with pytest.raises(datasets.DataError, match="drop the field mapping"):
    datasets.load("aime24", folder, fields={"question": "problem", "answer": "answer"})
  with pytest.raises(datasets.DataError, match="not a prepared TFDS data set"):
    datasets.load("aime24", str(tmp_path), format="tfds")
  with pytest.raises(ValueError, match="data format must be one of"):
    datasets.load("aime24", path, format="parquet")
