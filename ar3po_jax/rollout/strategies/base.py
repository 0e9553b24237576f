"""What a rollout strategy sees of a step, and what it must decide.

The scheduler owns the loop (draw prompts, sample, verify) and a `StepState` recording it; a
strategy only answers three questions, stage by stage, from that record:

  prompts_to_draw(state)        how many new prompts to take from the data stream now;
  stage_counts(state, rng)      how many more responses each drawn prompt gets in this stage
                                (all zero ends the step's sampling);
  form_groups(state, buffer, rng)  the final groups and the strategy's own metrics.

and states its own facts, so nothing outside its file needs to know them:

  name                          its registry key (`rollout.strategy`);
  metrics_doc                   its per-step metrics, name -> meaning; form_groups reports exactly
                                these every step, and only the running strategy's are logged;
  max_responses_per_prompt(r)   the most rows one prompt's group can hold (reused included), which
                                sizes the update's row buckets;
  config_problems(config)       what is wrong with the fields it reads, each message naming the field;
  config_defaults               optional: its section `rollout.<name>` as field -> default value, which
                                configs/common.py `base()` adds to every config (a section written out
                                there takes precedence);
  closed_forms(rollout, p)      optional: expected per-prompt values at a constant pass rate p, which
                                the simulator prints beside its measurements;
  slot_local                    True when it draws prompts only before the first stage and the count
                                stage_counts gives a slot depends only on that slot, the step's stage
                                number and the rng: then the scheduler may ask it per prompt, as soon
                                as that prompt's responses are verified (streamed stages), by calling
                                stage_counts on a one-slot StepState whose stages_run is the slot's own.

Strategies never call the sampler themselves: that keeps one compiled sampler launch per stage.
Adding a strategy = its own file (decorated with @register, its knobs in `config_defaults`) + one
import line in `__init__.py`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import numpy as np

from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.types import Group, Prompt, Response


def is_correct(response: Response) -> bool:
  return response.reward >= 0.5


@dataclasses.dataclass
class Slot:
  """One prompt drawn in this step, with the responses sampled for it so far (rewards filled)."""

  prompt: Prompt
  responses: list[Response] = dataclasses.field(default_factory=list)

  @property
  def num_sampled(self) -> int:
    return len(self.responses)

  @property
  def num_correct(self) -> int:
    return sum(is_correct(r) for r in self.responses)

  @property
  def mixed(self) -> bool:
    """Has both a correct and a wrong response: its group has a non-zero advantage."""
    return 0 < self.num_correct < self.num_sampled


@dataclasses.dataclass
class StepState:
  """The scheduler's record of one step's rollout so far."""

  step: int
  slots: list[Slot] = dataclasses.field(default_factory=list)
  stages_run: int = 0

  def add_prompts(self, prompts: list[Prompt]) -> None:
    self.slots.extend(Slot(p) for p in prompts)


class Strategy(abc.ABC):
  """Decides, stage by stage, who gets more responses, then forms the step's groups."""

  name: ClassVar[str]
  metrics_doc: ClassVar[dict[str, str]] = {}
  # The section `rollout.<name>`: field -> default value (types fixed by the defaults, as in any locked
  # config); {}: the strategy reads no section of its own, or configs/common.py writes it out.
  config_defaults: ClassVar[dict[str, object]] = {}
  # Decisions per prompt (see the module docstring): lets the scheduler stream stages.
  slot_local: ClassVar[bool] = False

  @classmethod
  @abc.abstractmethod
  def max_responses_per_prompt(cls, rollout_config) -> int:
    """The most responses one prompt's group can hold in a step, reused ones included."""

  @classmethod
  def config_problems(cls, config) -> list[str]:
    """Every impossible value among the fields this strategy reads, one message each naming the field."""
    del config
    return []

  @classmethod
  def closed_forms(cls, rollout_config, p: float) -> dict[str, float]:
    """Expected per-prompt values of a first step at a constant pass rate p, keyed like the simulator's
    row (`rollout.simulation.simulate`), for the simulator to print beside its measurements; {}: none."""
    del rollout_config, p
    return {}

  @abc.abstractmethod
  def prompts_to_draw(self, state: StepState) -> int:
    ...

  @abc.abstractmethod
  def stage_counts(self, state: StepState, rng: np.random.Generator) -> np.ndarray:
    """int array, one entry per slot of state (0: no responses for that prompt in this stage)."""

  @abc.abstractmethod
  def form_groups(
      self, state: StepState, buffer: ReplayBuffer, rng: np.random.Generator
  ) -> tuple[list[Group], dict[str, float]]:
    ...

  def state_dict(self) -> dict[str, Any]:
    """Cross-step state, as plain numpy arrays and lists (empty for stateless strategies)."""
    return {}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    del state


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
  """Class decorator: makes the strategy constructible by `make_strategy` under `cls.name`."""
  if cls.name in REGISTRY:
    raise ValueError(f"strategy {cls.name!r} registered twice")
  REGISTRY[cls.name] = cls
  return cls


def rewards_all_equal(group: Group) -> bool:
  """True for a degenerate group (training rewards all equal, or at most one response)."""
  # Plain Python over a handful of floats: np.ptp per group dominated a 10k-prompt step's bookkeeping.
  rewards = [r.reward + r.penalty for r in group.responses]
  return len(rewards) <= 1 or min(rewards) == max(rewards)


def whole_group(slot: Slot) -> Group:
  return Group(slot.prompt, list(slot.responses), [True] * slot.num_sampled)


def counts_for(state: StepState, wanted) -> np.ndarray:
  """Applies wanted(slot) -> int to every slot."""
  return np.asarray([wanted(s) for s in state.slots], np.int64)


def require(condition: bool, message: str) -> None:
  if not condition:
    raise ValueError(message)
