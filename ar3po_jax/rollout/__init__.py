"""Host-side rollout: data types, strategies, the stage scheduler and the replay buffer."""

from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler, has_zero_advantage
from ar3po_jax.rollout.strategies import REGISTRY as STRATEGIES
from ar3po_jax.rollout.strategies import Strategy, make_strategy
from ar3po_jax.types import Group, Prompt, Response, RolloutResult, Sampler, Verifier  # re-exported for callers of rollout

__all__ = [
    "Group", "Prompt", "ReplayBuffer", "Response", "RolloutResult", "STRATEGIES", "Sampler", "Scheduler",
    "Strategy", "Verifier", "has_zero_advantage", "make_strategy",
]
