"""The RL loop. Per step, as in the papers' algorithm:

  1. rollout: the stage scheduler runs the strategy (grpo / dapo / ar3po / aero) against the
     sampling kernel and the verifier, reusing buffered responses, and forms variable-size groups;
  2. pi_old: reused responses under Option I (and every response, if configured) are re-scored
     under the current policy; pi_ref is scored only when beta > 0;
  3. update: one compiled function computes group advantages and the clipped-ratio loss and takes
     rl.epochs x rl.mini_batches optimizer steps;
  4. log the rollout cost and training metrics; evaluate every `eval.every` steps.
"""

from __future__ import annotations

import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from ar3po_jax import batching, checkpoint, distributed, evaluation, metrics as metrics_lib, sharding
from ar3po_jax.data import PromptStream
from ar3po_jax.embedded import Embedded
from ar3po_jax.policy import PolicySampler
from ar3po_jax.rewards import ExactVerifier, MathVerifier
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.sampling import SamplingParams, score
from ar3po_jax.update import UpdateSettings, init_train_state, jit_update, make_optimizer, make_schedule, make_update_fn


def max_rows_per_step(rollout_config) -> int:
  """The most responses a step's groups can hold, which sizes the update's row buckets."""
  r = rollout_config
  per_prompt = {
      "grpo": r.group_size,
      "dapo": r.group_size,
      "ar3po": r.ar3po.stages * r.ar3po.k + 1,
      "aero": r.aero.budget,
  }[r.strategy]
  return r.batch_prompts * per_prompt


def run(config, workdir: str, embedded: Embedded, log: Callable[[str], None] = print) -> list[dict]:
  """Runs config.rl.steps RL steps from the warm-started policy; returns the metrics history."""
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  dp = sharding.data_parallel_size(mesh)
  model, tokenizer = embedded.model, embedded.tokenizer
  rollout_cfg, rl = config.rollout, config.rl

  batch_sharding = sharding.batch_sharding(mesh)
  params = distributed.put(embedded.params, sharding.tree_shardings(embedded.params, mesh))
  optimizer = make_optimizer(rl.lr, rl.weight_decay, rl.grad_clip, rl.warmup_steps)
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

  sampling = SamplingParams(
      rollout_cfg.max_new_tokens, rollout_cfg.temperature, rollout_cfg.top_p, rollout_cfg.top_k, tokenizer.stop_ids, tokenizer.pad_id
  )
  sampler = PolicySampler(
      model, state.params, tokenizer, sampling, jax.random.key(config.seed + 2), dp, batch_sharding,
      sharding.kv_cache_sharding(mesh, model.config.n_kv_heads),
  )
  # The embedded task's answers are integers: the in-process exact check is the whole verifier.
  if config.task.name == "arithmetic":
    verifier = ExactVerifier()
  else:
    verifier = MathVerifier(timeout_s=config.verify.timeout_s, fallback=config.verify.fallback or None)
  if jax.process_count() > 1:  # a verifier time limit can fire on one host only: process 0's rewards count
    verifier = distributed.LeaderVerifier(verifier)
  buffer = ReplayBuffer(rollout_cfg.buffer.per_prompt, rollout_cfg.buffer.total)
  scheduler = Scheduler(make_strategy(rollout_cfg), sampler, verifier, buffer, PromptStream(embedded.train_prompts, config.seed))
  host_rng = np.random.default_rng([config.seed, 3])
  compiled_shapes: set[tuple[int, ...]] = set()
  cum_responses = cum_tokens = start_step = 0

  # Resume: everything a step draws on (params, optimizer, RNGs, prompt position, buffer, posteriors)
  # comes back from the newest good checkpoint, so the run continues as if never stopped.
  identity = checkpoint.run_identity(config, tokenizer)
  checkpointer = checkpoint.from_config(config, workdir)
  restored = checkpointer.restore_latest(state, identity, log) if checkpointer else None
  if restored:
    state, start_step = restored.train_state, restored.step
    counters = checkpoint.load_host_state(restored.host_state, sampler, host_rng, scheduler)
    cum_responses, cum_tokens = counters["cum_responses"], counters["cum_tokens"]
    compiled_shapes = {tuple(s) for s in counters["compiled_shapes"]}
  preemption = checkpoint.PreemptionFlag()

  # Every mini-batch splits evenly over the data shards and into micro-batches.
  row_granule = max(dp, rl.micro_batch_rows * dp if rl.micro_batch_rows else dp) * rl.get("mini_batches", 1)
  max_rows = max_rows_per_step(rollout_cfg)
  logged = checkpoint.rewind_metrics(workdir, start_step) if restored else []
  writer = metrics_lib.MetricsWriter(workdir, config.log.tensorboard, active=jax.process_index() == 0, append=bool(restored))
  writer.history.extend(logged)
  eval_prompts = embedded.eval_prompts[: config.eval.num_prompts]

  def evaluate() -> float:
    sampler.params = state.params
    return evaluation.greedy_accuracy(sampler, eval_prompts, verifier, config.eval.batch_size)

  if not restored:
    accuracy = evaluate()
    log(f"step 0 (before RL): eval/accuracy {accuracy:.3f} on {len(eval_prompts)} held-out prompts")
    writer.write(0, {"eval/accuracy": accuracy, "rollout/cum_responses": 0, "rollout/cum_tokens": 0})
  start = time.time()
  bar = tqdm.trange(start_step, rl.steps, desc=f"RL ({rollout_cfg.strategy})", disable=not config.log.progress, dynamic_ncols=True)
  for step in bar:
    step_start = time.time()
    sampler.params = state.params
    rollout = scheduler.rollout(step, host_rng)
    step_metrics = dict(rollout.metrics)
    cum_responses += int(step_metrics["rollout/responses"])
    cum_tokens += int(step_metrics["rollout/tokens"])

    update_start = time.time()
    if rollout.groups:
      n_rows = sum(g.size for g in rollout.groups)
      rows = batching.row_bucket(n_rows, max_rows, rl.row_buckets, row_granule)
      longest = max(len(r.token_ids) for g in rollout.groups for r in g.responses)
      slots = batching.response_bucket(longest, rollout_cfg.max_new_tokens, rl.get("response_buckets", 1))
      batch, reused = batching.pack_update_batch(
          rollout.groups, slots, rows, tokenizer.pad_id, stop_ids=tokenizer.stop_ids
      )
      batch = _refresh_log_probs(batch, reused, state.params, ref_params, model, rollout_cfg, rl, batch_sharding)
      compiled_shapes.add(batch["tokens_BxT"].shape)
      state, train_metrics = update(state, distributed.put(batch, batch_sharding))
      step_metrics.update(distributed.to_host(train_metrics))
      response_slots = batch["mask_BxT"][:, -slots:]
      step_metrics.update(
          {
              "train/rows": n_rows,
              "train/row_bucket": rows,
              "train/response_slots": slots,
              "train/padding_efficiency": float(response_slots.sum() / response_slots.size),
          }
      )
    step_metrics["time/update_s"] = time.time() - update_start
    step_metrics["train/compiled_variants"] = len(compiled_shapes)
    step_metrics.update({"rollout/cum_responses": cum_responses, "rollout/cum_tokens": cum_tokens})

    last = step == rl.steps - 1
    if (config.eval.every and (step + 1) % config.eval.every == 0) or last:
      step_metrics["eval/accuracy"] = evaluate()
    export_every = config.model.get("export_every", 0)
    if hasattr(embedded, "policy") and export_every and ((step + 1) % export_every == 0 or last):
      _export_hf(embedded.policy, model, state.params, os.path.join(workdir, "hf", f"step_{step + 1}"))
    step_metrics["time/step_s"] = time.time() - step_start
    step_metrics["time/elapsed_s"] = time.time() - start
    writer.write(step + 1, step_metrics)
    bar.set_postfix(metrics_lib.live_postfix(step_metrics), refresh=False)
    if "eval/accuracy" in step_metrics:
      bar.write(f"step {step + 1}: eval/accuracy {step_metrics['eval/accuracy']:.3f}  cumulative responses {cum_responses:,}")
    if checkpointer:
      counters = {"cum_responses": cum_responses, "cum_tokens": cum_tokens, "compiled_shapes": sorted(compiled_shapes)}
      host = checkpoint.host_state(sampler, host_rng, scheduler, counters, identity)
      checkpointer.save(step + 1, state, host, force=last or preemption.set)
    if preemption.set:
      log(f"SIGTERM: stopping after step {step + 1}" + (", checkpoint saved" if checkpointer else ", checkpoints are off"))
      break
  bar.close()

  if checkpointer:
    checkpointer.close()
  preemption.uninstall()
  writer.close()
  if hasattr(verifier, "close"):
    verifier.close()
  if preemption.set:
    raise checkpoint.Preempted(step + 1)
  if jax.process_index() == 0:
    metrics_lib.plot_accuracy_vs_responses(
        writer.history, os.path.join(workdir, "accuracy_vs_responses.png"), f"{rollout_cfg.strategy} on the embedded task"
    )
    log("summary\n" + metrics_lib.summary_table(writer.history))
  return writer.history


