"""Checks a run's config before anything is built or compiled, and names every problem at once.

Unknown keys are refused earlier, by ml_collections itself: configs are locked, so
`--config.rl.lrr=1e-5` fails with the key's name before this module runs.
"""

from __future__ import annotations

import os

from ar3po_jax import losses

STRATEGIES = ("grpo", "dapo", "ar3po", "aero")


class ConfigError(ValueError):
  pass


def problems(config) -> list[str]:
  """Every impossible value in the config, as one message each."""
  out = []

  def need(ok: bool, message: str):
    if not ok:
      out.append(message)

  r, rl = config.rollout, config.rl
  need(r.strategy in STRATEGIES, f"rollout.strategy must be one of {STRATEGIES}, got {r.strategy!r}")
  need(r.batch_prompts >= 1, f"rollout.batch_prompts must be >= 1, got {r.batch_prompts}")
  need(r.group_size >= 1, f"rollout.group_size must be >= 1, got {r.group_size}")
  need(r.max_new_tokens >= 1, f"rollout.max_new_tokens must be >= 1, got {r.max_new_tokens}")
  need(r.temperature >= 0, f"rollout.temperature must be >= 0 (0 is greedy), got {r.temperature}")
  need(0 < r.top_p <= 1, f"rollout.top_p must be in (0, 1], got {r.top_p}")
  need(r.top_k >= 0, f"rollout.top_k must be >= 0 (0 is off), got {r.top_k}")
  need(r.ar3po.stages >= 1 and r.ar3po.k >= 1, f"rollout.ar3po needs stages >= 1 and k >= 1 (k*S >= 1), got stages={r.ar3po.stages} k={r.ar3po.k}")
  need(r.ar3po.reuse_mode in ("recompute", "stop_gradient"), f"rollout.ar3po.reuse_mode must be 'recompute' or 'stop_gradient', got {r.ar3po.reuse_mode!r}")
  need(r.ar3po.reuse_pick in ("newest", "random"), f"rollout.ar3po.reuse_pick must be 'newest' or 'random', got {r.ar3po.reuse_pick!r}")
  need(r.buffer.per_prompt >= 1 and r.buffer.total >= 1, f"rollout.buffer.per_prompt and total must be >= 1, got {r.buffer.per_prompt}, {r.buffer.total}")
  need(r.dapo.gen_batch_prompts >= 1, f"rollout.dapo.gen_batch_prompts must be >= 1, got {r.dapo.gen_batch_prompts}")
  need(r.dapo.max_gen_batches >= 1, f"rollout.dapo.max_gen_batches must be >= 1, got {r.dapo.max_gen_batches}")
  need(0 <= r.dapo.overlong_buffer < r.max_new_tokens, f"rollout.dapo.overlong_buffer must be in [0, max_new_tokens={r.max_new_tokens}), got {r.dapo.overlong_buffer}")
  need(r.aero.n_explore >= 1 and r.aero.budget >= r.aero.n_explore, f"rollout.aero needs 1 <= n_explore <= budget, got n_explore={r.aero.n_explore} budget={r.aero.budget}")
  need(r.aero.n_extra >= 1, f"rollout.aero.n_extra must be >= 1, got {r.aero.n_extra}")
  need(r.aero.alpha0 > 0 and r.aero.beta0 > 0, f"rollout.aero.alpha0 and beta0 must be > 0, got {r.aero.alpha0}, {r.aero.beta0}")
  need(rl.steps >= 0, f"rl.steps must be >= 0, got {rl.steps}")
  need(rl.lr > 0, f"rl.lr must be > 0, got {rl.lr}")
  need(rl.eps_low >= 0 and rl.eps_high >= 0, f"rl.eps_low and rl.eps_high must be >= 0, got {rl.eps_low}, {rl.eps_high}")
  need(rl.eps_low < 1, f"rl.eps_low must be < 1 (the ratio's lower clip is 1 - eps_low), got {rl.eps_low}")
  need(rl.beta >= 0, f"rl.beta must be >= 0, got {rl.beta}")
  need(rl.loss_agg in losses.AGGREGATIONS, f"rl.loss_agg must be one of {losses.AGGREGATIONS}, got {rl.loss_agg!r}")
  need(rl.micro_batch_rows >= 0, f"rl.micro_batch_rows must be >= 0, got {rl.micro_batch_rows}")
  need(rl.row_buckets >= 1, f"rl.row_buckets must be >= 1, got {rl.row_buckets}")
  need(rl.get("response_buckets", 1) >= 1, f"rl.response_buckets must be >= 1, got {rl.get('response_buckets', 1)}")
  need(config.mesh.data == -1 or config.mesh.data >= 1, f"mesh.data must be >= 1 or -1 (every device left), got {config.mesh.data}")
  need(config.mesh.fsdp >= 1 and config.mesh.tensor >= 1, f"mesh.fsdp and mesh.tensor must be >= 1, got {config.mesh.fsdp}, {config.mesh.tensor}")
  if "checkpoint" in config:
    need(config.checkpoint.every >= 1 and config.checkpoint.keep >= 1,
         f"checkpoint.every and checkpoint.keep must be >= 1, got {config.checkpoint.every}, {config.checkpoint.keep}")
  need(config.eval.every >= 0 and config.eval.num_prompts >= 1 and config.eval.batch_size >= 1,
       f"eval.every >= 0, eval.num_prompts >= 1 and eval.batch_size >= 1 required, got {config.eval.every}, {config.eval.num_prompts}, {config.eval.batch_size}")
  if config.task.name == "arithmetic":
    need(config.warmstart.steps >= 0 and config.warmstart.batch_size >= 1, "warmstart.steps >= 0 and warmstart.batch_size >= 1 required")
    need(config.task.num_eval >= config.eval.num_prompts, f"task.num_eval ({config.task.num_eval}) must be >= eval.num_prompts ({config.eval.num_prompts})")
    need(config.task.num_train >= 1, f"task.num_train must be >= 1, got {config.task.num_train}")
    need(config.task.rl_prompts >= 0, f"task.rl_prompts must be >= 0 (0: every training problem), got {config.task.rl_prompts}")
    need(len(tuple(config.task.level_weights)) == 5, f"task.level_weights must have 5 entries, got {tuple(config.task.level_weights)}")
    slip = config.task.get("teacher_slip", 0.0)
    need(0.0 <= slip <= 1.0, f"task.teacher_slip must lie in [0, 1], got {slip}")
  elif config.task.name == "arithmetic_chat":
    from ar3po_jax.tasks import arithmetic_chat

    out.extend(arithmetic_chat.problems(config))
  else:
    from ar3po_jax import real

    out.extend(real.problems(config))
    # The embedded run trains its tokenizer at tokenizer.path when the file is absent; here it must exist.
    if config.tokenizer.get("path") and not os.path.exists(config.tokenizer.path):
      out.append(f"tokenizer.path {config.tokenizer.path!r} does not exist")
  return out


def mesh_problems(mesh_config, num_devices: int) -> list[str]:
  """What keeps the mesh from fitting the devices; checked once JAX is up, before anything compiles.
  (Batch rows need no divisibility: every launch pads its rows to a multiple of the data-parallel size.)"""
  d, f, t = mesh_config.data, mesh_config.fsdp, mesh_config.tensor
  if f < 1 or t < 1:
    return []  # reported by `problems`
  if d == -1:
    return [] if num_devices % (f * t) == 0 else [f"mesh.fsdp={f} x mesh.tensor={t} does not divide the {num_devices} devices"]
  if d * f * t != num_devices:
    return [f"mesh data={d} x fsdp={f} x tensor={t} needs {d * f * t} devices, but {num_devices} are available"]
  return []


def validate(config) -> None:
  found = problems(config)
  if found:
    raise ConfigError("invalid config:\n  - " + "\n  - ".join(found))
