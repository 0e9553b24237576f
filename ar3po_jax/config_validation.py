"""Checks a run's config before anything is built or compiled, and names every problem at once.

Unknown keys are refused earlier, by ml_collections itself: configs are locked, so
`--config.rl.lrr=1e-5` fails with the key's name before this module runs.
"""

from __future__ import annotations

import copy
import json
import math
import os

from ar3po_jax import losses
from ar3po_jax.rollout.strategies import REGISTRY as STRATEGIES

DTYPES = ("float32", "bfloat16", "float16")
# Updates skipped in a row (non-finite loss, gradient or new parameters) that stop the run.
DEFAULT_MAX_SKIPPED_STEPS = 3


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
  need(r.buffer.per_prompt >= 1 and r.buffer.total >= 1,
       f"rollout.buffer.per_prompt and total must be >= 1, got {r.buffer.per_prompt}, {r.buffer.total}")
  need(rl.steps >= 0, f"rl.steps must be >= 0, got {rl.steps}")
  need(_finite(rl.lr) and rl.lr > 0, f"rl.lr must be finite and > 0, got {rl.lr}")
  # NaN fails every comparison, so `grad_clip > 0` read NaN as "no clipping"; inf clips nothing either.
  need(_finite(rl.grad_clip) and rl.grad_clip >= 0,
       f"rl.grad_clip must be finite and >= 0 (0 is off), got {rl.grad_clip}")
  need(_finite(rl.weight_decay) and rl.weight_decay >= 0,
       f"rl.weight_decay must be finite and >= 0, got {rl.weight_decay}")
  need(rl.get("warmup_steps", 0) >= 0, f"rl.warmup_steps must be >= 0, got {rl.get('warmup_steps', 0)}")
  skips = rl.get("max_skipped_steps", DEFAULT_MAX_SKIPPED_STEPS)
  need(isinstance(skips, int) and skips >= 0, f"rl.max_skipped_steps must be an integer >= 0 (0 is off), got {skips!r}")
  need(rl.eps_low >= 0 and rl.eps_high >= 0,
       f"rl.eps_low and rl.eps_high must be >= 0, got {rl.eps_low}, {rl.eps_high}")
  need(rl.eps_low < 1, f"rl.eps_low must be < 1 (the ratio's lower clip is 1 - eps_low), got {rl.eps_low}")
  need(rl.beta >= 0, f"rl.beta must be >= 0, got {rl.beta}")
  need(rl.loss_agg in losses.AGGREGATIONS, f"rl.loss_agg must be one of {losses.AGGREGATIONS}, got {rl.loss_agg!r}")
  need(rl.micro_batch_rows >= 0, f"rl.micro_batch_rows must be >= 0, got {rl.micro_batch_rows}")
  need(rl.row_buckets >= 1, f"rl.row_buckets must be >= 1, got {rl.row_buckets}")
  need(rl.get("response_buckets", 1) >= 1, f"rl.response_buckets must be >= 1, got {rl.get('response_buckets', 1)}")
  need(rl.get("mini_batches", 1) >= 1, f"rl.mini_batches must be >= 1, got {rl.get('mini_batches', 1)}")
  need(rl.get("epochs", 1) >= 1, f"rl.epochs must be >= 1, got {rl.get('epochs', 1)}")
  need(rl.get("tis_cap", 0.0) >= 0, f"rl.tis_cap must be >= 0 (0: off), got {rl.get('tis_cap', 0.0)}")
  need(rl.get("adv_std_ddof", 1) in (0, 1), f"rl.adv_std_ddof must be 0 or 1, got {rl.get('adv_std_ddof', 1)}")
  need(not rl.get("flatten_optimizer", False) or (config.mesh.fsdp == 1 and config.mesh.tensor == 1),
       f"rl.flatten_optimizer ravels every parameter into one vector, which cannot keep the mesh's fsdp "
       f"({config.mesh.fsdp}) / tensor ({config.mesh.tensor}) sharding; set it False with those axes > 1")
  need(config.mesh.data == -1 or config.mesh.data >= 1,
       f"mesh.data must be >= 1 or -1 (every device left), got {config.mesh.data}")
  need(config.mesh.fsdp >= 1 and config.mesh.tensor >= 1,
       f"mesh.fsdp and mesh.tensor must be >= 1, got {config.mesh.fsdp}, {config.mesh.tensor}")
  out.extend(model_problems(config))
  if "checkpoint" in config:
    need(config.checkpoint.every >= 1 and config.checkpoint.keep >= 1,
         f"checkpoint.every and checkpoint.keep must be >= 1, got {config.checkpoint.every}, {config.checkpoint.keep}")
  need(config.eval.every >= 0 and config.eval.num_prompts >= 1 and config.eval.batch_size >= 1,
       f"eval.every >= 0, eval.num_prompts >= 1 and eval.batch_size >= 1 required, "
       f"got {config.eval.every}, {config.eval.num_prompts}, {config.eval.batch_size}")
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
    return [] if num_devices % (f * t) == 0 else [
        f"mesh.fsdp={f} x mesh.tensor={t} does not divide the {num_devices} devices"]
  if d * f * t != num_devices:
    return [f"mesh data={d} x fsdp={f} x tensor={t} needs {d * f * t} devices, but {num_devices} are available"]
  return []


def validate(config) -> None:
  found = problems(config)
  if found:
    raise ConfigError("invalid config:\n  - " + "\n  - ".join(found))


