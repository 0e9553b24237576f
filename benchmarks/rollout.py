r"""One AR3PO rollout and one GRPO rollout, the static kernel against the engine, in one process.

  # the embedded task (its tokenizer and warm start cached in WORKDIR by a default run)
  nice -n 5 .venv/bin/python -m benchmarks.rollout --config=configs/tiny.py:ar3po --workdir=/tmp/run_engine \
      --out=benchmarks/results/rollout_tiny.json

  # SmolLM2-135M-Instruct on GSM8K prompts (scripts/smollm2_hf.py builds the folder)
  nice -n 5 .venv/bin/python -m benchmarks.rollout --config=configs/hf.py:ar3po,gsm8k \
      --config.model.hf_path=/tmp/smollm2_hf --workdir=/tmp/rollout_smollm2 --prompts=4 --passes=1 \
      --config.rollout.max_new_tokens=256 --config.rollout.engine.slots=32 --out=benchmarks/results/rollout_smollm2.json

For each sampler (`rollout.sampler` static, engine) and each strategy (grpo, ar3po, with the config's
knobs): a fresh scheduler (empty replay buffer) rolls out step 0 on the same `--prompts` prompts of the
training stream (same seed, so both strategies and both samplers see the same problems). With
`--passes=N` (N > 1) the first pass compiles every shape and the other N - 1 are timed (the same prompts
and keys, so the same shapes), the median reported: one ~1 s rollout is at the mercy of a shared
machine's load, the median of five much less; `--passes=1` times the first pass, compiles included
(reported as such).

Reported per (sampler, strategy): wall seconds of the rollout (sampling + verification + bookkeeping),
time/sample_s, responses, response tokens, slot utilization (engine: live row-steps / row-steps of its
decode calls; static: real response tokens / (rows x longest row) summed over its launches, since a
launch decodes until its longest row ends) and the AR3PO / GRPO wall-clock ratio per sampler (issue
13's target: <= 0.6 with the engine).
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from ar3po_jax import config_validation, sharding, tasks, train
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.policy import PolicySampler
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.sampling import SamplingParams
from benchmarks import machine

_CONFIG = config_flags.DEFINE_config_file("config", "configs/tiny.py:ar3po", "Config file.", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the task's caches live (a default run's workdir).")
_PROMPTS = flags.DEFINE_integer("prompts", 32, "Prompts per rollout (rollout.batch_prompts).")
_PASSES = flags.DEFINE_integer(
    "passes", 6, "N > 1: a compile pass then N - 1 timed passes (medians reported); 1: one pass, compiles included.")
_SAMPLERS = flags.DEFINE_list("samplers", ["static", "engine"], "rollout.sampler values to compare.")
_STRATEGIES = flags.DEFINE_list("strategies", ["grpo", "ar3po"], "Strategies to roll out.")
_OUT = flags.DEFINE_string("out", "", "Write the results as JSON here.")


class LaunchRecorder:
  """Wraps a static PolicySampler: records each launch's response lengths for its slot utilization."""

  def __init__(self, sampler: PolicySampler):
    self.sampler, self.launches = sampler, []

  def __call__(self, prompts, counts, step):
    out = self.sampler(prompts, counts, step)
    lengths = [r.num_tokens for batch in out for r in batch]
    if lengths:
      self.launches.append(lengths)
    return out

  def utilization(self) -> float:
    live = sum(sum(n) for n in self.launches)
    rows = sum(len(n) * max(n) for n in self.launches)
    return live / rows if rows else float("nan")


