"""Data set loaders on small files in each format, on the real files when ../shared/data exists,
and the TFDS builders with resumable iteration."""

import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ar3po_jax import datasets
from ar3po_jax.datasets import tfds_builders
from ar3po_jax.datasets.tfds_builders import IndexStream

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
DAPO_ROWS = [
    {
        "data_source": "DAPO-17k",
        "prompt": [{"role": "user", "content": "What is $1+1$?"}],
        "ability": "math",
        "reward_model": {"ground_truth": "2", "style": "rule"},
        "extra_info": {"answer": "", "index": 7, "split": "train"},
    },
    {
        "data_source": "DAPO-17k",
        "prompt": [{"role": "user", "content": datasets.loaders._DAPO_PREFIX + "Find $x$." + datasets.loaders._DAPO_SUFFIX}],
        "ability": "math",
        "reward_model": {"ground_truth": "-3", "style": "rule"},
        "extra_info": {"answer": "", "index": 8, "split": "train"},
    },
]


def _jsonl(path, rows, raw_lines=()):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(raw_lines))
  return str(path)


def test_dapo_parquet_verl_schema(tmp_path):
  path = tmp_path / "dapo.parquet"
  pq.write_table(pa.Table.from_pylist(DAPO_ROWS), path)
  problems, stats = datasets.load("dapo_math", str(path))
  assert [p.uid for p in problems] == ["dapo_math/7", "dapo_math/8"]
  assert problems[0].question == "What is $1+1$?" and problems[0].answer == "2"
  assert problems[1].question == "Find $x$."  # the released instruction is stripped
  assert stats.rows == stats.loaded == 2


@pytest.mark.parametrize(
    "name,row,question,answer,uid",
    [
        ("math500", {"problem": "P", "answer": "\\frac{1}{2}", "unique_id": "test/a/1.json", "solution": "s"}, "P", "\\frac{1}{2}", "math500/test/a/1.json"),
        ("aime24", {"id": 60, "problem": "P", "answer": "033"}, "P", "033", "aime24/60"),
        ("amc23", {"id": 3, "problem": "P", "answer": 27.0}, "P", "27", "amc23/3"),
        ("gsm8k", {"question": "Q", "answer": "2 * 3 = <<2*3=6>>6\n#### 1,206"}, "Q", "1206", "gsm8k/1"),
        ("math_aime_eval", {"data_source": "AIME 2024", "question": "Q", "ref_answer": "5"}, "Q", "5", "math_aime_eval/1"),
    ],
)
def test_benchmark_jsonl_layouts(tmp_path, name, row, question, answer, uid):
  (p,), _ = datasets.load(name, _jsonl(tmp_path / "x.jsonl", [row]))
  assert (p.question, p.answer, p.uid) == (question, answer, uid)


def test_any_file_with_a_field_mapping(tmp_path):
  rows = [{"meta": {"id": "a"}, "q": "Q1", "sol": {"final": 0.5}}, {"meta": {"id": "b"}, "q": "Q2", "sol": {"final": "x^2"}}]
  fields = {"question": "q", "answer": "sol.final", "uid": "meta.id"}
  (tmp_path / "x.json").write_text(json.dumps(rows))
  pq.write_table(pa.Table.from_pylist([{**r, "sol": {"final": str(r["sol"]["final"])}} for r in rows]), tmp_path / "x.parquet")
  for path in (_jsonl(tmp_path / "x.jsonl", rows), str(tmp_path / "x.json"), str(tmp_path / "x.parquet")):
    problems, _ = datasets.load("mine", path, fields)
    assert [(p.uid, p.question, p.answer) for p in problems] == [("mine/a", "Q1", "0.5"), ("mine/b", "Q2", "x^2")]
  with pytest.raises(datasets.DataError, match="no known layout"):
    datasets.load("mine", str(tmp_path / "x.json"))
  with pytest.raises(ValueError, match="unknown field mapping keys"):
    datasets.load("mine", str(tmp_path / "x.json"), {"question": "q", "answer": "a", "id": "x"})


BAD_LINES = [
    json.dumps({"problem": "ok", "answer": "1", "id": 1}) + "\n",
    "{not json\n",
    json.dumps({"problem": "no answer", "id": 2}) + "\n",
    json.dumps({"problem": "", "answer": "1", "id": 3}) + "\n",
    json.dumps({"problem": "dup", "answer": "1", "id": 1}) + "\n",
    json.dumps([1, 2]) + "\n",
    json.dumps({"problem": "ok too", "answer": 4, "id": 9}) + "\n",
]


def test_malformed_rows_raise_with_file_and_row(tmp_path):
  path = _jsonl(tmp_path / "bad.jsonl", [], BAD_LINES)
  with pytest.raises(datasets.DataError, match=r"bad\.jsonl: row 2: invalid JSON"):
    datasets.load("aime24", path)
  only_missing = _jsonl(tmp_path / "bad2.jsonl", [], [BAD_LINES[0], BAD_LINES[2]])
  with pytest.raises(datasets.DataError, match=r"bad2\.jsonl: row 2: no field 'answer'"):
    datasets.load("aime24", only_missing)


