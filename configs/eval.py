r"""Evaluation of a Hugging Face checkpoint on the papers' math benchmarks: avg@k and pass@k.

  python -m ar3po_jax.eval --config=configs/eval.py:math500,aime24,amc23 \
      --checkpoint=/ckpt/Qwen2.5-7B --output=/tmp/eval/qwen25_7b.json

The argument lists benchmarks (default math500,aime24,amc23: the AR3PO and AERO papers' set); each
reads DATA_ROOT/<file> unless --config.benchmarks.NAME.path says otherwise (a relative path is taken
from --config.data_root, whose default is described in configs/common.py: ../shared/data). Known layouts:
dapo_math, math500, aime24, amc23, gsm8k, math_aime_eval; any other name needs
--config.benchmarks.NAME.fields (see ar3po_jax/datasets/records.py FieldMap).

Settings: k = 8 samples per problem, reported as avg@8 and pass@{1,2,4,8}, matching AERO's Avg@8 /
Pass@8; temperature 0.6, top-p 0.95 and 4096 new tokens are our choice (DAPO reports AIME avg@32 at
temperature 1.0, top-p 0.7: set samples=32, temperature=1.0, top_p=0.7 to match it).
"""

import ml_collections

try:
  from configs import common
except ImportError:  # loaded by path from outside the repository root: import it from this folder's parent
  import os
  import sys

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common

DEFAULT_BENCHMARKS = "math500,aime24,amc23"
benchmark = common.benchmark


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.checkpoint = ""  # an HF checkpoint folder; the --checkpoint flag overrides
  c.dtype = "bfloat16"  # parameters
  c.activation_dtype = ""  # "": same as dtype
  c.output = ""  # report path; "": <checkpoint>/eval_report.json
  c.data_root = common.default_data_root()  # relative benchmark paths are read from here

  c.tokenizer = ml_collections.ConfigDict()
  c.tokenizer.path = ""  # "": the checkpoint folder
  c.tokenizer.format = "qwen_chat"  # plain | qwen_chat | llama3_chat (ar3po_jax/datasets/prompts.py)
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

  c.verify = common.verify(timeout_s=5.0)
  c.mesh = common.mesh()
  return c
