r"""The papers' RLVR runs: GRPO, DAPO, AR3PO and AERO on Qwen2.5 / Llama 3.1 with DAPO-Math-17k,
evaluated on MATH-500, AIME24 and AMC23. Needs the Hugging Face checkpoint on disk and a TPU slice.

  python -m ar3po_jax.main --config=configs/paper.py:ar3po,qwen25_7b \
      --config.model.checkpoint=/ckpt/Qwen2.5-7B --workdir=/runs/ar3po_qwen25_7b

The argument is STRATEGY,MODEL: strategy grpo | dapo | ar3po | aero; model qwen25_7b | llama31_8b |
qwen25_32b | qwen25_math_1p5b | qwen25_7b_instruct. Then evaluate the exported policy with
`python -m ar3po_jax.eval --config=configs/eval.py --checkpoint=WORKDIR/hf/step_N`.

Facts from the papers (docs/ALGORITHMS.md):
  - AR3PO: Qwen2.5-7B, Llama-3.1-8B, Qwen2.5-32B; DAPO-Math-17k; verl; GRPO objective with token-level
    ratios; GRPO's G = 8 in the comparisons; eval MATH-500, AIME24, AMC23.
  - AERO: Qwen2.5-Math-1.5B, Qwen2.5-7B, Qwen2.5-7B-Instruct; same total rollout budget as GRPO's
    N = 8; reports Avg@8 and Pass@8.
  - DAPO: Qwen2.5-32B base, G = 16, eps_low 0.2 / eps_high 0.28, token-mean loss, no KL, lr 1e-6,
    512 prompts per step, 20480 response tokens with a 4096-token overlong buffer, temperature 1.0.
Our choices, marked `# ours` below: everything else, notably the response lengths of the smaller
models, prompts per step outside DAPO-32B, step counts, AR3PO's (S, k) = (2, 4) and AERO's budget
(docs/ALGORITHMS.md defaults), the prompt template, and every mesh (sized, not measured, on TPU v5p:
95 GiB HBM a chip; fp32 parameters, gradients and Adam moments are 16 bytes a parameter).
The architecture fields are the released models' config.json values; loading checks them against
the checkpoint so a wrong path fails before any compile.
"""

import ml_collections
from ml_collections.config_dict import placeholder

try:
  from configs import common
except ImportError:  # loaded by path from outside the repository root: import it from this folder's parent
  import os
  import sys

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common

STRATEGIES = common.STRATEGIES

