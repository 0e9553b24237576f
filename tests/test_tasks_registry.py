"""The task registry: builders found by config.task.name, unknown names named, Setup's pooled eval set."""

import numpy as np
import pytest

from ar3po_jax import tasks
from ar3po_jax.tasks import registry
from ar3po_jax.types import Prompt
from configs import tiny


def _prompt(uid):
  return Prompt(uid, np.zeros(2, np.int32), "0")


def test_the_known_tasks_are_registered():
  assert tasks.lookup("arithmetic").__name__ == "Arithmetic"
  for name in ("dapo_math", "math500", "gsm8k", "math"):
    assert tasks.lookup(name).__name__ == "MathData"


def test_unknown_task_is_named_in_lookup_and_in_config_problems():
  with pytest.raises(ValueError, match="unknown task.name 'nope'"):
    tasks.lookup("nope")
  c = tiny.get_config("grpo")
  c.task.name = "nope"
  assert tasks.config_problems(c) == [f"task.name must be one of {sorted(tasks.REGISTRY)}, got 'nope'"]


def test_a_registered_task_builds_the_setup(monkeypatch):
  monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
  built = []

  @registry.register_task("toy")
  class Toy:
    @staticmethod
    def config_problems(config):
      return ["task.toy_field is wrong"] if config.seed < 0 else []

    @staticmethod
    def build(config, workdir, log, mesh):
      built.append(workdir)
      return registry.Setup(None, None, {}, [_prompt("t")], {"b": [_prompt("b1")], "a": [_prompt("a1")]}, verifier=None,
                            title="toy", on_close=lambda: built.append("closed"))

  c = tiny.get_config("grpo")
  c.task.name = "toy"
  setup = tasks.build_setup(c, "/w", log=print)
  assert [p.uid for p in setup.eval_prompts] == ["b1", "a1"]  # the eval sets pooled in their order
  setup.close()
  assert built == ["/w", "closed"]
  c.seed = -1
  assert registry.config_problems(c) == ["task.toy_field is wrong"]
  with pytest.raises(ValueError, match="registered twice"):
    registry.register_task("toy")(Toy)


def test_embedded_task_checks_its_own_section():
  c = tiny.get_config("grpo")
  c.task.level_weights = (1.0, 2.0)
  c.task.teacher_slip = 2.0
  found = tasks.config_problems(c)
  assert any("task.level_weights must have 5 entries" in p for p in found)
  assert any("task.teacher_slip must lie in [0, 1]" in p for p in found)
