"""The RL loop. It takes a task's `Setup` (tokenizer, model, params, prompts, eval sets, verifier) and
knows nothing else of the task. Per step, as in the papers' algorithm:

  1. rollout: the stage scheduler runs the strategy (`rollout.strategy`) against the sampling kernel
     and the verifier, reusing buffered responses, and forms variable-size groups;
  2. pi_old: reused responses under Option I (and every response, if configured) are re-scored
     under the current policy; pi_ref is scored only when beta > 0;
  3. update: one compiled function computes group advantages and the clipped-ratio loss and takes
     rl.epochs x rl.mini_batches optimizer steps;
  4. log the rollout cost and training metrics (`metrics.DOCS`); evaluate every `eval.every` steps.

Everything a step draws on that is not in the TrainState (sampler key, prompt stream position, replay
buffer, strategy state, counters, host rng) is a named `Stateful` part that the checkpoint saves and
restores by name, so a resumed run continues as if never stopped.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from ar3po_jax import batching, checkpoint, config_validation, distributed, evaluation, guards, sharding
from ar3po_jax import metrics as metrics_lib
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.engine import EngineConfig
from ar3po_jax.engine.sampler import EngineSampler
from ar3po_jax.policy import PolicySampler
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.rollout import records as records_lib
from ar3po_jax.rollout.strategies import REGISTRY as STRATEGIES
from ar3po_jax.sampling import SamplingParams, score, score_packed
from ar3po_jax.tasks.registry import Setup
from ar3po_jax.update import UpdateSettings, init_train_state, jit_update, make_optimizer, make_schedule, make_update_fn


def max_rows_per_step(rollout_config) -> int:
  """The most responses a step's groups can hold, which sizes the update's row buckets."""
  return rollout_config.batch_prompts * STRATEGIES[rollout_config.strategy].max_responses_per_prompt(rollout_config)


def run(config, workdir: str, setup: Setup, log: Callable[[str], None] = print, mesh=None) -> list[dict]:
  """Runs config.rl.steps RL steps from the setup's policy; returns the metrics history."""
  rollout_cfg, rl = config.rollout, config.rl
  model, tokenizer = setup.model, setup.tokenizer

  # ---------------------------------------------------------------------------------------------
  # Mesh, train state, compiled update.
  # ---------------------------------------------------------------------------------------------
  mesh = mesh or sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  dp = sharding.data_parallel_size(mesh)
  batch_sharding = sharding.batch_sharding(mesh)
  params = distributed.put(setup.params, sharding.tree_shardings(setup.params, mesh))
  optimizer = make_optimizer(
      rl.lr, rl.weight_decay, rl.grad_clip, rl.warmup_steps, flatten=bool(rl.get("flatten_optimizer", False)))
  # Built on device with its final shardings: the optimizer state never exists whole on one host.
  init_state = lambda p: init_train_state(p, optimizer)  # noqa: E731
  state_shardings = sharding.tree_shardings(jax.eval_shape(init_state, params), mesh)
  state = jax.jit(init_state, out_shardings=state_shardings)(params)
  ref_params = jax.tree.map(jnp.copy, state.params) if rl.beta > 0 else None
  update = jit_update(
      make_update_fn(
          model,
          optimizer,
          UpdateSettings.from_config(rl, rollout_cfg.temperature),
          make_schedule(rl.lr, rl.warmup_steps),
      ),
      state_shardings,
      batch_sharding,
  )

  # ---------------------------------------------------------------------------------------------
  # Resume: the TrainState from the newest good checkpoint, if any (host parts once they exist).
  # ---------------------------------------------------------------------------------------------
  start_step = 0
  identity = checkpoint.run_identity(config, tokenizer)
  checkpointer = checkpoint.from_config(config, workdir)
  restored = checkpointer.restore_latest(state, identity, log) if checkpointer else None
  if restored:
    state, start_step = restored.train_state, restored.step
  preemption = checkpoint.PreemptionFlag()
  max_skipped = rl.get("max_skipped_steps", config_validation.DEFAULT_MAX_SKIPPED_STEPS)
  skip_guard = guards.SkippedStepGuard(max_skipped, int(jax.device_get(state.skipped_steps)))

  # ---------------------------------------------------------------------------------------------
  # Rollout: sampler, verifier, buffer, strategy, prompt stream.
  # ---------------------------------------------------------------------------------------------
  sampling = SamplingParams(
      rollout_cfg.max_new_tokens, rollout_cfg.temperature, rollout_cfg.top_p, rollout_cfg.top_k,
      tokenizer.stop_ids, tokenizer.pad_id,
  )
  sampler = _make_sampler(config, setup, state.params, sampling, mesh, log)
  verifier = setup.verifier
  if jax.process_count() > 1:  # a verifier time limit can fire on one host only: process 0's rewards count
    verifier = distributed.LeaderVerifier(verifier)
  buffer = ReplayBuffer(rollout_cfg.buffer.per_prompt, rollout_cfg.buffer.total)
  prompts = PromptStream(setup.train_prompts, config.seed)
  scheduler = Scheduler(make_strategy(rollout_cfg), sampler, verifier, buffer, prompts)
  host_rng = np.random.default_rng([config.seed, 3])
  counters = metrics_lib.RunCounters()
  # What the checkpoint saves besides the TrainState, by name.
  host_parts = {
      "sampler": sampler, "scheduler": scheduler, "counters": counters, "host_rng": checkpoint.GeneratorState(host_rng),
  }
  if restored:
    checkpoint.load_host_state(restored.host_state, host_parts)

  # ---------------------------------------------------------------------------------------------
  # Metrics and evaluation.
  # ---------------------------------------------------------------------------------------------
  # Every mini-batch splits evenly over the data shards and into micro-batches.
  row_granule = max(dp, rl.micro_batch_rows * dp if rl.micro_batch_rows else dp) * rl.get("mini_batches", 1)
  max_rows = max_rows_per_step(rollout_cfg)
  # rl.pack: several prompt + response sequences per update row (`batching`), rows of one length per run.
  pack_len = pack_largest = 0
  # Unpacked rows: prompts padded to the training set's longest, so prompt widths compile one shape.
  prompt_width = batching.prompt_slots([len(p.token_ids) for p in setup.train_prompts])
  if rl.get("pack", False):
    longest_sequence = max(len(p.token_ids) for p in setup.train_prompts) + rollout_cfg.max_new_tokens
    pack_len = batching.packed_row_length(longest_sequence)
    pack_largest = batching.round_up(-(-max_rows // (pack_len // longest_sequence)), row_granule)
  logged = checkpoint.rewind_metrics(workdir, start_step) if restored else []
  writer = metrics_lib.MetricsWriter(
      workdir, config.log.tensorboard, active=jax.process_index() == 0, append=bool(restored)
  )
  writer.history.extend(logged)
  record_log = records_lib.RecordLog(workdir, jax.process_index() == 0, start_step if restored else None)
  eval_prompts = setup.eval_prompts[: config.eval.num_prompts]
  text_samples = config.eval.get("text_samples", 4)

  def evaluate(step: int) -> float:
    """Greedy held-out accuracy; a few completions with their rewards go to TensorBoard as text."""
    out = evaluation.sample_and_verify(
        sampler, eval_prompts, verifier, 1, config.eval.batch_size, keep_texts=True, sampling=evaluation.greedy(sampler)
    )
    shown = [
        {"prompt": p.text, "completion": texts[0], "answer": p.answer, "reward": float(r[0])}
        for p, texts, r in zip(eval_prompts[:text_samples], out["texts"], out["rewards"])
    ]
    writer.write_text(step, "eval/samples", metrics_lib.samples_markdown(shown))
    return float(np.mean(out["rewards"].reshape(-1))) if eval_prompts else float("nan")

  # Setups whose config asks for eval.samples (the real-data configs) are also scored per held-out set,
  # k samples a prompt at the eval temperature and top-p: eval/<set>/avg@k and pass@k, as the papers report.
  eval_samples = config.eval.get("samples", 0) or 0
  eval_sampling = dataclasses.replace(
      sampling,
      temperature=config.eval.get("temperature", sampling.temperature),
      top_p=config.eval.get("top_p", sampling.top_p),
  )

  def evaluate_sets() -> dict[str, float]:
    if not eval_samples:
      return {}
    return evaluation.benchmark_metrics(
        sampler, setup.eval_sets, verifier, eval_samples, config.eval.batch_size, eval_sampling, config.eval.num_prompts
    )

  if not restored:
    accuracy = evaluate(0)
    log(f"step 0 (before RL): eval/accuracy {accuracy:.3f} on {len(eval_prompts)} held-out prompts")
    writer.write(0, {"eval/accuracy": accuracy, **evaluate_sets(), "rollout/cum_responses": 0, "rollout/cum_tokens": 0})

  # ---------------------------------------------------------------------------------------------
  # The loop.
  # ---------------------------------------------------------------------------------------------
  start = time.time()
  bar = tqdm.trange(
      start_step, rl.steps, desc=f"RL ({rollout_cfg.strategy})", disable=not config.log.progress, dynamic_ncols=True
  )
  for step in bar:
    step_start = time.time()

    # Rollout.
    rollout = scheduler.rollout(step, host_rng)
    step_metrics = dict(rollout.metrics)
    if hasattr(sampler, "take_metrics"):
      step_metrics.update(sampler.take_metrics())
    counters.cum_responses += int(step_metrics["rollout/responses"])
    counters.cum_tokens += int(step_metrics["rollout/tokens"])

    # The analyses' full draw (analysis.full_draw_every; off by default): G samples at this policy.
    if rollout.records is not None and records_lib.full_draw_due(config.get("analysis"), step):
      rollout.records["full_draw"] = records_lib.full_draw(
          sampler, verifier, setup.train_prompts, rollout.records, config.analysis)

    # pi_old / pi_ref, then the update.
    update_start = time.time()
    if rollout.groups:
      n_rows = sum(g.size for g in rollout.groups)
      if pack_len:
        order = batching.pack_rows(rollout.groups, pack_len, tokenizer.stop_ids)
        compiled_rows = [shape[0] for shape in counters.compiled_shapes if shape[1] == pack_len]
        rows = batching.packed_row_bucket(len(order), compiled_rows, rl.row_buckets, pack_largest, row_granule)
        batch, reused = batching.pack_update_batch_packed(
            rollout.groups, pack_len, rows, batching.row_bucket(n_rows, max_rows, 1, row_granule), tokenizer.pad_id,
            tokenizer.stop_ids, order,
        )
        slots = pack_len
      else:
        rows = batching.row_bucket(n_rows, max_rows, rl.row_buckets, row_granule)
        longest = max(len(r.token_ids) for g in rollout.groups for r in g.responses)
        slots = batching.response_bucket(longest, rollout_cfg.max_new_tokens, rl.get("response_buckets", 1))
        batch, reused = batching.pack_update_batch(
            rollout.groups, slots, rows, tokenizer.pad_id, stop_ids=tokenizer.stop_ids, prompt_width=prompt_width
        )
      batch = _refresh_log_probs(batch, reused, state.params, ref_params, model, rollout_cfg, rl, batch_sharding)
      counters.compiled_shapes.add(batch["tokens_BxT"].shape)
      state, train_metrics = update(state, distributed.put(batch, batch_sharding))
      sampler.params = state.params  # the one place the sampler's policy changes
      step_metrics.update(distributed.to_host(train_metrics))
      step_metrics.update(
          {
              "train/rows": n_rows,
              "train/row_bucket": rows,
              "train/row_length" if pack_len else "train/response_slots": slots,
              "train/padding_efficiency": batching.padding_efficiency(batch),
          }
      )
      if pack_len:
        step_metrics["train/packed_rows"] = len(order)
    step_metrics["time/update_s"] = time.time() - update_start
    step_metrics["train/compiled_variants"] = len(counters.compiled_shapes)
    step_metrics.update({"rollout/cum_responses": counters.cum_responses, "rollout/cum_tokens": counters.cum_tokens})

    # Evaluation and export.
    last = step == rl.steps - 1
    if (config.eval.every and (step + 1) % config.eval.every == 0) or last:
      eval_start = time.time()
      step_metrics["eval/accuracy"] = evaluate(step + 1)
      step_metrics.update(evaluate_sets())
      step_metrics["time/eval_s"] = time.time() - eval_start
    export_every = config.model.get("export_every", 0)
    if setup.export is not None and export_every and ((step + 1) % export_every == 0 or last):
      setup.export(state.params, os.path.join(workdir, "hf", f"step_{step + 1}"))

    # Logging and checkpointing.
    step_metrics["time/step_s"] = time.time() - step_start
    step_metrics["time/elapsed_s"] = time.time() - start
    writer.write(step + 1, step_metrics)
    record_log.write(rollout.records)
    skip_guard.observe(step + 1, step_metrics.get("train/skipped_steps"), step_metrics)
    bar.set_postfix(metrics_lib.live_postfix(step_metrics), refresh=False)
    if "eval/accuracy" in step_metrics:
      bar.write(
          f"step {step + 1}: eval/accuracy {step_metrics['eval/accuracy']:.3f}  "
          f"cumulative responses {counters.cum_responses:,}"
      )
    if checkpointer:
      checkpointer.save(step + 1, state, checkpoint.host_state(host_parts, identity), force=last or preemption.set)
    if preemption.set:
      saved = ", checkpoint saved" if checkpointer else ", checkpoints are off"
      log(f"SIGTERM: stopping after step {step + 1}{saved}")
      break
  bar.close()

  # ---------------------------------------------------------------------------------------------
  # Close, summarize.
  # ---------------------------------------------------------------------------------------------
  if checkpointer:
    checkpointer.close()
  preemption.uninstall()
  writer.close()
  setup.close()
  if preemption.set:
    raise checkpoint.Preempted(step + 1)
  if jax.process_index() == 0:
    metrics_lib.plot_accuracy_vs_responses(
        writer.history, os.path.join(workdir, "accuracy_vs_responses.png"), f"{rollout_cfg.strategy} on {setup.title}"
    )
    log("summary\n" + metrics_lib.summary_table(writer.history))
  return writer.history


def _make_sampler(config, setup: Setup, params, sampling: SamplingParams, mesh, log):
  """The rollout.sampler: the continuous-batching engine (one process) or the static kernel."""
  rollout_cfg, model = config.rollout, setup.model
  rng = jax.random.key(config.seed + 2)
  kind = rollout_cfg.get("sampler", "static")
  if kind not in ("engine", "static"):
    raise ValueError(f"rollout.sampler must be 'engine' or 'static', got {kind!r}")
  dp = sharding.data_parallel_size(mesh)
  cache_sharding = sharding.kv_cache_sharding(mesh, model.config.n_kv_heads)
  if kind == "engine" and jax.process_count() > 1:
    # The engine's host loop reads every call's tokens on one host; several processes would each need
    # the global-array plumbing PolicySampler has (distributed.put / to_host). Until then: the static kernel.
    log(f"rollout.sampler=engine runs on one process; {jax.process_count()} processes use the static kernel")
    kind = "static"
  if kind == "static":
    return PolicySampler(
        model, params, setup.tokenizer, sampling, rng, dp, sharding.batch_sharding(mesh), cache_sharding
    )
  e = rollout_cfg.engine
  if e.slots % dp:
    raise ValueError(f"rollout.engine.slots={e.slots} must be a multiple of the data-parallel size {dp}")
  prompts = list(setup.train_prompts) + [p for ps in setup.eval_sets.values() for p in ps]
  engine_config = EngineConfig(
      slots=e.slots, steps_per_call=e.steps_per_call, max_prompt_len=max(len(p.token_ids) for p in prompts),
      max_new_tokens=rollout_cfg.max_new_tokens, prefill_chunk=e.prefill_chunk, num_buckets=e.num_buckets,
  )
  return EngineSampler(model, params, setup.tokenizer, sampling, rng, engine_config, cache_sharding=cache_sharding)


def _refresh_log_probs(batch, reused, params, ref_params, model, rollout_cfg, rl, batch_sharding):
  """pi_old for Option I reused rows (or every row, if configured) and pi_ref when beta > 0.

  The truncated IS correction (rl.tis_cap > 0) weighs pi_old by the trainer against the sampler's
  numbers, so it re-scores every row as verl does."""
  packed = batching.is_packed(batch)
  old_key, ref_key = ("old_logp_BxT", "ref_logp_BxT") if packed else ("old_logp_BxTr", "ref_logp_BxTr")
  every_row = rl.recompute_old_logprobs or rl.get("tis_cap", 0.0) > 0
  recompute = np.ones_like(reused) if every_row else reused & batch["train_R" if packed else "train_row_B"]
  if not recompute.any() and ref_params is None:
    return batch
  if packed:
    inputs = distributed.put(
        tuple(batch[k] for k in ("tokens_BxT", "segment_BxT", "positions_BxT", "response_BxT")), batch_sharding
    )
    scorer = lambda weights: score_packed(  # noqa: E731
        weights, *inputs, model=model, temperature=rollout_cfg.temperature, batch_sharding=batch_sharding
    )
  else:
    prompt_slots = batch["tokens_BxT"].shape[1] - batch["old_logp_BxTr"].shape[1]
    tokens, mask = distributed.put((batch["tokens_BxT"], batch["mask_BxT"]), batch_sharding)
    scorer = lambda weights: score(  # noqa: E731
        weights, tokens, mask, model=model, prompt_slots=prompt_slots, temperature=rollout_cfg.temperature,
        batch_sharding=batch_sharding,
    )

  if recompute.any():
    batch[old_key] = np.where(batching.per_token(batch, recompute), distributed.to_host(scorer(params)), batch[old_key])
  if ref_params is not None:
    batch[ref_key] = distributed.to_host(scorer(ref_params))
  return batch
