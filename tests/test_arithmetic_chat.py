"""tasks/arithmetic_chat.py: the arithmetic generator in a chat template, on a Hugging Face checkpoint."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import ml_collections
import numpy as np
import pytest

from ar3po_jax import config_validation, tasks
from ar3po_jax.datasets.prompts import Template
from ar3po_jax.tasks import arithmetic, arithmetic_chat

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _hf_config(arg):
  spec = importlib.util.spec_from_file_location("_cfg_hf", CONFIGS / "hf.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def _task(**kw):
  t = ml_collections.ConfigDict(
      {"seed": 7, "num_train": 300, "num_eval": 40, "rl_prompts": 0, "level_weights": (1.0, 1.0, 1.0, 0.0, 0.0)})
  t.update(kw)
  return t


def test_level_problems_are_distinct_and_of_one_level():
  found = arithmetic_chat.level_problems(0, 3, 20)
  assert len(found) == 20 and {p.level for p in found} == {3}
  assert len({p.expression for p in found}) == 20
  for p in found:  # level 3: a two-digit number plus one digit, with a carry
    a, b = (int(x) for x in p.expression.split("+"))
    assert 10 <= a <= 99 and 1 <= b <= 9 and a % 10 + b >= 10 and p.answer == str(a + b)


def test_single_digit_sums_are_level_zero():
  found = arithmetic_chat.level_problems(3, 0, 81)
  assert len({p.expression for p in found}) == 81 and {p.level for p in found} == {0}
  assert all(str(sum(int(x) for x in p.expression.split("+"))) == p.answer for p in found)
  assert found[0].question == f"Compute {found[0].expression}."


def test_pool_is_disjoint_from_the_held_out_split_and_capped():
  pool, held_out = arithmetic_chat.make_problems(_task())
  assert not {p.expression for p in pool} & {p.expression for p in held_out}
  assert len({p.uid for p in pool}) == len(pool) and len(held_out) == 40
  assert {p.level for p in pool + held_out} <= {1, 2, 3}  # levels 4 and 5 have weight 0
  assert len(arithmetic_chat.make_problems(_task(rl_prompts=25))[0]) == 25


def test_single_digit_weight_mixes_level_zero_in_proportion():
  # 3:1 wanted on 128 held out and 512 trained; level 0 holds 81 problems (27 held out, 54 trained), so
  # the other level shrinks with it: 27 + 9 held out, 54 + 18 in the pool, interleaved
  t = _task(num_eval=128, rl_prompts=512, level_weights=(1.0, 0.0, 0.0, 0.0, 0.0), single_digit_weight=3.0)
  pool, held_out = arithmetic_chat.make_problems(t)
  levels = lambda ps: [sum(p.level == k for p in ps) for k in (0, 1)]  # noqa: E731
  assert levels(held_out) == [27, 9] and levels(pool) == [54, 18]
  assert levels(pool[:8]) == [6, 2]  # a prefix keeps the ratio
  assert not {p.expression for p in pool} & {p.expression for p in held_out}
  t.num_eval, t.rl_prompts = 8, 20  # level 0 not short: exact shares
  assert [levels(x) for x in arithmetic_chat.make_problems(t)] == [[15, 5], [6, 2]]
  t.level_weights = (0.0,) * 5  # level 0 alone
  assert [levels(x) for x in arithmetic_chat.make_problems(t)] == [[20, 0], [8, 0]]


def test_prompts_are_rendered_in_the_chat_template():
  pytest.importorskip("tokenizers")
  import tiny_hf

  from ar3po_jax.tokenizers.hf import HFTokenizer

  template = Template("qwen_chat", "boxed", arithmetic_chat.SMOLLM_SYSTEM)
  tokenizer = template.bind(HFTokenizer.from_json(tiny_hf.tokenizer_json(), eos="<|endoftext|>"))
  problem = arithmetic.make_problem(np.random.default_rng(0), 2, "x")
  [prompt] = arithmetic_chat.to_prompts([problem], template, tokenizer)
  [number] = arithmetic_chat.to_prompts([problem], Template("qwen_chat", "none", "S"), tokenizer, "number")
  assert number.token_ids.tolist() == tokenizer.encode(
      "<|im_start|>system\nS<|im_end|>\n"
      f"<|im_start|>user\n{problem.question}\nReply with the final number only.<|im_end|>\n<|im_start|>assistant\n")
  assert (number.uid, number.answer) == (problem.question, problem.answer)
  expected = (
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
      f"<|im_start|>user\n{problem.question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
      "<|im_end|>\n<|im_start|>assistant\n"
  )
  assert prompt.token_ids.tolist() == tokenizer.encode(expected)
  assert (prompt.uid, prompt.answer, prompt.text) == (problem.question, problem.answer, problem.question)
  assert tokenizer.stop_ids == (tokenizer.token_id("<|im_end|>"), tokenizer.token_id("<|endoftext|>"))


def test_problems_name_the_bad_fields(tmp_path):
  c = _hf_config("grpo,arithmetic_chat")
  assert "model.checkpoint (or model.hf_path) must name a Hugging Face checkpoint folder" in arithmetic_chat.problems(c)
  c.model.hf_path = str(tmp_path)
  c.task.level_weights = (0.0,) * 5
  c.task.single_digit_weight = 0.0
  c.tokenizer.instruction = "dapo"
  found = " | ".join(arithmetic_chat.problems(c))
  assert "has no config.json" in found and "task.level_weights" in found and "must be 'none'" in found
  c.task.answer_format = "boxed"
  assert "must be 'boxed'" in " | ".join(arithmetic_chat.problems(c))
  c.task.answer_format = "words"
  assert "task.answer_format must be one of ('boxed', 'number'), got 'words'" in arithmetic_chat.problems(c)


def test_number_verifier_reads_the_box_else_the_last_number():
  verify = arithmetic_chat.make_verifier("number")
  texts = ["3 + 5 = 8", "5+6 = 11.", "The answer is \\boxed{8}, not 9", "8 and then 9", "no number", "1,234",
           "\\boxed{x} 8", "-3"]
  answers = ["8", "11", "8", "8", "8", "1234", "8", "-3"]
  # a box wins over later numbers; an unboxed response is scored on its LAST number; a box without an
  # integer is the answer and scores 0 (the fallback applies only when no strategy finds anything)
  assert verify(texts, answers).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
  assert arithmetic_chat.make_verifier("boxed")(["3 + 5 = 8", "\\boxed{8}"], ["8", "8"]).tolist() == [0.0, 1.0]
  with pytest.raises(ValueError, match="2 texts but 1 answers"):
    verify(["1", "2"], ["1"])


def test_registered_build_reads_the_architecture_from_the_checkpoint(tmp_path):
  pytest.importorskip("tokenizers")
  import tiny_hf

  policy = tiny_hf.write_checkpoint(str(tmp_path / "ckpt"))
  c = _hf_config("ar3po,arithmetic_chat")
  c.model.hf_path = str(tmp_path / "ckpt")  # the only field a user sets
  c.task.num_train, c.task.num_eval, c.task.rl_prompts = 200, 16, 30
  config_validation.resolve(c)
  assert config_validation.problems(c) == []
  assert tasks.lookup("arithmetic_chat") is arithmetic_chat.ArithmeticChat
  prepared = tasks.build_setup(c, str(tmp_path / "work"), log=lambda m: None)
  assert prepared.model.config == dataclasses.replace(policy.config, scan_layers=True, remat=True)  # hf.py: scan, remat
  assert (len(prepared.train_prompts) == 30 and list(prepared.eval_sets) == ["arithmetic"]
          and len(prepared.eval_prompts) == 16)
  assert prepared.tokenizer.eos_id == prepared.tokenizer.token_id("<|im_end|>")
  assert prepared.train_prompts[0].token_ids[0] == prepared.tokenizer.token_id("<|im_start|>")
  assert prepared.report["task"]["level_weights"] == list(arithmetic_chat.SMOLLM2_LEVEL_WEIGHTS)
  assert isinstance(prepared.verifier, arithmetic_chat.NumberVerifier)  # configs/hf.py's answer_format


@pytest.mark.slow
def test_main_trains_on_the_task_from_a_bare_folder(tmp_path):
  """configs/hf.py:grpo,arithmetic_chat with only the folder given runs RL steps and exports the policy."""
  pytest.importorskip("tokenizers")
  import json
  import os
  import subprocess
  import sys

  import tiny_hf

  tiny_hf.write_checkpoint(str(tmp_path / "ckpt"))
  repo = pathlib.Path(__file__).resolve().parents[1]
  small = ["--config.rl.steps=2", "--config.rollout.batch_prompts=2", "--config.rollout.group_size=2",
           "--config.rollout.max_new_tokens=8", "--config.rollout.dapo.overlong_buffer=2", "--config.task.num_train=60",
           "--config.task.num_eval=4", "--config.task.rl_prompts=8", "--config.eval.every=1",
           "--config.eval.num_prompts=4", "--config.eval.batch_size=4", "--config.model.export_every=2",
           "--config.log.progress=False"]
  cmd = [sys.executable, "-m", "ar3po_jax.main", "--config=configs/hf.py:grpo,arithmetic_chat",
         f"--config.model.hf_path={tmp_path / 'ckpt'}", f"--workdir={tmp_path / 'run'}", *small]
  result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
  assert [r["step"] for r in records if "rollout/responses" in r] == [1, 2]
  assert all(r["rollout/responses"] == 4 for r in records if "rollout/responses" in r)
  assert os.path.isfile(tmp_path / "run" / "hf" / "step_2" / "config.json")
