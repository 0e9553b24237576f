"""Checks a run's config before anything is built or compiled, and names every problem at once.

Unknown keys are refused earlier, by ml_collections itself: configs are locked, so
`--config.rl.lrr=1e-5` fails with the key's name before this module runs.
"""

from __future__ import annotations

import copy

from ar3po_jax import losses
from ar3po_jax.rollout.strategies import REGISTRY as STRATEGIES


class ConfigError(ValueError):
  pass


def _leaves(section, prefix=()):
  for key, value in section.items():
    if hasattr(value, "items"):
      yield from _leaves(value, prefix + (key,))
    else:
      yield prefix + (key,), value


def resolve(config):
  """Fills the fields left None ("the strategy's preset") from `config.presets.<rollout.strategy>`, else
  `config.presets.default` (configs/common.py), after the flags; fields already set are kept. Returns
  the config (changed in place)."""
  presets = config.get("presets")
  if presets is None:
    return config
  strategy = config.rollout.strategy
  chosen = dict(_leaves(presets.get("default", {})))
  if strategy in presets and strategy != "default":
    chosen.update(_leaves(presets[strategy]))
  for path, value in chosen.items():
    node = config
    for key in path[:-1]:
      node = node[key]
    if node[path[-1]] is None:
      node[path[-1]] = value
  return config


def problems(config) -> list[str]:
  """Every impossible value in the config, as one message each."""
  out = []

  def need(ok: bool, message: str):
    if not ok:
      out.append(message)

  if "presets" in config:  # the values the run will use: its strategy's presets filled in
    config = resolve(copy.deepcopy(config))
  r, rl = config.rollout, config.rl
  need(r.strategy in STRATEGIES, f"rollout.strategy must be one of {sorted(STRATEGIES)}, got {r.strategy!r}")
  if r.strategy in STRATEGIES:  # the running strategy checks the fields it reads
    out.extend(STRATEGIES[r.strategy].config_problems(config))
  need(r.batch_prompts >= 1, f"rollout.batch_prompts must be >= 1, got {r.batch_prompts}")
  need(r.group_size >= 1, f"rollout.group_size must be >= 1, got {r.group_size}")
  need(r.max_new_tokens >= 1, f"rollout.max_new_tokens must be >= 1, got {r.max_new_tokens}")
  need(r.temperature >= 0, f"rollout.temperature must be >= 0 (0 is greedy), got {r.temperature}")
  need(0 < r.top_p <= 1, f"rollout.top_p must be in (0, 1], got {r.top_p}")
  need(r.top_k >= 0, f"rollout.top_k must be >= 0 (0 is off), got {r.top_k}")
  need(r.buffer.per_prompt >= 1 and r.buffer.total >= 1, f"rollout.buffer.per_prompt and total must be >= 1, got {r.buffer.per_prompt}, {r.buffer.total}")
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
  from ar3po_jax import tasks  # the task checks its own section (and its files)

  out.extend(tasks.config_problems(config))
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