def test_malformed_rows_skipped_and_counted(tmp_path):
  problems, stats = datasets.load("aime24", _jsonl(tmp_path / "bad.jsonl", [], BAD_LINES), on_error="skip")
  assert [p.uid for p in problems] == ["aime24/1", "aime24/9"] and problems[1].answer == "4"
  assert stats.rows == 7 and stats.loaded == 2
  assert dict(stats.skipped) == {"invalid JSON": 1, "missing field": 1, "bad question": 1, "duplicate uid": 1, "not an object": 1}
  with pytest.raises(datasets.DataError, match="no usable rows"):
    datasets.load("aime24", _jsonl(tmp_path / "none.jsonl", [], BAD_LINES[1:3]), on_error="skip")


def _latin1_row(path):
  """A jsonl file whose second row was saved as Latin-1 (b'\\xe9' is not UTF-8)."""
  rows = [{"problem": "What is 1+1?", "answer": "2", "id": 1}, {"problem": "x", "answer": "3", "id": 3}]
  lines = [json.dumps(r).encode() + b"\n" for r in rows]
  path.write_bytes(lines[0] + '{"problem": "caf\xe9: 2+2?", "answer": "4", "id": 2}\n'.encode("latin-1") + lines[1])
  return str(path)


def test_a_line_that_is_not_utf8_names_file_and_row(tmp_path):
  path = _latin1_row(tmp_path / "latin1.jsonl")
  with pytest.raises(datasets.DataError, match=r"latin1\.jsonl: row 2: not UTF-8 \(invalid continuation byte"):
    datasets.load("aime24", path)


def test_a_line_that_is_not_utf8_is_skipped_and_counted(tmp_path):
  problems, stats = datasets.load("aime24", _latin1_row(tmp_path / "latin1.jsonl"), on_error="skip")
  assert [p.uid for p in problems] == ["aime24/1", "aime24/3"]
  assert stats.rows == 3 and dict(stats.skipped) == {"not UTF-8": 1}


def test_a_json_file_that_is_not_utf8_names_file_and_line(tmp_path):
  path = tmp_path / "rows.json"
  path.write_bytes(b'[{"problem": "a", "answer": "1", "id": 1},\n {"problem": "caf\xe9", "answer": "2", "id": 2}]')
  with pytest.raises(datasets.DataError, match=r"rows\.json: line 2: not UTF-8"):
    datasets.load("aime24", str(path))


def test_tfds_builder_over_a_file_is_deterministic_and_cached(tmp_path):
  rows = [{"problem": f"P{i}", "answer": str(i), "id": i} for i in range(12)]
  path = _jsonl(tmp_path / "a.jsonl", rows)
  source = tfds_builders.build_file_dataset("aime24", path, str(tmp_path / "tfds"))["test"]
  assert len(source) == 12
  got = {tfds_builders.decode(source[i]).uid: tfds_builders.decode(source[i]) for i in range(12)}
  assert got["aime24/5"] == datasets.MathProblem("aime24/5", "P5", "5", "aime24")
  again = tfds_builders.build_file_dataset("aime24", path, str(tmp_path / "tfds"))["test"]
  assert [again[i]["uid"] for i in range(12)] == [source[i]["uid"] for i in range(12)]
  _jsonl(tmp_path / "a.jsonl", rows[:5])  # a changed file is built afresh
  assert len(tfds_builders.build_file_dataset("aime24", path, str(tmp_path / "tfds"))["test"]) == 5


def test_tfds_arithmetic_builder(tmp_path):
  import ml_collections

  task = ml_collections.ConfigDict(dict(seed=3, num_train=40, num_eval=8, level_weights=(1.0, 1.0, 1.0, 1.0, 1.0)))
  splits = tfds_builders.build_arithmetic_dataset(task, str(tmp_path))
  assert {k: len(v) for k, v in splits.items()} == {"train": 40, "test": 8}
  test_uids = {tfds_builders.decode(splits["test"][i]).uid for i in range(8)}
  train_uids = {tfds_builders.decode(splits["train"][i]).uid for i in range(40)}
  assert not test_uids & train_uids


def test_index_stream_resumes_exactly():
  stream = IndexStream(7, seed=1)
  first = stream.next(5) + stream.next(5)
  assert sorted(first[:7]) == list(range(7))  # one epoch is a permutation
  state = stream.state_dict()
  rest = stream.next(9)
  resumed = IndexStream(7, seed=1)
  resumed.load_state_dict(state)
  assert resumed.next(9) == rest
  assert IndexStream(3, 0, shuffle=False).next(5) == [0, 1, 2, 0, 1]


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data folder not present")
@pytest.mark.parametrize("name,rows", [("dapo_math", 17917), ("math500", 500), ("aime24", 30), ("amc23", 40), ("gsm8k", 1319), ("math_aime_eval", 560)])
def test_real_files(name, rows):
  problems, stats = datasets.load(name, str(SHARED / datasets.DEFAULT_FILES[name]))
  assert stats.loaded == rows and not stats.skipped
  assert len({p.uid for p in problems}) == rows
  assert all(p.question.strip() and p.answer.strip() for p in problems)
  if name in ("amc23", "gsm8k"):  # AMC's float answers and GSM8K's worked solutions become bare numbers
    numbers = [float(p.answer) for p in problems]
    assert name != "amc23" or all(n.is_integer() and "." not in p.answer for n, p in zip(numbers, problems))
