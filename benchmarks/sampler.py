r"""Sampler throughput against peers: our kernel, Tunix's vanilla Sampler, transformers' generate.

  .venv-bench/bin/python -m benchmarks.sampler --out=benchmarks/results/sampler.json

One run, one process: the three generators get the same Qwen2-style model (identical random
weights: ours initialises them, `hf.save_checkpoint` writes them, each peer loads that checkpoint
through its own loader), the same random prompts and the same number of greedy new tokens, with no
end-of-sequence stop. Before any timing, first-step logits and greedy tokens are compared, so the
three are known to compute the same function.

Per system and batch size: the median wall time of `--repeats` calls generating N tokens and of
calls generating 1 token (prefill plus one step). Reported:
  tokens/s         B * N / t(N): what a user waits for, prefill included;
  decode tokens/s  B * (N - 1) / (t(N) - t(1)): the decode loop alone;
  compile_s        the first call's time beyond a warm one (excluded from the rates).
The machine's float32 matrix-multiply peak is measured in the same run (before and after the
sampler timings, the larger kept), and our decode rate is put against it counting 2 x parameters
FLOPs per new token.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ar3po_jax.models import hf
from ar3po_jax.models.transformer import ModelConfig, init_params
from benchmarks import machine, sampler_peers
from benchmarks.models import MODEL_20M, MODEL_TINY

_BATCHES = flags.DEFINE_list("batches", ["8", "64", "256"], "Batch sizes.")
_NEW_TOKENS = flags.DEFINE_integer("new_tokens", 64, "Greedy new tokens per row.")
_PROMPT_LEN = flags.DEFINE_integer("prompt_len", 32, "Prompt tokens per row (all rows equal).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per measurement; the median is kept.")
_SYSTEMS = flags.DEFINE_list("systems", ["ours", "tunix", "transformers"], "Which generators to time.")
_THREADS = flags.DEFINE_integer("torch_threads", 2, "torch.set_num_threads for transformers.")
_SIZE = flags.DEFINE_enum("size", "20m", ["20m", "tiny"], "20m: the benchmark model; tiny: a smoke test.")
_OUT = flags.DEFINE_string("out", "", "Write the results as JSON here.")



def _timed(fn, *args) -> tuple[float, object]:
  start = time.perf_counter()
  out = fn(*args)
  return time.perf_counter() - start, out


def parity(
    config: ModelConfig, params: dict, checkpoint: str, prompts: np.ndarray, gens: dict, threads: int, steps: int
) -> dict:
  """Max |logit difference| of the first new token against ours, and the fraction of greedy
  tokens that match ours over `steps` steps (tokens after a first disagreement still count)."""
  reference = sampler_peers.first_logits_ours(config, params, prompts)
  logits = {}
  if "tunix" in gens:
    logits["tunix"] = sampler_peers.first_logits_tunix(config, checkpoint, prompts)
  if "transformers" in gens:
    logits["transformers"] = sampler_peers.first_logits_transformers(checkpoint, threads, prompts)
  ours_tokens = gens["ours"](prompts, steps)
  out = {"logit_scale": float(np.abs(reference).max())}
  for name, peer_logits in logits.items():
    tokens = gens[name](prompts, steps)
    out[name] = {
        "max_abs_logit_diff": float(np.abs(peer_logits - reference).max()),
        "greedy_token_agreement": float(np.mean(tokens == ours_tokens)),
    }
  return out


def weight_matmul_step_ms(config: ModelConfig, batch: int, steps: int = 64) -> float:
  """Time per step of a loop doing only one decode step's weight matmuls at `batch` rows (the
  projections, the MLP and the output head, shaped as in the model): what a decode step would cost
  if nothing but its matmuls ran, at the efficiency this machine gets for those shapes. Our decode
  step time over this one is the profile's first number: the share spent outside the matmuls."""
  c = config
  keys = iter(jax.random.split(jax.random.key(1), 8 * c.n_layers + 1))
  def w(m, n):
    return jax.random.normal(next(keys), (m, n), jnp.float32) * 0.02

  q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
  layers = [
      (
          w(c.d_model, q), w(c.d_model, kv), w(c.d_model, kv), w(q, c.d_model),
          w(c.d_model, c.d_ff), w(c.d_model, c.d_ff), w(c.d_ff, c.d_model),
      )
      for _ in range(c.n_layers)
  ]
  head = w(c.d_model, c.vocab_size)

  @jax.jit
  def loop(x_BxD):
    def step(_, x):
      for wq, wk, wv, wo, wg, wu, wd in layers:
        side = jnp.sum(x @ wk, -1, keepdims=True) + jnp.sum(x @ wv, -1, keepdims=True)
        x = x + (x @ wq) @ wo
        x = x + ((x @ wg) * (x @ wu)) @ wd + 1e-6 * side
      return x + 1e-6 * jnp.max(x @ head, -1, keepdims=True)

    return jax.lax.fori_loop(0, steps, step, x_BxD)

  x = jax.random.normal(jax.random.key(2), (batch, c.d_model), jnp.float32)
  loop(x).block_until_ready()
  best = min(_timed(lambda: loop(x).block_until_ready())[0] for _ in range(3))
  return 1e3 * best / steps


