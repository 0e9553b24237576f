r"""Evaluates a Hugging Face checkpoint on math benchmarks: k samples per problem, verified, reported
as avg@k and pass@k in a JSON report and a printed table (`python -m ar3po_jax.eval`, configs/eval.py).

The report holds, per benchmark, the metrics, the load statistics (rows skipped by reason) and every
problem's per-sample rewards and response lengths, so any metric can be recomputed from it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

from ar3po_jax.evaluation import progress
from ar3po_jax.evaluation.loop import sample_and_verify
from ar3po_jax.evaluation.metrics import format_table, summarize


def run(config, checkpoint: str | None = None, output: str | None = None, log: Callable[[str], None] = print) -> dict:
  """Evaluates and writes the report; returns it."""
  import jax

  from ar3po_jax import datasets, sharding
  from ar3po_jax.datasets.prompts import Template, field_overrides
  from ar3po_jax.models import hf
  from ar3po_jax.policy import PolicySampler
  from ar3po_jax.rewards import MathVerifier
  from ar3po_jax.sampling import SamplingParams
  from ar3po_jax.tokenizers import load_tokenizer

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
  sampling = SamplingParams(
      config.max_new_tokens, config.temperature, config.top_p, config.top_k, tokenizer.stop_ids, tokenizer.pad_id
  )
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
      path = os.path.join(config.get("data_root", "") or "", spec.path)  # relative paths: from data_root
      problems, stats = datasets.load(spec.loader, path, field_overrides(spec), config.on_error, spec.limit)
      prompts = [template.prompt(p.uid, p.question, p.answer, tokenizer) for p in problems]
      # A bar per benchmark (problems done, tokens/s): a real model can sample for many minutes.
      tracked = progress.Tracked(sampler, len(prompts), config.samples, desc=name, disable=jax.process_index() != 0)
      out = sample_and_verify(tracked, prompts, verifier, config.samples, batch_rows, config.save_responses)
      tracked.close()
      per_problem = []
      for i, p in enumerate(problems):
        record = {
            "uid": p.uid, "answer": p.answer, "rewards": out["rewards"][i].tolist(),
            "lengths": out["lengths"][i].tolist(),
        }
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