# name: (architecture, prompt format, max response tokens, overlong buffer, prompts per step,
#        micro-batch rows per device, mesh (data, fsdp, tensor), slice)
MODELS = {
    "qwen25_7b": dict(
        arch=dict(vocab_size=152064, d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, head_dim=128, d_ff=18944,
                  qkv_bias=True, tie_embeddings=False, rope_theta=1_000_000.0, norm_eps=1e-6),
        format="qwen_chat", max_new_tokens=8192, overlong=1024, batch_prompts=128, micro_rows=2,  # ours
        mesh=(-1, 16, 1), slice="v5p-64 (32 chips)",  # ours
    ),
    "qwen25_7b_instruct": dict(
        arch=dict(vocab_size=152064, d_model=3584, n_layers=28, n_heads=28, n_kv_heads=4, head_dim=128, d_ff=18944,
                  qkv_bias=True, tie_embeddings=False, rope_theta=1_000_000.0, norm_eps=1e-6),
        format="qwen_chat", max_new_tokens=8192, overlong=1024, batch_prompts=128, micro_rows=2,  # ours
        mesh=(-1, 16, 1), slice="v5p-64 (32 chips)",  # ours
    ),
    "llama31_8b": dict(
        arch=dict(vocab_size=128256, d_model=4096, n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, d_ff=14336,
                  qkv_bias=False, tie_embeddings=False, rope_theta=500_000.0, norm_eps=1e-5,
                  rope_scaling=(8.0, 1.0, 4.0, 8192)),
        format="llama3_chat", max_new_tokens=8192, overlong=1024, batch_prompts=128, micro_rows=2,  # ours
        mesh=(-1, 16, 1), slice="v5p-64 (32 chips)",  # ours
    ),
    "qwen25_32b": dict(
        arch=dict(vocab_size=152064, d_model=5120, n_layers=64, n_heads=40, n_kv_heads=8, head_dim=128, d_ff=27648,
                  qkv_bias=True, tie_embeddings=False, rope_theta=1_000_000.0, norm_eps=1e-5),
        format="qwen_chat", max_new_tokens=20480, overlong=4096, batch_prompts=512, micro_rows=1,  # DAPO paper
        mesh=(-1, 32, 4), slice="v5p-256 (128 chips)",  # ours
    ),
    "qwen25_math_1p5b": dict(
        arch=dict(vocab_size=151936, d_model=1536, n_layers=28, n_heads=12, n_kv_heads=2, head_dim=128, d_ff=8960,
                  qkv_bias=True, tie_embeddings=True, rope_theta=10_000.0, norm_eps=1e-6),
        # 4096-position model: prompt + response must fit.
        format="qwen_chat", max_new_tokens=3072, overlong=512, batch_prompts=128, micro_rows=4,  # ours
        mesh=(-1, 8, 1), slice="v5p-16 (8 chips)",  # ours
    ),
}
ARCH_FIELDS = (
    "vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff", "qkv_bias", "tie_embeddings")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  strategy, _, model_name = (arg or "ar3po,qwen25_7b").partition(",")
  model_name = model_name or "qwen25_7b"
  common.check_strategy(strategy, "configs/paper.py")
  if model_name not in MODELS:
    raise ValueError(f"configs/paper.py: unknown model {model_name!r}; choose one of {tuple(MODELS)}")
  m = MODELS[model_name]
  c = common.base(strategy)
  c.workdir = ""

  # task.num_train / num_eval / level_weights / seed are the arithmetic task's and unused here.
  c.task.name = "dapo_math"
  c.task.path = "dapo_math_17k.parquet"  # relative to task.data_root (configs/common.py)
  c.task.fields = ml_collections.ConfigDict(
      {"question": "", "answer": "", "uid": "", "source": "", "answer_format": "raw"})
  c.task.on_error = "raise"
  c.task.limit = 0  # 0: every problem
  c.task.max_prompt_tokens = 2048  # longer prompts are dropped and counted (verl's max_prompt_length)  # ours

  c.tokenizer.path = ""  # "": the checkpoint folder
  c.tokenizer.vocab_size = 0  # unused: the checkpoint's tokenizer is used as is
  c.tokenizer.format = m["format"]
  c.tokenizer.instruction = "dapo"  # DAPO-Math-17k's own "Answer:" instruction  # ours
  c.tokenizer.system = ""

  c.model.checkpoint = ""  # the HF checkpoint folder (required)
  c.model.name = model_name
  for key, value in m["arch"].items():
    c.model[key] = value
  if "rope_scaling" not in m["arch"]:
    c.model.rope_scaling = None
  c.model.dtype = "bfloat16"  # activations  # ours
  c.model.param_dtype = "float32"  # master weights; the optimizer state follows them  # ours
  c.model.export_every = 100  # steps between HF exports of the policy  # ours

  c.warmstart.steps = 0  # pretrained checkpoints need no warm start

  r = c.rollout
  r.batch_prompts = m["batch_prompts"]
  r.group_size = placeholder(int)  # preset: DAPO paper 16; GRPO comparisons 8
  r.max_new_tokens = m["max_new_tokens"]
  r.temperature = 1.0  # DAPO paper (training)
  r.top_p = 1.0
  r.top_k = 0
  r.ar3po.stages, r.ar3po.k = 2, 4  # docs/ALGORITHMS.md defaults
  r.buffer.per_prompt, r.buffer.total = 2, 100_000
  r.dapo.gen_batch_prompts = 3 * m["batch_prompts"]  # verl DAPO recipe: 3x the train batch  # ours
  r.dapo.max_gen_batches = 10  # ours
  r.dapo.overlong_buffer = m["overlong"]
  r.dapo.overlong_penalty = 1.0
  r.dapo.mask_truncated = placeholder(bool)  # preset: True for dapo
  r.aero.n_explore, r.aero.budget = 8, 16  # docs/ALGORITHMS.md defaults (our reconstruction)

  rl = c.rl
  rl.steps = 500  # ours
  rl.lr = 1e-6  # DAPO paper
  rl.weight_decay = 0.1  # DAPO paper (AdamW)
  rl.grad_clip = 1.0
  rl.eps_low = 0.2
  rl.eps_high = placeholder(float)  # preset: DAPO paper 0.28 (clip-higher), else 0.2
  rl.beta = 0.0  # DAPO: no KL; the same for the others so only the rollout differs  # ours
  rl.loss_agg = "token_mean"
  rl.micro_batch_rows = m["micro_rows"]
  rl.row_buckets = 8
  rl.response_buckets = 4  # long-response runs pad each batch to a quarter, half, ... of the limit
  rl.recompute_old_logprobs = False
  # Several optimizer steps per rollout batch, as verl (ppo_mini_batch_size; its GRPO examples take
  # 4 mini-batches a batch) and DAPO (512 prompts, mini-batches of 32); 4 is ours.
  rl.mini_batches = 4  # ours
  rl.epochs = 1
  rl.tis_cap = 0.0  # off, as verl's default; 2.0 is verl's usual threshold when turned on

  c.eval.every = 50  # ours
  c.eval.num_prompts = 500
  c.eval.batch_size = 256
  c.eval.samples = 8  # AERO: Avg@8 / Pass@8
  c.eval.temperature = 0.6  # ours
  c.eval.top_p = 0.95  # ours
  c.eval.benchmarks = ml_collections.ConfigDict(
      {name: common.benchmark(name) for name in ("math500", "aime24", "amc23")})

  c.verify = common.verify(timeout_s=5.0)  # ours

  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = m["mesh"]
  c.mesh.slice = m["slice"]  # what the mesh was sized for; informational
  c.log.progress = True
  # Strategy-implied settings, filled after flags for the final rollout.strategy (configs/common.py).
  c.presets = common.presets(
      default={"rl.eps_high": 0.2, "rollout.group_size": 8, "rollout.dapo.mask_truncated": False},
      dapo={"rl.eps_high": 0.28, "rollout.group_size": 16, "rollout.dapo.mask_truncated": True},
  )
  return c
