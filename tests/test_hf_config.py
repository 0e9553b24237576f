
"""configs/hf.py: any local Qwen2/Llama folder with no architecture fields; data paths default to the
shared data; a GSM8K run prepares from a tiny checkpoint with only model.hf_path and data paths set."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib

import pytest

from ar3po_jax import config_validation, tasks
from ar3po_jax.datasets.prompts import Template

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
STRATEGIES = ("grpo", "dapo", "ar3po", "aero")


def _module():
  spec = importlib.util.spec_from_file_location("_cfg_hf", CONFIGS / "hf.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # as --config=configs/hf.py loads it
  return module


hf_cfg = _module()


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("task", hf_cfg.TASKS)
def test_every_strategy_and_task_loads_without_architecture_fields(strategy, task):
  c = config_validation.resolve(hf_cfg.get_config(f"{strategy},{task}"))
  assert c.rollout.strategy == strategy
  assert not set(hf_cfg.ARCH_FIELDS) & set(c.model.keys())
  found = config_validation.problems(c)
  # Only the folder (and its files) are missing.
  assert found and all("checkpoint" in p or "does not exist" in p for p in found), found


def test_hf_path_is_the_checkpoint_field():
  c = hf_cfg.get_config("grpo")
  c.lock()  # as the command line sees it
  c.model.hf_path = "/some/folder"
  assert c.model.checkpoint == "/some/folder"


def test_data_paths_are_relative_to_the_data_root(monkeypatch, tmp_path):
  monkeypatch.setenv("AR3PO_DATA_ROOT", str(tmp_path))
  c = hf_cfg.get_config("ar3po")
  assert (c.task.name, c.task.path, c.task.data_root) == ("gsm8k", "gsm8k_train.jsonl", str(tmp_path))
  assert c.eval.benchmarks.gsm8k.path == "gsm8k_test.jsonl"
  assert set(hf_cfg.get_config("grpo,dapo_math").eval.benchmarks) == {"math500", "aime24", "amc23"}
  assert (c.eval.samples, c.eval.temperature, c.eval.top_p) == (4, 0.6, 0.95)
  monkeypatch.delenv("AR3PO_DATA_ROOT")
  assert hf_cfg.get_config("ar3po").task.data_root.endswith(os.path.join("shared", "data"))
  with pytest.raises(ValueError, match="unknown task"):
    hf_cfg.get_config("grpo,mnist")


def test_gsm8k_run_prepares_from_any_folder(tmp_path, monkeypatch):
  pytest.importorskip("tokenizers")
  import tiny_hf

  policy = tiny_hf.write_checkpoint(str(tmp_path / "ckpt"))
  rows = [{"question": f"What is {i}+{i}?", "answer": f"{i}+{i}={2 * i}\n#### {2 * i}"} for i in range(4)]
  for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
  monkeypatch.setenv("AR3PO_DATA_ROOT", str(tmp_path))
  c = config_validation.resolve(hf_cfg.get_config("grpo"))
  c.model.hf_path = str(tmp_path / "ckpt")
  assert config_validation.problems(c) == []
  prepared = tasks.build_setup(c, str(tmp_path / "work"), log=lambda m: None)
  # The architecture came from config.json alone; how the passes run (scanned layers) from the config.
  assert prepared.model.config == dataclasses.replace(policy.config, scan_layers=True, remat=True)
  assert len(prepared.train_prompts) == 4 and list(prepared.eval_sets) == ["gsm8k"]
  assert prepared.train_prompts[1].answer == "2"
  expected = prepared.tokenizer.encode(Template("qwen_chat", "boxed").render("What is 1+1?"))
  assert prepared.train_prompts[1].token_ids.tolist() == expected
