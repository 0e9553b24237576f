r"""Evaluation of a Hugging Face checkpoint on the papers' math benchmarks: avg@k and pass@k.

  python -m ar3po_jax.eval --config=configs/eval.py:math500,aime24,amc23 \
      --checkpoint=/ckpt/Qwen2.5-7B --output=/tmp/eval/qwen25_7b.json

The argument lists benchmarks (default math500,aime24,amc23: the AR3PO and AERO papers' set); each
reads ../shared/data/<file> unless --config.benchmarks.NAME.path says otherwise. Known layouts:
dapo_math, math500, aime24, amc23, gsm8k, math_aime_eval; any other name needs
--config.benchmarks.NAME.fields (see ar3po_jax/datasets/records.py FieldMap).

Settings: k = 8 samples per problem, reported as avg@8 and pass@{1,2,4,8}, matching AERO's Avg@8 /
Pass@8; temperature 0.6, top-p 0.95 and 4096 new tokens are our choice (DAPO reports AIME avg@32 at
temperature 1.0, top-p 0.7: set samples=32, temperature=1.0, top_p=0.7 to match it).
"""

import os

import ml_collections

from ar3po_jax.datasets import DEFAULT_FILES

DEFAULT_BENCHMARKS = "math500,aime24,amc23"
SHARED_DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))


def benchmark(name: str, path: str = "") -> ml_collections.ConfigDict:
  b = ml_collections.ConfigDict()
  b.loader = name  # a known layout, or any name when fields are given
  b.path = path or (os.path.join(SHARED_DATA, DEFAULT_FILES[name]) if name in DEFAULT_FILES else "")
  b.fields = ml_collections.ConfigDict({"question": "", "answer": "", "uid": "", "source": "", "answer_format": "raw"})
  b.limit = 0  # 0: every problem
  return b


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.checkpoint = ""  # an HF checkpoint folder; the --checkpoint flag overrides
  c.dtype = "bfloat16"  # parameters
  c.activation_dtype = ""  # "": same as dtype
  c.output = ""  # report path; "": <checkpoint>/eval_report.json

  c.tokenizer = ml_collections.ConfigDict()
  c.tokenizer.path = ""  # "": the checkpoint folder
  c.tokenizer.format = "qwen_chat"  # plain | qwen_chat | llama3_chat (ar3po_jax/prompts.py)
  c.tokenizer.instruction = "boxed"  # boxed | dapo | none
  c.tokenizer.system = ""  # "": the format's default system turn

  c.benchmarks = ml_collections.ConfigDict()
  for name in (arg or DEFAULT_BENCHMARKS).split(","):
    c.benchmarks[name.strip()] = benchmark(name.strip())
  c.on_error = "raise"  # malformed rows: raise | skip (counted in the report)

  c.samples = 8  # k responses per problem
  c.pass_at = (1, 2, 4, 8)
  c.max_new_tokens = 4096
  c.temperature = 0.6
  c.top_p = 0.95
  c.top_k = 0
  c.batch_rows = 256  # sampler rows per launch (a multiple of the data-parallel size is used)
  c.save_responses = False  # True: every response text goes into the report

  c.verify = ml_collections.ConfigDict()
  c.verify.timeout_s = 5.0
  c.verify.fallback = ""  # "": none; "last_number" also reads a bare final number

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  return c
