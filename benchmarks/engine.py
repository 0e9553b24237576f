r"""The static sampling kernel against the continuous-batching engine, on unequal response lengths.

  nice -n 10 .venv/bin/python -m benchmarks.engine --requests=128 --max_new_tokens=128 --mean_len=32 \
      --prompt_len=16 --prefill_chunk=16 --num_buckets=4 --out=benchmarks/results/engine_spread.json

(the run BENCHMARKS.md reports; the defaults, 256 requests of up to 256 tokens, did not finish within
30 minutes on the loaded 2-core machine).

One process, one model (the sampler benchmark's 21M Qwen2-style model, random weights), the same
`--requests` prompts (random tokens, `--prompt_len` each) sampled at temperature 1 with one stop
token and at most `--max_new_tokens` new tokens:
  static  `sampling.sample` on consecutive launches of `--batch` rows (as `PolicySampler` runs a
          stage): each launch decodes until its longest row ends, over all Tp + Tr cache slots;
  engine  `engine.Engine` with `--batch` slots: rows that end are refilled from the queue between
          calls of `--steps_per_call` decode steps, attention reads the live width bucket only;
  tunix   (in .venv-bench, benchmarks/setup_venv.sh) Tunix's `Sampler` on the same weights, saved as a
          Qwen2 safetensors checkpoint and loaded by Tunix's own loader, on consecutive batches of
          `--batch` prompts at temperature 1 with the same stop token as its eos: each batch decodes
          until every row has stopped or the limit (Tunix's own loop); Tunix returns the tokens before
          each row's first stop token, and the stop token is added to the count.

Unequal lengths from an untrained model: its next-token distribution is nearly uniform, so one stop
token of 8192 would almost never be drawn. The benchmark gives every token's embedding a constant
feature (column 0 set to `_FEATURE`) and the stop token's row a weight on it alone, chosen so that
the stop token's MEDIAN first-step probability over the prompts is 1 / `--mean_len` (the mean is
dominated by a few contexts with a high stop probability: calibrated on it, 76% of rows ran to the
limit). The stop probability still varies from row to row, so lengths are spread widely (many rows
short, a tail cut at the limit), like real response lengths, and the same rule ends rows in both
systems. The measured length statistics are reported; they, not the target, describe the run.

Per system: one untimed pass (compiles every shape the timed pass uses), then one timed pass.
  tokens/s          response tokens (stop tokens included) / wall seconds of the timed pass,
                    prefill and host work included;
  slot utilization  live row-steps / all row-steps (static: rows still decoding over batch x steps
                    of each launch);
  compile_s         first pass minus timed pass.
Ratios are from one run on one machine; the machine's load average is recorded with them.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ar3po_jax.engine import Engine, EngineConfig, Request
from ar3po_jax.models.transformer import Transformer, init_params
from ar3po_jax.sampling import SamplingParams, sample
from benchmarks import machine
from benchmarks.models import MODEL_20M, MODEL_TINY

_REQUESTS = flags.DEFINE_integer("requests", 256, "Responses to generate (e.g. 64 prompts x 4).")
_BATCH = flags.DEFINE_integer("batch", 64, "Static launch rows, and engine slots.")
_PROMPT_LEN = flags.DEFINE_integer("prompt_len", 32, "Prompt tokens per request.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 256, "Response length limit.")
_MEAN_LEN = flags.DEFINE_float("mean_len", 64.0, "Target mean response length (stop probability 1/mean_len).")
_STEPS = flags.DEFINE_integer("steps_per_call", 16, "Engine decode steps per device call.")
_BUCKETS = flags.DEFINE_integer("num_buckets", 8, "Engine attention width buckets (1: always the whole cache).")
_CHUNK = flags.DEFINE_integer("prefill_chunk", 32, "Engine prefill chunk.")
_SIZE = flags.DEFINE_enum("size", "20m", ["20m", "tiny"], "20m: the benchmark model; tiny: a smoke test.")
_SYSTEMS = flags.DEFINE_list("systems", ["static", "engine"], "static, engine, tunix (tunix: in .venv-bench).")
_OUT = flags.DEFINE_string("out", "", "Write the results as JSON here.")

_STOP = 1
_FLAG_NAMES = ("requests", "batch", "prompt_len", "max_new_tokens", "mean_len", "steps_per_call", "num_buckets",
               "prefill_chunk", "size", "systems")
_FEATURE = 0.05  # column 0 of every embedding row but the stop token's


def with_stop_rate(params: dict, prompts: np.ndarray, model: Transformer, mean_len: float) -> tuple[dict, float]:
  """Weights whose stop-token probability at the first response step has median 1/mean_len over the
  prompts (bisection on the stop row's weight), and that median."""
  embed = jnp.asarray(params["embed"]["embedding"]).at[:, 0].set(_FEATURE)
  positions = jnp.broadcast_to(jnp.arange(prompts.shape[1]), prompts.shape)

  def weights(beta):
    return {**params, "embed": {"embedding": embed.at[_STOP].set(0.0).at[_STOP, 0].set(beta)}}

  @jax.jit
  def stop_prob(beta):
    mask = jnp.ones(prompts.shape, bool)
    logits, _ = model.apply({"params": weights(beta)}, prompts, positions, mask, last_only=True)
    return jnp.median(jax.nn.softmax(logits[:, -1], -1)[:, _STOP])

  lo, hi = 0.0, 1000.0
  for _ in range(24):
    mid = (lo + hi) / 2
    lo, hi = (mid, hi) if float(stop_prob(mid)) < 1 / mean_len else (lo, mid)
  beta = (lo + hi) / 2
  return weights(beta), float(stop_prob(beta))


def run_static(params, model, prompts, sampling, batch, seed) -> dict:
  lengths, row_steps, live_steps = [], 0, 0
  start = time.perf_counter()
  for i, first in enumerate(range(0, len(prompts), batch)):
    rows = jnp.asarray(prompts[first : first + batch])
    key = jax.random.key(seed * 1000 + i)
    out = sample(params, rows, jnp.ones(rows.shape, bool), key, model=model, params_s=sampling)
    n = np.asarray(out.lengths_B)
    lengths.extend(n.tolist())
    row_steps += len(n) * int(n.max())  # the launch's while loop ran until its longest row ended
    live_steps += int(n.sum())
  seconds = time.perf_counter() - start
  return {"seconds": seconds, "lengths": lengths, "row_steps": row_steps, "live_row_steps": live_steps}


def run_engine(params, model, prompts, sampling, config, seed) -> dict:
  engine = Engine(model, params, config, sampling)
  base = jax.random.key(seed)
  keys = np.asarray(jax.random.key_data(jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(len(prompts)))))
  start = time.perf_counter()
  done = engine.generate([Request(i, prompts[i], keys[i]) for i in range(len(prompts))])
  seconds = time.perf_counter() - start
  m = engine.metrics()
  return {
      "seconds": seconds,
      "lengths": [f.length for f in done],
      "row_steps": m["engine/decode_calls"] * config.slots * config.steps_per_call,
      "live_row_steps": m["engine/tokens"],
      "engine_metrics": m,
  }


