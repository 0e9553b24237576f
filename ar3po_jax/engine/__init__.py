"""A JAX-native continuous-batching rollout engine (issue 13).

  live.py     the model's forward pass over a slot-major KV cache, reading only the live columns
              (the attention cost model is in its docstring)
  engine.py   Engine: fixed decode slots refilled as rows end; submit / poll / drain; metrics
  sampler.py  EngineSampler: the engine behind the scheduler's Sampler interface, one stage per call

Streamed stages (rollout/scheduler.py): EngineSampler also takes requests one prompt at a time
(`submit(tag, prompt, count, key_path)`, `poll()`); the scheduler queues a prompt's next stage as soon
as its responses are verified, for strategies whose decisions are per prompt (`Strategy.slot_local`:
grpo, ar3po, aero, pods). DAPO's generation batches, GRESO's skip decisions and the knapsack
allocation look across prompts, so they keep the stage barrier (each stage still continuously batched).
Keys come from (step, prompt index, stage, response index), not from call order. The weights stay
fixed for the whole rollout (on-policy); `rollout/stages` is the largest number of stages any prompt ran.

What it does not do yet: several processes (train.py falls back to the static kernel there), paged KV
blocks (the cache is slot-major, [slots, Tp + Tr]; the live width bounds what attention reads, not what
is allocated), and overlapping a decode call with the host's reading of the previous call.
"""

from ar3po_jax.engine.engine import Engine, EngineConfig, Finished, Request  # noqa: F401
