"""Host-side rollout: strategies, the stage scheduler, the replay buffer and the simulated policy.
The data they exchange with the sampler and the update lives in `ar3po_jax.types`."""

from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler, has_zero_advantage
from ar3po_jax.rollout.strategies import REGISTRY as STRATEGIES
from ar3po_jax.rollout.strategies import Strategy, make_strategy

__all__ = ["ReplayBuffer", "STRATEGIES", "Scheduler", "Strategy", "has_zero_advantage", "make_strategy"]