def run_tunix(generate, prompts, batch, seed) -> dict:
  lengths, row_steps, live_steps = [], 0, 0
  start = time.perf_counter()
  for i, first in enumerate(range(0, len(prompts), batch)):
    n = generate(prompts[first : first + batch], seed * 1000 + i)
    lengths.extend(n.tolist())
    row_steps += len(n) * int(n.max())
    live_steps += int(n.sum())
  seconds = time.perf_counter() - start
  return {"seconds": seconds, "lengths": lengths, "row_steps": row_steps, "live_row_steps": live_steps}


def tunix_generator(config, params, max_prompt: int, max_new: int, checkpoint: str):
  """(prompts_BxTp, seed) -> response lengths [B] from Tunix's Sampler at temperature 1, stopping at _STOP."""
  from tunix.generate import sampler as tunix_sampler

  from ar3po_jax.models import hf
  from benchmarks import sampler_peers

  hf.save_checkpoint(hf.Policy.create(config, params), checkpoint, copy_tokenizer=False)
  model = sampler_peers._tunix_model(config, checkpoint)
  cache = tunix_sampler.CacheConfig(
      cache_size=max_prompt + max_new, num_layers=config.n_layers, num_kv_heads=config.n_kv_heads,
      head_dim=config.head_dim,
  )
  sampler = tunix_sampler.Sampler(model, sampler_peers._IdTokenizer(_STOP), cache)

  def generate(prompts_BxTp: np.ndarray, seed: int) -> np.ndarray:
    out = sampler(
        [" ".join(map(str, row)) for row in prompts_BxTp],
        max_generation_steps=max_new,
        max_prompt_length=prompts_BxTp.shape[1],
        eos_tokens=[_STOP],
        temperature=1.0,
        seed=seed,
    )
    # Tunix returns each row's tokens BEFORE its first eos: a row shorter than the limit stopped, and its
    # stop token counts (as in the other systems).
    return np.asarray([min(len(t) + 1, max_new) if len(t) < max_new else max_new for t in out.tokens])

  return generate


