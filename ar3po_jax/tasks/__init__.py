"""Tasks: each registers a builder of the run's `Setup` under its `config.task.name`.

  arithmetic            the embedded task (`embedded`): generated problems, a local tokenizer and a
                        supervised warm start, all cached in the workdir
  dapo_math, math500,   a Hugging Face checkpoint with a real math training set (`math_data`)
  gsm8k, ...
  arithmetic_chat       the arithmetic problems in a pretrained chat model's template (`arithmetic_chat`)

Adding a task: a module with a @register_task class, imported here.
"""

from ar3po_jax.tasks import arithmetic_chat, embedded, math_data  # noqa: F401  (registers the tasks)
from ar3po_jax.tasks.registry import REGISTRY, Setup, build_setup, config_problems, lookup, register_task

__all__ = ["REGISTRY", "Setup", "build_setup", "config_problems", "lookup", "register_task"]