def time_system(generate, prompts: np.ndarray, new_tokens: int, repeats: int) -> dict:
  B = prompts.shape[0]
  first_n, tokens = _timed(generate, prompts, new_tokens)
  if tokens.shape != (B, new_tokens):
    raise RuntimeError(f"expected {B} x {new_tokens} new tokens, got {tokens.shape}")
  first_1, _ = _timed(generate, prompts, 1)
  t_n = statistics.median(_timed(generate, prompts, new_tokens)[0] for _ in range(repeats))
  t_1 = statistics.median(_timed(generate, prompts, 1)[0] for _ in range(repeats))
  decode_s = max(t_n - t_1, 1e-9)
  return {
      "batch": B,
      "seconds": t_n,
      "prefill_and_first_token_s": t_1,
      "tokens_per_s": B * new_tokens / t_n,
      "decode_tokens_per_s": B * (new_tokens - 1) / decode_s,
      "decode_step_ms": 1e3 * decode_s / (new_tokens - 1),
      "compile_s": max(first_n - t_n, 0.0) + max(first_1 - t_1, 0.0),
  }


def main(_):
  config = MODEL_20M if _SIZE.value == "20m" else MODEL_TINY
  batches = [int(b) for b in _BATCHES.value]
  N, Tp = _NEW_TOKENS.value, _PROMPT_LEN.value
  info = machine.describe()
  info["torch_threads"] = _THREADS.value
  print(f"machine: {info}")
  peak_before = machine.matmul_peak_flops()
  print(f"float32 matmul peak (2048^3): {peak_before / 1e9:.1f} GFLOP/s")

  params = init_params(config, jax.random.key(0))
  checkpoint = tempfile.mkdtemp(prefix="sampler_bench_")
  hf.save_checkpoint(hf.Policy.create(config, params), checkpoint)
  prompts = np.random.default_rng(0).integers(1, config.vocab_size, (max(batches), Tp), dtype=np.int32)

  builders = {
      "ours": lambda: sampler_peers.ours(config, params),
      "tunix": lambda: sampler_peers.tunix(config, checkpoint, Tp, N),
      "transformers": lambda: sampler_peers.transformers(checkpoint, _THREADS.value),
  }
  gens = {name: builders[name]() for name in _SYSTEMS.value}
  check = parity(config, params, checkpoint, prompts[:4], gens, _THREADS.value, min(16, N))
  print(f"parity against ours: {check}")

  results: dict[str, list[dict]] = {name: [] for name in gens}
  for B in batches:
    for name, generate in gens.items():
      row = time_system(generate, prompts[:B], N, _REPEATS.value)
      results[name].append(row)
      print(
          f"{name:>12} B={B:<4} {row['tokens_per_s']:8.0f} tok/s  decode {row['decode_tokens_per_s']:8.0f} tok/s"
          f"  step {row['decode_step_ms']:6.1f} ms  prefill+1 {row['prefill_and_first_token_s']:.3f} s"
          f"  compile {row['compile_s']:.1f} s",
          flush=True,
      )
  peak = max(peak_before, machine.matmul_peak_flops())
  flops_per_token = 2 * config.num_params
  for row in results.get("ours", []):
    row["decode_fraction_of_peak"] = row["decode_tokens_per_s"] * flops_per_token / peak
    row["fraction_of_peak"] = row["tokens_per_s"] * flops_per_token / peak
    row["matmul_only_step_ms"] = weight_matmul_step_ms(config, row["batch"])
    row["step_over_matmul_only"] = row["decode_step_ms"] / row["matmul_only_step_ms"]
    print(
        f"ours B={row['batch']}: decode {100 * row['decode_fraction_of_peak']:.0f}% of peak;"
        f" step {row['decode_step_ms']:.1f} ms"
        f" against {row['matmul_only_step_ms']:.1f} ms for its weight matmuls alone"
    )
  ratios = {
      peer: [ours["tokens_per_s"] / theirs["tokens_per_s"] for ours, theirs in zip(results["ours"], results[peer])]
      for peer in results
      if peer != "ours" and "ours" in results
  }
  report = {
      "machine": info,
      "model": {**config.__dict__, "num_params": config.num_params},
      "prompt_len": Tp,
      "new_tokens": N,
      "repeats": _REPEATS.value,
      "matmul_peak_flops": peak,
      "matmul_peak_flops_before": peak_before,
      "flops_per_new_token": flops_per_token,
      "parity": check,
      "results": results,
      "ours_speedup": ratios,
  }
  print(table(report))
  if _OUT.value:
    machine.write_report(_OUT.value, report)


def table(report: dict) -> str:
  """The Markdown table BENCHMARKS.md shows."""
  lines = [
      "| system | batch | tokens/s | decode tokens/s | decode step (ms) | prefill + 1 token (s) | ours / system |",
      "|---|---|---|---|---|---|---|",
  ]
  ours = {r["batch"]: r for r in report["results"].get("ours", [])}
  for name, rows in report["results"].items():
    for r in rows:
      ratio = ours[r["batch"]]["tokens_per_s"] / r["tokens_per_s"] if r["batch"] in ours else float("nan")
      lines.append(
          f"| {name} | {r['batch']} | {r['tokens_per_s']:,.0f} | {r['decode_tokens_per_s']:,.0f} |"
          f" {r['decode_step_ms']:.1f} |"
          f" {r['prefill_and_first_token_s']:.3f} | {ratio:.2f}x |"
      )
  return "\n".join(lines)


if __name__ == "__main__":
  app.run(main)