def _export_hf(source_policy, model, params, path: str) -> None:
  """The trained policy as a Hugging Face checkpoint; every process calls this (it gathers shards)."""
  from ar3po_jax.models import hf

  hf.save_checkpoint(hf.Policy.create(model.config, params, source_policy.hf_config, source_policy.source), path)


def _refresh_log_probs(batch, reused, params, ref_params, model, rollout_cfg, rl, batch_sharding):
  """pi_old for Option I reused rows (or every row, if configured) and pi_ref when beta > 0.

  The truncated IS correction (rl.tis_cap > 0) weighs pi_old by the trainer against the sampler's
  numbers, so it re-scores every row as verl does."""
  prompt_slots = batch["tokens_BxT"].shape[1] - batch["old_logp_BxTr"].shape[1]
  every_row = rl.recompute_old_logprobs or rl.get("tis_cap", 0.0) > 0
  recompute = np.ones_like(reused) if every_row else reused & batch["train_row_B"]
  if not recompute.any() and ref_params is None:
    return batch
  tokens, mask = distributed.put((batch["tokens_BxT"], batch["mask_BxT"]), batch_sharding)

  def logprobs(weights):
    return distributed.to_host(
        score(weights, tokens, mask, model=model, prompt_slots=prompt_slots, temperature=rollout_cfg.temperature, batch_sharding=batch_sharding)
    )

  if recompute.any():
    batch["old_logp_BxTr"] = np.where(recompute[:, None], logprobs(params), batch["old_logp_BxTr"])
  if ref_params is not None:
    batch["ref_logp_BxTr"] = logprobs(ref_params)
  return batch
