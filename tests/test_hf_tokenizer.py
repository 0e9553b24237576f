"""One Tokenizer interface over tokenizer.json and sentencepiece, and the papers' prompt templates."""

import pytest

pytest.importorskip("tokenizers")

import tiny_hf  # noqa: E402

from ar3po_jax.tokenizers import HFTokenizer, load_tokenizer  # noqa: E402
from ar3po_jax.datasets.prompts import Template  # noqa: E402
from ar3po_jax.tokenizers.spm import SentencePieceTokenizer, train_sentencepiece  # noqa: E402


@pytest.fixture
def tok_dir(tmp_path):
  tiny_hf.write_tokenizer(str(tmp_path))
  return str(tmp_path)


def test_special_tokens_come_from_tokenizer_config(tok_dir):
  tok = load_tokenizer(tok_dir)
  assert isinstance(tok, HFTokenizer)
  assert tok.vocab_size == len(tiny_hf.CHARS) + len(tiny_hf.SPECIAL)
  assert tok.bos_id == -1 and tok.eos_id == tok.pad_id == tok.token_id("<|endoftext|>")
  assert load_tokenizer(tok_dir + "/tokenizer.json").eos_id == tok.eos_id


def test_encode_decode_round_trip_and_stops(tok_dir):
  tok = HFTokenizer.load(tok_dir)
  text = "What is 12*3? $\\frac{1}{2}$"
  ids = tok.encode(text)
  assert tok.decode(ids) == text
  im_end = tok.token_id("<|im_end|>")
  assert tok.encode("a<|im_end|>b") == [tok.encode("a")[0], im_end, tok.encode("b")[0]]
  chat = tok.with_stop_tokens(["<|im_end|>", "<|endoftext|>"])
  assert chat.eos_id == im_end and chat.pad_id == tok.eos_id
  assert chat.decode(tok.encode("42") + [im_end] + tok.encode("junk")) == "42"
  assert chat.decode(tok.encode("7") + [tok.eos_id, im_end]) == "7"


def test_missing_eos_is_an_error():
  with pytest.raises(ValueError, match="EOS"):
    HFTokenizer.from_json(tiny_hf.tokenizer_json())


def test_sentencepiece_through_the_same_loader(tmp_path):
  path = str(tmp_path / "sp.model")
  train_sentencepiece(["1+2=3", "what is 4*5?"] * 50, 40, path)
  tok = load_tokenizer(path)
  assert isinstance(tok, SentencePieceTokenizer)
  ids = Template("plain", "none").encode("1+2", tok)
  assert ids[0] == tok.bos_id and tok.decode(ids) == "1+2"


def test_qwen_chat_with_dapo_instruction(tok_dir):
  tok = HFTokenizer.load(tok_dir)
  t = Template("qwen_chat", "dapo")
  text = t.render("What is 1+1?")
  assert text.startswith("<|im_start|>system\nYou are Qwen") and text.endswith("<|im_start|>assistant\n")
  assert "Answer: $Answer" in text and "\n\nWhat is 1+1?\n\n" in text
  bound = t.bind(tok)
  assert bound.eos_id == tok.token_id("<|im_end|>")
  ids = t.encode("What is 1+1?", tok)
  assert ids[0] == tok.token_id("<|im_start|>")  # no BOS for Qwen
  prompt = t.prompt("u1", "What is 1+1?", "2", tok)
  assert prompt.answer == "2" and prompt.token_ids.dtype.name == "int32"


def test_boxed_and_llama_formats():
  boxed = Template("plain", "boxed").render("Q")
  assert boxed == "Q\nPlease reason step by step, and put your final answer within \\boxed{}."
  llama = Template("llama3_chat", "none", system="Be brief.").render("Q")
  assert llama.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>")
  assert llama.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
  assert Template("llama3_chat").stop_tokens == ("<|eot_id|>", "<|end_of_text|>")
  assert "system" not in Template("llama3_chat").render("Q")


def test_template_errors(tmp_path):
  with pytest.raises(ValueError, match="format"):
    Template("chatml")
  sp = train_sentencepiece(["1+2=3"] * 50, 30, str(tmp_path / "sp.model"))
  with pytest.raises(ValueError, match="tokenizer.json"):
    Template("qwen_chat").bind(sp)
