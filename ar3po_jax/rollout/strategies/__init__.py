"""Rollout strategies, constructible by name from `config.rollout` (`rollout.strategy`)."""

from ar3po_jax.rollout.strategies.aero import Aero
from ar3po_jax.rollout.strategies.ar3po import Ar3po
from ar3po_jax.rollout.strategies.base import REGISTRY, Slot, StepState, Strategy, is_correct, register
from ar3po_jax.rollout.strategies.dapo import Dapo, overlong_penalty
from ar3po_jax.rollout.strategies.greso import Greso
from ar3po_jax.rollout.strategies.grpo import Grpo
from ar3po_jax.rollout.strategies.knapsack import Knapsack
from ar3po_jax.rollout.strategies.pods import Pods


def make_strategy(rollout_config) -> Strategy:
  name = rollout_config.strategy
  if name not in REGISTRY:
    raise ValueError(f"unknown rollout strategy {name!r}; registered: {sorted(REGISTRY)}")
  return REGISTRY[name](rollout_config)


__all__ = [
    "Aero", "Ar3po", "Dapo", "Greso", "Grpo", "Knapsack", "Pods", "REGISTRY", "Slot", "StepState", "Strategy",
    "is_correct", "make_strategy", "overlong_penalty", "register",
]
