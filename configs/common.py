"""What every config shares: the run layout the training loop reads (`base`), the mesh and verifier
sections, benchmark specs, the data root, and the strategies' presets.

Strategy presets. Some settings follow from the strategy (DAPO trains with clip-higher,
eps_high = 0.28). Such fields are None in the config ("the strategy's preset") and are filled
after the command-line flags by `config_validation.resolve(config)` (main and simulate call it) from
`config.presets.<rollout.strategy>`, else `config.presets.default`. So
`--config=configs/tiny.py:grpo --config.rollout.strategy=dapo` runs DAPO with DAPO's clip, and a
field given on the command line always wins. Code that calls get_config directly calls `resolve`.

The data root. Real data sets are read from paths relative to `task.data_root` (`data_root` in
configs/eval.py); absolute paths are used as they are. Its default is the environment variable
AR3PO_DATA_ROOT, else the `shared/data` folder next to the repository's folder (`../shared/data`
seen from the repository root), where the project's data sets are staged.
"""

from __future__ import annotations

import os

import ml_collections
from ml_collections.config_dict import placeholder

from ar3po_jax.rollout.strategies import REGISTRY

STRATEGIES = tuple(REGISTRY)  # the registered strategies, in registration order
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_data_root() -> str:
  return os.environ.get("AR3PO_DATA_ROOT") or os.path.normpath(os.path.join(_REPO, "..", "shared", "data"))


def check_strategy(strategy: str, config_file: str) -> None:
  if strategy not in REGISTRY:
    raise ValueError(f"{config_file}: unknown strategy {strategy!r}; choose one of {STRATEGIES}")


def mesh(data: int = -1, fsdp: int = 1, tensor: int = 1) -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.data = data  # -1: every device not used by the other axes
  m.fsdp = fsdp
  m.tensor = tensor
  return m


def verify(timeout_s: float = 5.0) -> ml_collections.ConfigDict:
  v = ml_collections.ConfigDict()
  v.timeout_s = timeout_s
  v.fallback = ""  # "": none; "last_number" also reads a bare final number
  return v


def benchmark(name: str, path: str = "") -> ml_collections.ConfigDict:
  """A data set spec: `loader` a known layout (or any name with `fields`), `path` relative to the data root."""
  from ar3po_jax.datasets import DEFAULT_FILES

  b = ml_collections.ConfigDict()
  b.loader = name
  b.path = path or DEFAULT_FILES.get(name, "")
  b.fields = ml_collections.ConfigDict({"question": "", "answer": "", "uid": "", "source": "", "answer_format": "raw"})
  b.limit = 0  # 0: every problem
  return b


def presets(**by_strategy: dict[str, object]) -> ml_collections.ConfigDict:
  """config.presets: {"default": {...}, STRATEGY: {...}} of dotted field -> value, as nested sections."""
  out = ml_collections.ConfigDict()
  for strategy, fields in by_strategy.items():
    section = ml_collections.ConfigDict()
    for dotted, value in fields.items():
      node = section
      *parents, leaf = dotted.split(".")
      for part in parents:
        if part not in node:
          node[part] = ml_collections.ConfigDict()
        node = node[part]
      node[leaf] = value
    out[strategy] = section
  return out


