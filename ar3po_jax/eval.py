r"""Evaluates a Hugging Face checkpoint on math benchmarks: k samples per problem, verified, reported
as avg@k and pass@k in a JSON report and a printed table.

  python -m ar3po_jax.eval --config=configs/eval.py:math500,aime24,amc23 --checkpoint=/ckpt/Qwen2.5-7B

See configs/eval.py for every field. The report holds, per benchmark, the metrics, the load
statistics (rows skipped by reason) and every problem's per-sample rewards and response lengths, so
any metric can be recomputed from it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import numpy as np
from absl import app, flags
from ml_collections import config_flags

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "eval.py")


def sample_and_verify(sampler, prompts: Sequence, verifier, samples: int, batch_rows: int, keep_texts: bool = False) -> dict:
  """rewards [P, k] float32, lengths [P, k] int32, truncated [P, k] bool, and texts when kept."""
  rows = [p for p in prompts for _ in range(samples)]
  rewards, lengths, truncated, texts = [], [], [], []
  for start in range(0, len(rows), batch_rows):
    chunk = rows[start : start + batch_rows]
    tokens, _, n_tokens, cut = sampler.generate([p.token_ids for p in chunk])
    chunk_texts = [sampler.tokenizer.decode(t[:n]) for t, n in zip(tokens, n_tokens)]
    rewards.append(verifier(chunk_texts, [p.answer for p in chunk]))
    lengths.append(n_tokens)
    truncated.append(cut)
    if keep_texts:
      texts += chunk_texts
  shape = (len(prompts), samples)
  out = {
      "rewards": np.concatenate(rewards).astype(np.float32).reshape(shape),
      "lengths": np.concatenate(lengths).astype(np.int32).reshape(shape),
      "truncated": np.concatenate(truncated).astype(bool).reshape(shape),
  }
  if keep_texts:
    out["texts"] = [texts[i * samples : (i + 1) * samples] for i in range(len(prompts))]
  return out


def _fields(spec) -> dict | None:
  fields = {k: v for k, v in spec.fields.items() if v and not (k == "answer_format" and v == "raw")}
  return fields or None


def run(config, checkpoint: str | None = None, output: str | None = None, log: Callable[[str], None] = print) -> dict:
  """Evaluates and writes the report; returns it."""
  import jax

  from ar3po_jax import datasets, progress, sharding
  from ar3po_jax.eval_metrics import format_table, summarize
  from ar3po_jax.hf_tokenizer import load_tokenizer
  from ar3po_jax.models import hf
  from ar3po_jax.policy import PolicySampler
  from ar3po_jax.prompts import Template
  from ar3po_jax.rewards import MathVerifier
  from ar3po_jax.sampling import SamplingParams

  checkpoint = checkpoint or config.checkpoint
  if not checkpoint:
    raise ValueError("no checkpoint: pass --checkpoint or set config.checkpoint")
  output = output or config.output or os.path.join(checkpoint, "eval_report.json")
  start = time.time()
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  policy = hf.load_checkpoint(checkpoint, config.dtype, config.activation_dtype or None, mesh)
  template = Template.from_config(config.tokenizer)
  tokenizer = template.bind(load_tokenizer(config.tokenizer.path or checkpoint))
  if tokenizer.vocab_size > policy.config.vocab_size:
    raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {policy.config.vocab_size}")
  log(f"eval: {checkpoint} ({policy.config.num_params:,} parameters, {config.dtype}) on {jax.device_count()} devices")
  sampling = SamplingParams(config.max_new_tokens, config.temperature, config.top_p, config.top_k, tokenizer.eos_id, tokenizer.pad_id)
  dp = sharding.data_parallel_size(mesh)
  sampler = PolicySampler(
      policy.model, policy.params, tokenizer, sampling, jax.random.key(config.seed), dp, sharding.batch_sharding(mesh),
      sharding.kv_cache_sharding(mesh, policy.config.n_kv_heads),
  )
  batch_rows = max(dp, config.batch_rows - config.batch_rows % dp)
  results = {}
  with MathVerifier(timeout_s=config.verify.timeout_s, fallback=config.verify.fallback or None) as verifier:
    for name, spec in config.benchmarks.items():
      bench_start = time.time()
      problems, stats = datasets.load(spec.loader, spec.path, _fields(spec), config.on_error, spec.limit)
      prompts = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in problems]
      tracked = progress.Tracked(sampler, len(prompts), config.samples, desc=name, disable=jax.process_index() != 0)
      out = sample_and_verify(tracked, prompts, verifier, config.samples, batch_rows, config.save_responses)
      tracked.close()
      per_problem = []
      for i, p in enumerate(problems):
        record = {"uid": p.uid, "answer": p.answer, "rewards": out["rewards"][i].tolist(), "lengths": out["lengths"][i].tolist()}
        if config.save_responses:
          record["responses"] = out["texts"][i]
        per_problem.append(record)
      results[name] = {
          "num_problems": len(problems),
          "samples": config.samples,
          "metrics": summarize(out["rewards"], config.pass_at),
          "mean_response_tokens": float(out["lengths"].mean()),
          "truncated_frac": float(out["truncated"].mean()),
          "load": stats.to_dict(),
          "seconds": time.time() - bench_start,
          "per_problem": per_problem,
      }
      log(f"  {name}: {len(problems)} problems x {config.samples} samples in {results[name]['seconds']:.0f} s")
    verify_metrics = verifier.metrics()
  report = {
      "checkpoint": os.path.abspath(checkpoint),
      "config": json.loads(config.to_json_best_effort()),
      "benchmarks": results,
      "verifier": verify_metrics,
      "seconds": time.time() - start,
  }
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output + ".tmp", "w") as f:
      json.dump(report, f, indent=1)
    os.replace(output + ".tmp", output)
  log(format_table(results))
  log(f"report: {output}")
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  run(FLAGS.config, FLAGS.checkpoint, FLAGS.output, lambda m: print(m, flush=True))


if __name__ == "__main__":
  config_flags.DEFINE_config_file("config", _DEFAULT_CONFIG, "Eval config, optionally with ':benchmark,benchmark'.", lock_config=True)
  flags.DEFINE_string("checkpoint", None, "Hugging Face checkpoint folder (overrides config.checkpoint).")
  flags.DEFINE_string("output", None, "Report path (default: config.output, else <checkpoint>/eval_report.json).")
  FLAGS = flags.FLAGS
  app.run(main)
