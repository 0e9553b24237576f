r"""Where a decode step of our sampler spends its time: a `jax.profiler` trace of one `sample` call,
summed by XLA operation.

  .venv/bin/python -m benchmarks.sampler_profile --batch=64 --out=benchmarks/results/sampler_profile.json

Builds the sampler benchmark's 21M-parameter Qwen2-style model, compiles `sample` for the batch,
then traces one greedy call of `--new_tokens` tokens into a Perfetto trace and sums the duration of
every event by name (XLA CPU emits one event per executed HLO operation). Prints the top operations
with their share of the summed operation time, grouped by what they do: the kind comes from the JAX
call stack XLA records in each compiled instruction's metadata (weight matmuls, output head,
attention, cache writes, sampling, prefill). Writes the whole table as JSON.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ar3po_jax.models.transformer import Transformer, init_params
from ar3po_jax.sampling import SamplingParams, sample
from benchmarks import machine
from benchmarks import sampler as sampler_bench
from benchmarks.models import MODEL_20M, MODEL_TINY

# --new_tokens, --prompt_len, --size and --out are the sampler benchmark's flags, with its defaults.
_NEW_TOKENS, _PROMPT_LEN, _SIZE, _OUT = (
    sampler_bench._NEW_TOKENS, sampler_bench._PROMPT_LEN, sampler_bench._SIZE, sampler_bench._OUT
)
_BATCH = flags.DEFINE_integer("batch", 64, "Rows per call.")
_TOP = flags.DEFINE_integer("top", 25, "Operations to print.")

# What an operation does, from the op_name XLA keeps in each instruction's metadata (the JAX call
# stack that produced it). The first rule that matches decides.
_KINDS = (
    ("prefill", re.compile(r"^(?!.*while/body)")),
    ("output head", re.compile(r"embed\.attend|lm_head")),
    ("weight matmuls", re.compile(r"(q|k|v|o|gate|up|down)_proj/dot_general")),
    ("attention", re.compile(r"attn/.*(bkgts|btkgh|softmax|dot_general|exp|reduce|div|select|where)")),
    ("cache write + relayout", re.compile(r"attn/dynamic_update_slice")),
    ("rope, norms, residual", re.compile(r"attn|mlp|norm|layers_\d+/add|rope", re.I)),
    ("sampling", re.compile(
        r"while/body/(reduce|argmax|jit\(log_softmax\)|jit\(_categorical\)|random|gumbel|take_along_axis|"
        r"select_n|eq|or)"
    )),
)


def op_kinds(hlo_text: str) -> dict[str, str]:
  """{instruction name: kind} for every instruction of the compiled HLO that carries an op_name."""
  kinds = {}
  for match in re.finditer(r'%([\w.-]+) = [^\n]*?metadata=\{op_name="([^"]*)"', hlo_text):
    name, op_name = match.groups()
    kinds[name] = next((k for k, pattern in _KINDS if pattern.search(op_name)), "other")
  return kinds


def _is_operation(name: str) -> bool:
  """XLA operations ('ynn_fusion.3', 'dynamic-update-slice.2'), not Python frames ('$api.py:...'),
  runtime scopes ('ThunkExecutor::Execute', 'PjitFunction(...)') or the while loop that contains
  the step's operations (counting it would count them twice)."""
  return not (name.startswith("$") or "::" in name or "(" in name or name.startswith("while"))


def _span_us(events: list[dict]) -> float:
  """Wall time from the first operation's start to the last one's end: the traced call without
  the profiler's own start and stop."""
  ops = [e for e in events if _is_operation(e["name"])]
  return max(e["ts"] + e["dur"] for e in ops) - min(e["ts"] for e in ops)


def _events(trace_dir: str) -> list[dict]:
  files = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
  if not files:
    raise RuntimeError(f"no Perfetto trace under {trace_dir}")
  with gzip.open(max(files, key=os.path.getmtime), "rt") as f:
    trace = json.load(f)
  return [e for e in trace.get("traceEvents", trace) if isinstance(e, dict) and e.get("ph") == "X" and "dur" in e]