def _finite(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_ARCH_INTS = ("d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "d_ff")


def model_problems(config) -> list[str]:
  """The `model.*` values, checked here rather than as a traceback when the model is built.

  A run that loads a checkpoint (model.checkpoint set) takes any architecture field left at 0 from it,
  so there only the fields given are checked; the embedded run builds its model from these fields, and
  only vocab_size may be 0 (taken from the tokenizer).
  """
  m, out = config.model, []
  from_checkpoint = bool(m.get("checkpoint"))
  values = {name: m.get(name) for name in ("vocab_size", *_ARCH_INTS) if name in m}
  for name, value in values.items():
    if value is None and from_checkpoint:
      continue
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      out.append(f"model.{name} must be an integer >= 1, got {value!r}")
    elif value == 0 and name != "vocab_size" and not from_checkpoint:
      out.append(f"model.{name} must be >= 1, got 0")
  heads, kv = values.get("n_heads"), values.get("n_kv_heads")
  if isinstance(heads, int) and isinstance(kv, int) and heads > 0 and kv > 0 and heads % kv:
    out.append(f"model.n_heads ({heads}) must be a multiple of model.n_kv_heads ({kv})")
  head_dim = values.get("head_dim")
  if isinstance(head_dim, int) and head_dim > 0 and head_dim % 2:
    out.append(f"model.head_dim must be even for rotary embeddings, got {head_dim}")
  for name in ("dtype", "param_dtype"):
    if name in m and m[name] not in DTYPES:
      out.append(f"model.{name} must be one of {DTYPES}, got {m[name]!r}")
  if "rope_theta" in m and m.rope_theta is not None and not (_finite(m.rope_theta) and m.rope_theta > 0):
    out.append(f"model.rope_theta must be finite and > 0, got {m.rope_theta}")
  if "norm_eps" in m and m.norm_eps is not None and not (_finite(m.norm_eps) and m.norm_eps > 0):
    out.append(f"model.norm_eps must be finite and > 0, got {m.norm_eps}")
  return out


# --- An upper bound on batch sizes from memory.


def vocab_size(config) -> int:
  """The vocabulary the run's logits span, as far as the config tells before anything is loaded (0: unknown)."""
  if config.model.get("vocab_size"):
    return int(config.model.vocab_size)
  path = config.model.get("checkpoint")
  if path and os.path.isfile(os.path.join(path, "config.json")):
    try:
      with open(os.path.join(path, "config.json")) as f:
        return int(json.load(f).get("vocab_size") or 0)
    except (OSError, ValueError, TypeError):
      return 0
  return int(config.tokenizer.get("vocab_size") or 0)


def step_bytes(config, max_rows: int, num_devices: int) -> dict[str, int]:
  """A lower bound on the bytes one RL step holds at once, from the config alone.

  update_per_device: the float32 logits of one update pass and their gradient (2 x rows x response
    tokens x vocab x 4 bytes); the rows of a pass are rl.micro_batch_rows per device when set, else
    the step's rows spread over the devices. Prompt tokens, activations and the KV cache come on top.
  host: the step's responses on the host (token ids, log-probs and mask: 9 bytes a token).
  A lower bound, so that refusing on it refuses only what certainly cannot run.
  """
  tokens = int(config.rollout.max_new_tokens)
  micro = int(config.rl.micro_batch_rows or 0)
  rows_per_device = micro if micro else -(-max_rows // max(num_devices, 1))
  return {
      "update_per_device": 2 * rows_per_device * tokens * vocab_size(config) * 4,
      "host": max_rows * tokens * 9,
  }


def memory_problems(config, max_rows: int, num_devices: int, device_bytes: int | None, host_bytes: int) -> list[str]:
  """Batch sizes that cannot fit: device_bytes is one device's memory (None: the devices are the host's
  CPU and share host_bytes)."""
  need_bytes = step_bytes(config, max_rows, num_devices)
  r, out = config.rollout, []
  what = (f"rollout.batch_prompts={r.batch_prompts} ({max_rows:,} responses a step) x "
          f"rollout.max_new_tokens={r.max_new_tokens}")
  per_device = need_bytes["update_per_device"]
  if device_bytes is None:
    total = per_device * num_devices + need_bytes["host"]
    if total > host_bytes:
      out.append(f"{what} needs at least {_gb(total)} for the update's logits and the responses, more than this "
                 f"machine's {_gb(host_bytes)} of memory; lower rollout.batch_prompts or set rl.micro_batch_rows")
    return out
  if per_device > device_bytes:
    out.append(f"{what} needs at least {_gb(per_device)} per device for the update's logits, more than a device's "
               f"{_gb(device_bytes)}; lower rollout.batch_prompts or rl.micro_batch_rows")
  if need_bytes["host"] > host_bytes:
    out.append(f"{what} needs at least {_gb(need_bytes['host'])} of host memory for the responses, more than this "
               f"machine's {_gb(host_bytes)}; lower rollout.batch_prompts")
  return out


def _gb(n: int) -> str:
  return f"{n / 2**30:,.1f} GiB"


def host_memory_bytes() -> int:
  """This machine's physical memory."""
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(config) -> list[str]:
  """`memory_problems` for the devices JAX sees; call once JAX is up, before anything is prepared."""
  import jax

  from ar3po_jax import train

  devices = jax.local_devices()
  stats = devices[0].memory_stats() if devices[0].platform != "cpu" else None
  device_bytes = int(stats["bytes_limit"]) if stats and stats.get("bytes_limit") else None
  max_rows = train.max_rows_per_step(config.rollout)
  return memory_problems(config, max_rows, jax.device_count(), device_bytes, host_memory_bytes())
