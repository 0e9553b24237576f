import os

import pytest

from ar3po_jax.tasks.arithmetic import ArithmeticTask
from ar3po_jax.tokenizers.spm import SentencePieceTokenizer, load_or_train, train_sentencepiece


@pytest.fixture(scope="module")
def corpus():
  return ArithmeticTask.generate(seed=2, num_train=1500, num_eval=50, level_weights=(1, 1, 1, 1, 1)).corpus()


def test_trains_round_trips_and_keeps_digits_apart(tmp_path, corpus):
  tok = train_sentencepiece(corpus, 96, str(tmp_path / "sp.model"))
  text = corpus[0]
  assert tok.decode(tok.encode(text)) == text
  assert len(tok.encode("12345")) >= 5  # one piece per digit
  assert {tok.pad_id, tok.bos_id, tok.eos_id} == {0, 2, 3}


def test_decode_stops_at_eos_and_drops_padding(tmp_path, corpus):
  tok = train_sentencepiece(corpus, 96, str(tmp_path / "sp.model"))
  ids = tok.encode("12+3=15.")
  assert tok.decode([tok.bos_id] + ids + [tok.eos_id] + tok.encode("junk") + [tok.pad_id]) == "12+3=15."


def test_cached_file_is_reused_byte_for_byte(tmp_path, corpus):
  path = str(tmp_path / "cache" / "sp.model")
  first = load_or_train(path, lambda: corpus, 96)
  mtime = os.path.getmtime(path)
  second = load_or_train(path, lambda: pytest.fail("must not retrain"), 96)
  assert os.path.getmtime(path) == mtime
  assert first.encode(corpus[3]) == second.encode(corpus[3])
  with pytest.raises(FileNotFoundError, match="tokenizer file not found"):
    SentencePieceTokenizer.load(str(tmp_path / "missing.model"))
