"""A JAX-native continuous-batching rollout engine (issue 13).

  live.py     the model's forward pass over a slot-major KV cache, reading only the live columns
              (the attention cost model is in its docstring)
  engine.py   Engine: fixed decode slots refilled as rows end; submit / poll / drain; metrics
  sampler.py  EngineSampler: the engine behind the scheduler's Sampler interface, one stage per call

Streaming AR3PO's stages (not done here; what the scheduler would need):
  - A per-prompt decision instead of a per-stage one: when all outstanding responses of a prompt are
    verified, the strategy says how many more it gets (AR3PO: k more while it has no correct
    response and fewer than S stages; GRPO: G at the first call, then none; AERO: its rejection and
    rescue per prompt). `stage_counts(state)` can stay as the barrier form and the simulator's path
    if the per-prompt form is derived from the same rule; the slot needs its own stage counter
    (today `StepState.stages_run` is global).
  - A scheduler loop over `Engine.submit` / `Engine.poll`: verify each poll's finished responses at
    once (small verifier batches, or a verifier pool fed asynchronously), fill rewards, ask the
    strategy, submit the new requests; the step ends when the engine is idle and no prompt wants
    more. DAPO's generation batches need a rule for when to draw the next batch before the current
    one is verified (speculative drawing changes its prompt accounting).
  - Keys from (step, prompt uid, stage, response index), not from call order, so a streamed rollout
    samples what the barrier rollout samples for the same decisions.
  - The weights stay fixed for the whole rollout (on-policy), as now; metrics such as
    `rollout/stages` become per-prompt maxima.
"""

from ar3po_jax.engine.engine import Engine, EngineConfig, Finished, Request  # noqa: F401
