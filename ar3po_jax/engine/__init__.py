"""A JAX-native continuous-batching rollout engine (issue 13).

  live.py     the model's forward pass over a slot-major KV cache, reading only the live columns
  engine.py   Engine: fixed decode slots refilled as rows end; submit / poll / drain; metrics
  sampler.py  EngineSampler: the engine behind the scheduler's Sampler interface
"""

from ar3po_jax.engine.engine import Engine, EngineConfig, Finished, Request  # noqa: F401
