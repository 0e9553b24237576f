"""Tasks by name: what a run trains on, as a `Setup` the RL loop takes without knowing the task.

  @register_task("arithmetic")
  class Arithmetic:
    @staticmethod
    def config_problems(config) -> list[str]: ...     # the task's own config section, its files
    @staticmethod
    def build(config, workdir, log, mesh) -> Setup: ...

`build_setup(config, ...)` looks the builder up by `config.task.name`. A builder runs on every
process of a multi-host run and returns identical setups on all of them (each task decides how:
the embedded one builds on process 0 first and broadcasts, the checkpoint one reads its shards).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

from ar3po_jax.types import Prompt, Verifier


@dataclasses.dataclass
class Setup:
  """Everything the RL loop needs from a task.

  params: the starting policy's parameters (placed by the loop on its mesh).
  eval_sets: held-out prompt sets by name; in-training evaluation pools them in this order.
  export: optional (params, path) -> None that writes the trained policy in the task's own format
    (e.g. a Hugging Face checkpoint); every process calls it.
  title: names the task in plots and logs ("grpo on <title>").
  report: what the task measured while building (warm-start loss, pass-rate histogram, load stats).
  on_close: releases what the task holds (e.g. the verifier's worker processes) when the run ends.
  """

  tokenizer: Any
  model: Any
  params: Any
  train_prompts: list[Prompt]
  eval_sets: dict[str, list[Prompt]]
  verifier: Verifier
  title: str
  export: Callable[[Any, str], None] | None = None
  report: dict = dataclasses.field(default_factory=dict)
  on_close: Callable[[], None] | None = None

  def close(self) -> None:
    if self.on_close is not None:
      self.on_close()

  @property
  def eval_prompts(self) -> list[Prompt]:
    return [p for prompts in self.eval_sets.values() for p in prompts]


class Task(Protocol):
  @staticmethod
  def config_problems(config) -> list[str]: ...

  @staticmethod
  def build(config, workdir: str, log: Callable[[str], None], mesh) -> Setup: ...


REGISTRY: dict[str, Task] = {}


def register_task(*names: str):
  """Class decorator: `config.task.name` in names builds the run through this class."""

  def decorate(cls):
    for name in names:
      if name in REGISTRY:
        raise ValueError(f"task {name!r} registered twice")
      REGISTRY[name] = cls
    return cls

  return decorate


def lookup(name: str) -> Task:
  if name not in REGISTRY:
    raise ValueError(f"unknown task.name {name!r}; registered: {sorted(REGISTRY)}")
  return REGISTRY[name]


def config_problems(config) -> list[str]:
  """The running task's problems with its config section ([] when the name itself is unknown: named)."""
  name = config.task.name
  if name not in REGISTRY:
    return [f"task.name must be one of {sorted(REGISTRY)}, got {name!r}"]
  return list(REGISTRY[name].config_problems(config))


def build_setup(config, workdir: str, log: Callable[[str], None] = print, mesh=None) -> Setup:
  return lookup(config.task.name).build(config, workdir, log, mesh)
