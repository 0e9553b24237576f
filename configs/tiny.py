r"""The embedded run: a 0.6M-parameter decoder learns arithmetic by RL with verifiable rewards.

Everything is made locally: the task generator writes the problems, a sentencepiece tokenizer is
trained on them, a supervised warm start gives a policy that is right on some prompts and wrong on
others, then RL with the chosen rollout strategy improves it.

Run (2 CPU cores, 7 minutes end to end measured on an idle machine; tokenizer and warm start are
cached in the workdir):

  python -m ar3po_jax.main --config=configs/tiny.py:ar3po --workdir=/tmp/ar3po_tiny

The argument picks the rollout strategy: grpo, dapo, ar3po (the default) or aero. Override any field
with --config.FIELD=VALUE, e.g. --config.rl.steps=50 --config.rollout.ar3po.k=2.

The warm start imitates worked solutions that forget the carry in 60% of the sums that need one
(task.teacher_slip); the verifier checks the true answer, so RL has to teach the policy to carry.

Expect (measured, seeds 0 / 1 / 2): warm-start histograms with 17 / 36 / 40% of held-out prompts never
solved and 34 / 24 / 24% always solved; greedy held-out accuracy 0.574 -> 0.686, 0.420 -> 0.566 and
0.394 -> 0.474 after 100 AR3PO steps (mean +11.3 points; most of it by step 25); about 5 responses per
prompt for ar3po against 8 for grpo. Metrics in WORKDIR/metrics.jsonl, TensorBoard events in
WORKDIR/tb, and WORKDIR/accuracy_vs_responses.png.
"""

import ml_collections

STRATEGIES = ("grpo", "dapo", "ar3po", "aero")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  strategy = arg or "ar3po"
  if strategy not in STRATEGIES:
    raise ValueError(f"configs/tiny.py: unknown strategy {strategy!r}; choose one of {STRATEGIES}")

  c = ml_collections.ConfigDict()
  c.seed = 0
  c.workdir = ""  # empty: the --workdir flag, or ./workdir/tiny_<strategy>
  c.cache_dir = ""  # tokenizer and warm start cache; empty: WORKDIR/cache. Runs may share one.

  c.task = ml_collections.ConfigDict()
  c.task.name = "arithmetic"
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

  c.warmstart = ml_collections.ConfigDict()
  c.warmstart.steps = 700
  c.warmstart.batch_size = 64
  c.warmstart.lr = 3e-3
  c.warmstart.warmup_steps = 50
  c.warmstart.pass_rate_prompts = 200  # held-out prompts for the pass-rate histogram
  c.warmstart.pass_rate_samples = 8

  c.rollout = ml_collections.ConfigDict()
  c.rollout.strategy = strategy
  c.rollout.batch_prompts = 32  # prompts per training step (DAPO: kept prompts per step)
  c.rollout.group_size = 8  # G for grpo and dapo
  c.rollout.max_new_tokens = 40
  c.rollout.temperature = 1.0
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0  # 0: off

  c.rollout.ar3po = ml_collections.ConfigDict()
  c.rollout.ar3po.stages = 2  # S
  c.rollout.ar3po.k = 4  # responses per active prompt per stage
  c.rollout.ar3po.reuse = True
  c.rollout.ar3po.reuse_mode = "recompute"  # Option I "recompute" | Option II "stop_gradient"
  c.rollout.ar3po.reuse_pick = "newest"  # "newest" | "random"

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

  c.rl = ml_collections.ConfigDict()
  c.rl.steps = 100
  c.rl.lr = 1e-4
  c.rl.warmup_steps = 10  # linear lr warm-up (DAPO uses 10 steps)
  c.rl.weight_decay = 0.0
  c.rl.grad_clip = 1.0
  c.rl.eps_low = 0.2
  c.rl.eps_high = 0.2
  c.rl.beta = 0.0  # KL(pi || pi_ref) weight, k3 estimator; the reference model exists only if > 0
  c.rl.loss_agg = "token_mean"  # "token_mean" | "seq_mean"
  c.rl.scale_by_std = True  # False: Dr. GRPO
  c.rl.adv_eps = 1e-6
  c.rl.micro_batch_rows = 0  # 0: the whole batch in one pass; else scan over micro-batches
  # Optimizer steps per rollout batch: the rows split into mini_batches (advantages computed over the
  # whole batch first), each pass over them repeated `epochs` times; 1 x 1 is one step per rollout.
  c.rl.mini_batches = 1
  c.rl.epochs = 1
  c.rl.adv_std_ddof = 1  # group std with ddof 1 (the sample std, as verl); 0: the population std
  # > 0: weigh each fresh token's loss by min(pi_old / pi_sampler, tis_cap) (verl's truncated IS
  # rollout correction, for a sampler whose numbers differ from the trainer's); re-scores pi_old.
  c.rl.tis_cap = 0.0
  c.rl.row_buckets = 8  # the update compiles at most this many batch-row shapes
  c.rl.response_buckets = 3  # ... and this many response lengths (16, 32 or 40 slots here)
  c.rl.recompute_old_logprobs = False  # True: pi_old from a scoring pass, not the sampler

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 25
  c.eval.num_prompts = 500
  c.eval.batch_size = 500

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1: every device not used by the other axes
  c.mesh.fsdp = 1
  c.mesh.tensor = 1

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

  if strategy == "dapo":
    c.rl.eps_high = 0.28
    c.rl.beta = 0.0
  return c