def summarize(events: list[dict], wall_us: float, kinds_by_name: dict[str, str]) -> dict:
  """Sum of durations by operation name, the kinds they group into, and each's share of the wall
  time of the traced call."""
  by_name = collections.Counter()
  calls = collections.Counter()
  for e in events:
    if not _is_operation(e["name"]):
      continue
    by_name[e["name"]] += e["dur"]
    calls[e["name"]] += 1
  kinds = collections.Counter()
  for name, dur in by_name.items():
    kinds[kinds_by_name.get(name, "other")] += dur
  # XLA CPU runs independent operations concurrently, so their durations can add up to more than
  # the wall time: shares are of the summed operation time.
  total = sum(by_name.values())
  return {
      "wall_us": wall_us,
      "op_us": total,
      "ops": [
          {"name": n, "kind": kinds_by_name.get(n, "other"), "us": d, "calls": calls[n], "share": d / total}
          for n, d in by_name.most_common()
      ],
      "kinds": {k: {"us": d, "share": d / total} for k, d in kinds.most_common()},
  }


def main(_):
  config = MODEL_20M if _SIZE.value == "20m" else MODEL_TINY
  model = Transformer(config)
  params = init_params(config, jax.random.key(0))
  B, Tp, N = _BATCH.value, _PROMPT_LEN.value, _NEW_TOKENS.value
  prompts = jnp.asarray(np.random.default_rng(0).integers(1, config.vocab_size, (B, Tp)), jnp.int32)
  mask = jnp.ones((B, Tp), bool)
  # stop id -1: no row ever stops, so every call decodes exactly N tokens.
  sampling = SamplingParams(N, 0.0, stop_ids=-1, pad_id=0)
  run = jax.jit(lambda w, p, m, r: sample(w, p, m, r, model=model, params_s=sampling))
  kinds_by_name = op_kinds(run.lower(params, prompts, mask, jax.random.key(1)).compile().as_text())
  jax.block_until_ready(run(params, prompts, mask, jax.random.key(1)))  # compile
  start = time.perf_counter()
  jax.block_until_ready(run(params, prompts, mask, jax.random.key(1)))
  untraced_s = time.perf_counter() - start

  with tempfile.TemporaryDirectory() as trace_dir:
    start = time.perf_counter()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      jax.block_until_ready(run(params, prompts, mask, jax.random.key(1)))
    traced_s = time.perf_counter() - start
    events = _events(trace_dir)
    report = summarize(events, _span_us(events), kinds_by_name)
  report.update(
      batch=B, new_tokens=N, prompt_len=Tp, params=config.num_params, untraced_s=untraced_s, traced_s=traced_s
  )

  print(f"sample(): batch {B}, {N} new tokens, {config.num_params / 1e6:.1f}M parameters;"
        f" {untraced_s:.2f} s untraced, {report['wall_us'] / 1e6:.2f} s traced")
  print(f"{'kind':<24} {'ms':>9} {'share':>7}")
  for kind, row in report["kinds"].items():
    print(f"{kind:<24} {row['us'] / 1e3:9.1f} {row['share']:7.1%}")
  print(f"operations {report['op_us'] / 1e3:.0f} ms in {report['wall_us'] / 1e3:.0f} ms of wall time"
        " (they overlap on the cores)")
  print(f"\n{'operation':<36} {'kind':<24} {'calls':>6} {'ms':>9} {'share':>7}")
  for row in report["ops"][: _TOP.value]:
    print(f"{row['name'][:36]:<36} {row['kind']:<24} {row['calls']:6d} {row['us'] / 1e3:9.1f} {row['share']:7.1%}")
  if _OUT.value:
    machine.write_report(_OUT.value, report)


if __name__ == "__main__":
  app.run(main)
