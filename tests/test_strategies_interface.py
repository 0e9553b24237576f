"""What every strategy states about itself (INTERFACE): its bound on a group's rows, its metrics, its
config checks, and that a new strategy needs nothing outside its own class and its registration."""

import numpy as np
import pytest

from ar3po_jax import config_validation, train
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy
from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rollout.simulated import SimulatedSampler, make_prompts
from ar3po_jax.rollout.strategies.base import REGISTRY, Strategy, counts_for, register, whole_group
from configs import tiny


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_groups_never_exceed_the_declared_bound(name):
  rollout = config_validation.resolve(tiny.get_config(name)).rollout
  rollout.batch_prompts = rollout.dapo.gen_batch_prompts = 32
  prompts = make_prompts(32)
  rates = {p.uid: r for p, r in zip(prompts, np.linspace(0, 1, 32))}
  scheduler = Scheduler(make_strategy(rollout), SimulatedSampler(rates, np.random.default_rng(0), 40), ExactVerifier(),
                        ReplayBuffer(), PromptStream(prompts))
  bound = REGISTRY[name].max_responses_per_prompt(rollout)
  rng = np.random.default_rng(0)
  for step in range(4):
    result = scheduler.rollout(step, rng)
    assert max(g.size for g in result.groups) <= bound
    assert set(k for k in result.metrics if k.startswith(name + "/")) == set(REGISTRY[name].metrics_doc)
  assert train.max_rows_per_step(rollout) == 32 * bound


@pytest.mark.parametrize("name,field,value,message", [
    ("ar3po", "rollout.ar3po.k", 0, "rollout.ar3po needs stages >= 1 and k >= 1"),
    ("dapo", "rollout.dapo.max_gen_batches", 0, "rollout.dapo.max_gen_batches must be >= 1"),
    ("aero", "rollout.aero.n_extra", 0, "rollout.aero.n_extra must be >= 1"),
])
def test_only_the_running_strategy_checks_its_section(name, field, value, message):
  c = tiny.get_config(name)
  section, key = field.rsplit(".", 1)
  node = c
  for part in section.split("."):
    node = node[part]
  node[key] = value
  assert any(message in p for p in config_validation.problems(c))
  c.rollout.strategy = "grpo"  # another strategy ignores that section
  assert config_validation.problems(c) == []


@pytest.fixture
def registry_snapshot():
  """Every module reads the one REGISTRY dict: a strategy registered in a test is removed after it."""
  before = dict(REGISTRY)
  yield
  REGISTRY.clear()
  REGISTRY.update(before)


def test_a_throwaway_strategy_needs_only_its_class_and_registration(registry_snapshot):
  @register
  class Twice(Strategy):
    """Two responses per prompt, one stage."""

    name = "twice"
    metrics_doc = {"twice/prompts": "prompts drawn"}

    def __init__(self, rollout_config):
      self.batch_prompts = int(rollout_config.batch_prompts)

    @classmethod
    def max_responses_per_prompt(cls, rollout_config):
      return 2

    def prompts_to_draw(self, state):
      return self.batch_prompts if state.stages_run == 0 else 0

    def stage_counts(self, state, rng):
      return counts_for(state, lambda s: 2 if state.stages_run == 0 else 0)

    def form_groups(self, state, buffer, rng):
      return [whole_group(s) for s in state.slots], {"twice/prompts": float(len(state.slots))}

  c = tiny.get_config("grpo")
  c.rollout.strategy = "twice"
  assert config_validation.problems(c) == []
  assert train.max_rows_per_step(c.rollout) == 2 * c.rollout.batch_prompts
  prompts = make_prompts(c.rollout.batch_prompts)
  scheduler = Scheduler(make_strategy(c.rollout), SimulatedSampler({p.uid: 0.5 for p in prompts}, np.random.default_rng(0), 8),
                        ExactVerifier(), ReplayBuffer(), PromptStream(prompts))
  m = scheduler.rollout(0, np.random.default_rng(0)).metrics
  assert m["twice/prompts"] == c.rollout.batch_prompts and m["rollout/responses"] == 2 * c.rollout.batch_prompts


def test_a_strategy_reporting_an_undeclared_metric_is_refused():
  rollout = tiny.get_config("grpo").rollout
  strategy = make_strategy(rollout)
  strategy.form_groups = lambda state, buffer, rng: ([whole_group(s) for s in state.slots], {"grpo/extra": 1.0})
  prompts = make_prompts(rollout.batch_prompts)
  scheduler = Scheduler(strategy, SimulatedSampler({p.uid: 0.5 for p in prompts}, np.random.default_rng(0), 8), ExactVerifier(),
                        ReplayBuffer(), PromptStream(prompts))
  with pytest.raises(ValueError, match="metrics_doc declares"):
    scheduler.rollout(0, np.random.default_rng(0))