def rollout_once(config, setup, mesh, kind: str, strategy: str) -> dict:
  config = config.copy_and_resolve_references()
  config.rollout.strategy = strategy
  config.rollout.sampler = kind
  config_validation.resolve(config)
  config.rollout.batch_prompts = _PROMPTS.value
  r = config.rollout
  sampling = SamplingParams(r.max_new_tokens, r.temperature, r.top_p, r.top_k, setup.tokenizer.stop_ids,
                            setup.tokenizer.pad_id)
  params = jax.device_put(setup.params)
  sampler = train._make_sampler(config, setup, params, sampling, mesh, print)
  recorder = LaunchRecorder(sampler) if kind == "static" else None
  results = []
  for _ in range(_PASSES.value):
    scheduler = Scheduler(make_strategy(r), recorder or sampler, setup.verifier, ReplayBuffer(),
                          PromptStream(setup.train_prompts, config.seed))
    if recorder:
      recorder.launches = []
    if hasattr(sampler, "take_metrics"):
      sampler.take_metrics()
    sampler.rng = jax.random.key(config.seed + 2)  # the same keys every pass: the same shapes
    start = time.perf_counter()
    result = scheduler.rollout(0, np.random.default_rng([config.seed, 3]))
    seconds = time.perf_counter() - start
    m = result.metrics
    engine = sampler.take_metrics() if hasattr(sampler, "take_metrics") else {}
    results.append({
        "seconds": seconds,
        "sample_s": m["time/sample_s"],
        "verify_s": m["time/verify_s"],
        "responses": m["rollout/responses"],
        "tokens": m["rollout/tokens"],
        "responses_per_prompt": m["rollout/responses_per_prompt"],
        "response_len_mean": m["rollout/response_len_mean"],
        "reward_mean": m["rollout/reward_mean"],
        "stages": m["rollout/stages"],
        "slot_utilization": engine.get("rollout/slot_utilization", recorder.utilization() if recorder else None),
        "streamed": scheduler.streams,
    })
  timed = dict(results[-1])
  if len(results) > 1:
    for name in ("seconds", "sample_s", "verify_s"):
      timed[name] = float(np.median([r[name] for r in results[1:]]))
    timed["timed_seconds"] = [r["seconds"] for r in results[1:]]
  timed["first_pass_seconds"] = results[0]["seconds"]
  timed["compile_included"] = _PASSES.value == 1
  return timed


def main(argv):
  del argv
  config = _CONFIG.value
  config_validation.resolve(config)
  config_validation.validate(config)
  workdir = _WORKDIR.value or config.workdir
  os.makedirs(workdir, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", os.path.join(workdir, "cache", "jax"))
  mesh = sharding.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  setup = tasks.build_setup(config, workdir, print, mesh)
  info = machine.describe()
  print(f"machine: {info}", flush=True)
  report = {"machine": info, "config": config.to_dict(), "prompts": _PROMPTS.value, "passes": _PASSES.value,
            "results": {}}
  for kind in _SAMPLERS.value:
    for strategy in _STRATEGIES.value:
      r = rollout_once(config, setup, mesh, kind, strategy)
      report["results"][f"{kind}/{strategy}"] = r
      print(f"{kind:>6} {strategy:>6}: {r['seconds']:7.1f} s (first pass {r['first_pass_seconds']:.1f} s)  "
            f"{r['responses']:.0f} responses  {r['tokens']:.0f} tokens  utilization {r['slot_utilization']:.2f}  "
            f"streamed {r['streamed']}  reward {r['reward_mean']:.3f}", flush=True)
  ratios = {}
  for kind in _SAMPLERS.value:
    res = report["results"]
    if f"{kind}/ar3po" in res and f"{kind}/grpo" in res:
      ratios[f"{kind}: ar3po / grpo seconds"] = res[f"{kind}/ar3po"]["seconds"] / res[f"{kind}/grpo"]["seconds"]
  for strategy in _STRATEGIES.value:
    res = report["results"]
    if f"engine/{strategy}" in res and f"static/{strategy}" in res:
      ratios[f"{strategy}: engine / static seconds"] = (
          res[f"engine/{strategy}"]["seconds"] / res[f"static/{strategy}"]["seconds"])
  report["ratios"] = ratios
  report["load_average_1m_after"] = machine.describe()["load_average_1m"]
  print(json.dumps(ratios, indent=1))
  if _OUT.value:
    machine.write_report(_OUT.value, report)


if __name__ == "__main__":
  app.run(main)