def base(strategy: str) -> ml_collections.ConfigDict:
  """The layout of a training run (configs/tiny.py's values); the paper configs change values only."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.workdir = ""  # empty: the --workdir flag, or ./workdir/tiny_<strategy>
  c.cache_dir = ""  # tokenizer and warm start cache; empty: WORKDIR/cache. Runs may share one.

  c.task = ml_collections.ConfigDict()
  c.task.name = "arithmetic"
  c.task.data_root = default_data_root()  # where relative data paths point (unused by the arithmetic task)
  c.task.seed = 1234  # fixes the problem set; the held-out split never overlaps training
  c.task.num_train = 20_000
  c.task.num_eval = 500
  c.task.rl_prompts = 512  # RL's prompt pool: distinct training problems, revisited every few steps
  # Relative weights of difficulty levels 1..5 (see ar3po_jax/tasks/arithmetic.py): levels 1 and 2
  # are learned first, level 5 rarely, which gives RL both always-solved and never-solved prompts;
  # level 3 (a carry) is where the warm start imitates the teacher's slip and RL has to fix it.
  c.task.level_weights = (2.0, 1.0, 2.0, 1.0, 2.0)
  # Chance that a training solution forgets a carry (held-out solutions and all answers are right).
  c.task.teacher_slip = 0.6

  c.tokenizer = ml_collections.ConfigDict()
  c.tokenizer.path = ""  # empty: train a sentencepiece model on the task text, cached in the workdir
  c.tokenizer.vocab_size = 128

  c.model = ml_collections.ConfigDict()
  c.model.vocab_size = 0  # 0: taken from the tokenizer
  c.model.d_model = 128
  c.model.n_layers = 3
  c.model.n_heads = 4
  c.model.n_kv_heads = 2
  c.model.head_dim = 32
  c.model.d_ff = 384
  c.model.qkv_bias = True
  c.model.tie_embeddings = True
  c.model.rope_theta = 10_000.0
  c.model.norm_eps = 1e-6
  c.model.dtype = "float32"
  c.model.param_dtype = "float32"
  # One lax.scan over the layers in training and scoring passes (ModelConfig.scan_layers): a smaller
  # program, at the cost of a stacked copy of the block weights per pass. Off for the 3-layer toy (whose
  # golden metrics pin the unrolled program) and for the paper configs (not measured on a TPU).
  c.model.scan_layers = False
  c.model.remat = False  # with scan_layers: recompute each layer's activations in the backward pass

  c.warmstart = ml_collections.ConfigDict()
  c.warmstart.steps = 700
  c.warmstart.batch_size = 64
  c.warmstart.lr = 3e-3
  c.warmstart.warmup_steps = 50
  c.warmstart.pass_rate_prompts = 200  # held-out prompts for the pass-rate histogram
  c.warmstart.pass_rate_samples = 8

  c.rollout = ml_collections.ConfigDict()
  c.rollout.strategy = strategy  # --config.rollout.strategy=X later takes X's presets too
  c.rollout.batch_prompts = 32  # prompts per training step (DAPO: kept prompts per step)
  c.rollout.group_size = 8  # G for grpo and dapo
  c.rollout.max_new_tokens = 40
  c.rollout.temperature = 1.0
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0  # 0: off
  # "engine": continuous batching with streamed stages (ar3po_jax/engine; one process);
  # "static": one padded launch per stage (ar3po_jax/policy.py; also what several processes use).
  c.rollout.sampler = "engine"
  c.rollout.engine = ml_collections.ConfigDict()
  c.rollout.engine.slots = 64  # decode rows (a multiple of the data-parallel size); benchmarks/rollout.py
  c.rollout.engine.steps_per_call = 8  # decode steps per device call; the host refills slots between calls
  c.rollout.engine.prefill_chunk = 32  # prompt tokens per row per prefill call
  c.rollout.engine.num_buckets = 4  # attention-width buckets over the cache (compiled decode variants)

  c.rollout.ar3po = ml_collections.ConfigDict()
  c.rollout.ar3po.stages = 2  # S
  c.rollout.ar3po.k = 4  # responses per active prompt per stage
  c.rollout.ar3po.reuse = True
  c.rollout.ar3po.reuse_mode = "recompute"  # Option I "recompute" | Option II "stop_gradient"
  c.rollout.ar3po.reuse_pick = "newest"  # "newest" | "random"
  # Matched control for the reuse analysis: this fraction of prompts (fixed per prompt by a hash of its
  # uid) never gets a reused response, although one is buffered; the records log what was withheld.
  c.rollout.ar3po.reuse_control = 0.0

  c.rollout.buffer = ml_collections.ConfigDict()
  c.rollout.buffer.per_prompt = 2
  c.rollout.buffer.total = 100_000

  c.rollout.dapo = ml_collections.ConfigDict()
  c.rollout.dapo.gen_batch_prompts = 32
  c.rollout.dapo.max_gen_batches = 4
  c.rollout.dapo.overlong_buffer = 8  # L_cache, in tokens; 0 turns shaping off
  c.rollout.dapo.overlong_penalty = 1.0
  c.rollout.dapo.mask_truncated = True

  c.rollout.aero = ml_collections.ConfigDict()
  c.rollout.aero.n_explore = 8
  c.rollout.aero.budget = 16
  c.rollout.aero.u_res = 0.0
  c.rollout.aero.n_extra = 2
  c.rollout.aero.reject_ratio = 1.0
  c.rollout.aero.alpha0 = 1.0
  c.rollout.aero.beta0 = 1.0

  # Every other registered strategy brings its own section, rollout.<name>, with the defaults (and
  # their comments) in its file: `config_defaults` of ar3po_jax/rollout/strategies/<name>.py.
  for name, cls in REGISTRY.items():
    if cls.config_defaults and name not in c.rollout:
      c.rollout[name] = ml_collections.ConfigDict(dict(cls.config_defaults))

  c.rl = ml_collections.ConfigDict()
  c.rl.steps = 100
  c.rl.lr = 1e-4
  c.rl.warmup_steps = 10  # linear lr warm-up (DAPO uses 10 steps)
  c.rl.weight_decay = 0.0
  c.rl.grad_clip = 1.0
  # AdamW over one raveled vector (update.make_optimizer): the same numbers with a compile that does not
  # grow with the parameter count of leaves; only with replicated parameters (no fsdp / tensor axes).
  c.rl.flatten_optimizer = False
  c.rl.max_skipped_steps = 3  # updates skipped in a row (non-finite loss/grad/params) that stop the run; 0: never
  c.rl.eps_low = 0.2
  c.rl.eps_high = placeholder(float)  # None: the strategy's preset (`presets` below)
  c.rl.beta = 0.0  # KL(pi || pi_ref) weight, k3 estimator; the reference model exists only if > 0
  c.rl.loss_agg = "token_mean"  # "token_mean" | "seq_mean"
  c.rl.scale_by_std = True  # False: Dr. GRPO
  c.rl.adv_eps = 1e-6
  c.rl.micro_batch_rows = 0  # 0: the whole batch in one pass; else scan over micro-batches
  c.rl.row_buckets = 8  # the update compiles at most this many batch-row shapes
  # Several prompt + response sequences per update row, each attending only to itself (ar3po_jax/batching.py);
  # False: one response per row, [left-padded prompt | right-padded response] (the sampler's layout).
  c.rl.pack = True
  c.rl.response_buckets = 3  # ... and this many response lengths (16, 32 or 40 slots here)
  # Optimizer steps per rollout batch: the rows split into mini_batches (advantages computed over the
  # whole batch first), each pass over them repeated `epochs` times; 1 x 1 is one step per rollout.
  c.rl.mini_batches = 1
  c.rl.epochs = 1
  c.rl.adv_std_ddof = 1  # group std with ddof 1 (the sample std, as verl); 0: the population std
  # > 0: weigh each fresh token's loss by min(pi_old / pi_sampler, tis_cap) (verl's truncated IS
  # rollout correction, for a sampler whose numbers differ from the trainer's); re-scores pi_old.
  c.rl.tis_cap = 0.0
  c.rl.recompute_old_logprobs = False  # True: pi_old from a scoring pass, not the sampler

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 25
  c.eval.num_prompts = 500
  c.eval.batch_size = 500
  c.eval.text_samples = 4  # held-out completions shown with their rewards as TensorBoard text per eval

  # The run's own analyses (ar3po_jax.analyze). Every step writes WORKDIR/records.jsonl; a full draw
  # samples full_draw_samples fresh responses for full_draw_prompts of the step's prompts before the
  # update every full_draw_every steps (0: never), which costs extra sampling, so it is off by default.
  c.analysis = ml_collections.ConfigDict()
  c.analysis.full_draw_every = 0
  c.analysis.full_draw_samples = 8
  c.analysis.full_draw_prompts = 32

  c.mesh = mesh()

  c.log = ml_collections.ConfigDict()
  c.log.progress = True
  c.log.tensorboard = True

  # Checkpoints go to WORKDIR/checkpoints; a run started on a workdir holding some resumes from the
  # newest complete one. One is also written after the last step and on SIGTERM (then exit code 143).
  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.enabled = True
  c.checkpoint.every = 10  # RL steps between checkpoints
  c.checkpoint.keep = 3  # newest checkpoints kept
  c.checkpoint.async_save = True  # write in the background while the next step runs


  # Filled after flags for the final rollout.strategy (see the module docstring).
  c.presets = presets(default={"rl.eps_high": 0.2}, dapo={"rl.eps_high": 0.28})
  return c
