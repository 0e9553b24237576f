"""configs/paper.py: every strategy x model loads and validates, extends configs/tiny.py's layout,
states the papers' settings; math_data.prepare builds a run's inputs from a checkpoint and data files."""

import importlib.util
import pathlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ar3po_jax import config_validation
from ar3po_jax.datasets.prompts import Template
from ar3po_jax.models import hf
from ar3po_jax.models.transformer import ModelConfig
from ar3po_jax.tasks import math_data as real

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"


def _load(name):
  spec = importlib.util.spec_from_file_location(f"_cfg_{name}", CONFIGS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


paper, tiny = _load("paper"), _load("tiny")
COMBOS = [(s, m) for s in paper.STRATEGIES for m in paper.MODELS]


def _paths(d, prefix=""):
  out = set()
  for k, v in d.items():
    out.add(prefix + k)
    if hasattr(v, "items"):
      out |= _paths(v, prefix + k + ".")
  return out


@pytest.mark.parametrize("strategy,model", COMBOS)
def test_loads_validates_and_extends_tiny(strategy, model):
  c = config_validation.resolve(paper.get_config(f"{strategy},{model}"))
  assert config_validation.problems(c) == real.problems(c)  # the shared sections are valid; only files are missing here
  assert _paths(tiny.get_config(strategy)) <= _paths(c)
  assert c.rollout.strategy == strategy and c.task.name == "dapo_math"
  assert "model.checkpoint must name a Hugging Face checkpoint folder" in real.problems(c)


def test_paper_settings():
  resolved = lambda arg: config_validation.resolve(paper.get_config(arg))  # noqa: E731
  dapo = resolved("dapo,qwen25_32b")
  assert (dapo.rl.eps_low, dapo.rl.eps_high, dapo.rl.beta, dapo.rollout.group_size) == (0.2, 0.28, 0.0, 16)
  assert (dapo.rollout.batch_prompts, dapo.rollout.max_new_tokens, dapo.rollout.dapo.overlong_buffer, dapo.rl.lr) == (
      512, 20480, 4096, 1e-6)
  grpo = resolved("grpo,qwen25_7b")
  assert not grpo.rollout.dapo.mask_truncated and dapo.rollout.dapo.mask_truncated
  assert grpo.rollout.group_size == 8 and grpo.rl.eps_high == 0.2
  ar3po = paper.get_config("ar3po,llama31_8b")
  assert (ar3po.rollout.ar3po.stages, ar3po.rollout.ar3po.k) == (2, 4)
  assert ar3po.tokenizer.format == "llama3_chat" and tuple(ar3po.model.rope_scaling) == (8.0, 1.0, 4.0, 8192)
  assert paper.get_config("aero,qwen25_math_1p5b").eval.samples == 8
  assert set(grpo.eval.benchmarks) == {"math500", "aime24", "amc23"}
  with pytest.raises(ValueError, match="unknown model"):
    paper.get_config("grpo,gpt2")


def test_strategy_presets_follow_the_final_strategy():
  # A grpo preset switched to dapo by a flag gets DAPO's G, clip-higher and truncation mask; a field
  # set explicitly (as a flag would) keeps its value.
  c = paper.get_config("grpo,qwen25_7b")
  c.rollout.strategy = "dapo"
  c.rl.eps_high = 0.3
  config_validation.resolve(c)
  assert (c.rollout.group_size, c.rl.eps_high, c.rollout.dapo.mask_truncated) == (16, 0.3, True)


@pytest.mark.parametrize("model,params", [
    ("qwen25_7b", 7_615_616_512), ("llama31_8b", 8_030_261_248), ("qwen25_32b", 32_763_876_352),
    ("qwen25_math_1p5b", 1_543_714_304),
])
def test_architectures_are_the_released_models(model, params):
  assert ModelConfig.from_config(paper.get_config(f"grpo,{model}").model).num_params == params


def test_prepare_from_a_checkpoint_and_files(tmp_path):
  pytest.importorskip("tokenizers")
  import tiny_hf

  ckpt = tmp_path / "ckpt"
  policy = tiny_hf.write_checkpoint(str(ckpt))
  rows = [{
      "prompt": [{"role": "user", "content": f"What is {i}+{i}?"}], "reward_model": {"ground_truth": str(2 * i)},
      "extra_info": {"index": i}
  } for i in range(5)]
  rows.append({
      "prompt": [{"role": "user", "content": "x" * 700}], "reward_model": {"ground_truth": "1"},
      "extra_info": {"index": 99}
  })
  pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
  (tmp_path / "bench.jsonl").write_text('{"problem": "1+1?", "answer": "2", "id": 1}\n')

  c = paper.get_config("ar3po,qwen25_7b")
  c.model.checkpoint = str(ckpt)
  for field in real.ARCH_FIELDS:
    c.model[field] = getattr(policy.config, field)
  c.model.dtype = c.model.param_dtype = "float32"
  c.task.data_root = str(tmp_path)  # relative data paths are read from here
  c.task.path = "train.parquet"
  c.task.max_prompt_tokens = 600
  for name in ("math500", "amc23"):
    del c.eval.benchmarks[name]
  c.eval.benchmarks.aime24.path = "bench.jsonl"
  config_validation.resolve(c)
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = -1, 1, 1
  assert real.problems(c) == []

  prepared = real.prepare(c, str(tmp_path / "work"), log=lambda m: None)
  assert [p.uid for p in prepared.train_prompts] == [f"dapo_math/{i}" for i in range(5)]
  assert prepared.task["dropped_too_long"] == 1
  assert prepared.tokenizer.eos_id == prepared.tokenizer.token_id("<|im_end|>")
  expected = prepared.tokenizer.encode(Template("qwen_chat", "dapo").render("What is 0+0?"))
  assert prepared.train_prompts[0].token_ids.tolist() == expected
  assert [p.uid for p in prepared.eval_prompts] == ["aime24/1"]
  np.testing.assert_array_equal(
      np.asarray(prepared.params["embed"]["embedding"]), np.asarray(policy.params["embed"]["embedding"]))

  from ar3po_jax import tasks
  from ar3po_jax.rewards import MathVerifier

  setup = tasks.build_setup(c, str(tmp_path / "work"), log=lambda m: None)  # by task.name "dapo_math"
  try:
    assert isinstance(setup.verifier, MathVerifier) and setup.export is not None
    assert list(setup.eval_sets) == ["aime24"] and [p.uid for p in setup.eval_prompts] == ["aime24/1"]
    assert [p.uid for p in setup.train_prompts] == [f"dapo_math/{i}" for i in range(5)]
  finally:
    setup.close()

  c.model.d_model = 64
  with pytest.raises(hf.CheckpointError, match="model.d_model"):
    real.prepare(c, str(tmp_path / "work"), log=lambda m: None)