def summarize(run: dict, compile_s: float) -> dict:
  n = np.asarray(run["lengths"])
  return {
      "seconds": run["seconds"],
      "tokens": int(n.sum()),
      "tokens_per_s": float(n.sum() / run["seconds"]),
      "slot_utilization": run["live_row_steps"] / run["row_steps"],
      "mean_len": float(n.mean()),
      "median_len": float(np.median(n)),
      "max_len": int(n.max()),
      "frac_at_limit": float(np.mean(n >= _MAX_NEW.value)),
      "compile_s": compile_s,
      **({"engine_metrics": run["engine_metrics"]} if "engine_metrics" in run else {}),
  }


def main(_):
  config = MODEL_20M if _SIZE.value == "20m" else MODEL_TINY
  model = Transformer(config)
  info = machine.describe()
  print(f"machine: {info}", flush=True)
  shape = (_REQUESTS.value, _PROMPT_LEN.value)
  prompts = np.random.default_rng(0).integers(2, config.vocab_size, shape, dtype=np.int32)
  params, p_stop = with_stop_rate(init_params(config, jax.random.key(0)), prompts[:64], model, _MEAN_LEN.value)
  print(
      f"stop token {_STOP}: median first-step probability {p_stop:.4f} (target {1 / _MEAN_LEN.value:.4f})", flush=True
  )
  sampling = SamplingParams(max_new_tokens=_MAX_NEW.value, temperature=1.0, stop_ids=(_STOP,), pad_id=0)
  engine_config = EngineConfig(
      slots=_BATCH.value,
      steps_per_call=_STEPS.value,
      max_prompt_len=_PROMPT_LEN.value,
      max_new_tokens=_MAX_NEW.value,
      prefill_chunk=_CHUNK.value,
      num_buckets=_BUCKETS.value,
  )

  results = {}
  runners = {
      "static": lambda seed: run_static(params, model, prompts, sampling, _BATCH.value, seed),
      "engine": lambda seed: run_engine(params, model, prompts, sampling, engine_config, seed),
  }
  if "tunix" in _SYSTEMS.value:
    import tempfile

    generate = tunix_generator(config, params, _PROMPT_LEN.value, _MAX_NEW.value, tempfile.mkdtemp())
    runners["tunix"] = lambda seed: run_tunix(generate, prompts, _BATCH.value, seed)
  for name in _SYSTEMS.value:
    run = runners[name]
    first = run(0)  # compiles every shape the timed pass meets (same seed: the same shapes)
    timed = run(0)
    results[name] = summarize(timed, max(first["seconds"] - timed["seconds"], 0.0))
    r = results[name]
    print(
        f"{name:>7}: {r['tokens_per_s']:8.0f} tok/s  {r['tokens']} tokens in {r['seconds']:.1f} s  utilization"
        f" {r['slot_utilization']:.2f}  lengths mean {r['mean_len']:.0f} median {r['median_len']:.0f}"
        f" max {r['max_len']}"
        f" ({100 * r['frac_at_limit']:.0f}% at the limit)  compile {r['compile_s']:.0f} s",
        flush=True,
    )
  def over(a, b):
    return results[a]["tokens_per_s"] / results[b]["tokens_per_s"] if a in results and b in results else float("nan")

  ratio = over("engine", "static")
  print(f"engine / static tokens/s: {ratio:.2f}x, engine / tunix: {over('engine', 'tunix'):.2f}x "
        f"(load average now {machine.describe()['load_average_1m']:.1f})")
  report = {
      "machine": info,
      "load_average_1m_after": machine.describe()["load_average_1m"],
      "model": {**config.__dict__, "num_params": config.num_params},
      "flags": {f: flags.FLAGS[f].value for f in _FLAG_NAMES},
      "stop_first_step_prob": p_stop,
      "engine_config": {**engine_config.__dict__, "widths": list(engine_config.widths)},
      "results": results,
      "engine_over_static_tokens_per_s": ratio,
      "engine_over_tunix_tokens_per_s": over("engine", "tunix"),
  }
  if _OUT.value:
    machine.write_report(_OUT.value, report)


if __name__ == "__main__":
  app.run(main)
