"""The RL loop in-process on a FAKE task (tests/fake_setup.py: a character tokenizer, a 1-layer random
transformer, a verifier that rewards the first character): three AR3PO steps pin exact metrics, so any
change to what the loop computes (rollout, pi_old, update, evaluation, logging) shows up here. The
golden values were produced by the code before the redesign (its `train.run` on the same fake task) and
are reproduced exactly after it."""

import math

import fake_setup
import pytest

from ar3po_jax import metrics, train
from ar3po_jax.rollout.strategies import REGISTRY
from ar3po_jax.tasks import Setup

# step -> {metric: value}, from the base commit's loop (see the module docstring). Counts and rewards are
# exact; the float training statistics are compared to 1e-5 relative, since float reductions may round
# differently on another CPU.
GOLDEN = {
    0: {"eval/accuracy": 0.0},
    1: {"rollout/responses": 10.0, "rollout/tokens": 63.0, "rollout/reward_mean": 0.3,
        "rollout/frac_zero_adv_groups": 0.25, "buffer/size": 3.0, "train/row_bucket": 10,
        "rollout/response_len_max": 8.0, "rollout/response_len_mean": 6.3, "train/loss": -0.11111088842153549,
        "train/grad_norm": 0.7494184374809265, "train/logp_mean": -2.7571780681610107},
    2: {"rollout/responses": 14.0, "rollout/tokens": 87.0, "rollout/reward_mean": 0.21428571428571427,
        "rollout/frac_zero_adv_groups": 0.25, "buffer/size": 6.0, "train/row_bucket": 20, "eval/accuracy": 0.0,
        "train/loss": -0.0632820650935173, "train/grad_norm": 0.8367975950241089,
        "train/logp_mean": -2.773909568786621},
    3: {"rollout/responses": 8.0, "rollout/tokens": 53.0, "rollout/reward_mean": 0.75,
        "rollout/frac_zero_adv_groups": 0.5, "buffer/size": 12.0, "train/row_bucket": 10, "eval/accuracy": 1.0,
        "train/loss": -0.056603655219078064, "train/grad_norm": 0.9125902652740479,
        "train/logp_mean": -2.7864396572113037},
}


def _run(tmp_path, strategy, sampler="static", **rl):
  tokenizer, model, params, train_prompts, eval_prompts = fake_setup.parts(0)
  eval_sets = {"heldout": eval_prompts}
  setup = Setup(tokenizer, model, params, train_prompts, eval_sets, fake_setup.FirstCharVerifier(), "the fake task")
  config = fake_setup.config(strategy)
  config.rollout.sampler = sampler  # the goldens come from the static kernel's draws
  config.rl.update(rl)
  return train.run(config, str(tmp_path), setup, log=lambda m: None)


@pytest.mark.slow
def test_three_ar3po_steps_reproduce_the_golden_metrics(tmp_path):
  # The base commit normalised advantages by the population std; the default is now the sample std
  # (rl.adv_std_ddof=1, as verl), so the golden run asks for ddof 0.
  # The golden run laid one response per row (rl.pack False); the packed layout is checked below.
  history = _run(tmp_path, "ar3po", adv_std_ddof=0, pack=False)
  assert [r["step"] for r in history] == [0, 1, 2, 3]
  for step, expected in GOLDEN.items():
    for name, value in expected.items():
      got = history[step][name]
      if name.startswith("train/") and isinstance(value, float):
        assert math.isclose(got, value, rel_tol=1e-5), (step, name, got, value)
      else:
        assert got == value, (step, name, got, value)
  # Every logged metric is documented; AR3PO logs no other strategy's metrics.
  for record in history:
    for name in record:
      assert metrics.documentation(name, REGISTRY["ar3po"].metrics_doc), name
      assert name.split("/")[0] not in ("dapo", "aero")
  assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "accuracy_vs_responses.png").exists()


@pytest.mark.slow
def test_the_packed_update_reproduces_the_golden_first_step(tmp_path):
  """rl.pack (the default) changes the update's layout, not its numbers: step 1 trains on the golden
  groups and gives the golden loss, gradient norm and log-probs."""
  history = _run(tmp_path, "ar3po", adv_std_ddof=0, steps=1)
  first = history[1]
  for name in ("rollout/responses", "rollout/tokens", "train/loss", "train/grad_norm", "train/logp_mean"):
    assert math.isclose(first[name], GOLDEN[1][name], rel_tol=1e-5), (name, first[name], GOLDEN[1][name])
  # Rows of four of the longest possible sequences (prompts of at most 8 tokens here + 8 new tokens).
  assert first["train/row_length"] == 64 and first["train/packed_rows"] <= first["train/row_bucket"]
  assert first["train/compiled_variants"] == 1 and 0 < first["train/padding_efficiency"] <= 1


@pytest.mark.slow
def test_the_sample_std_default_changes_only_the_update(tmp_path):
  """ddof 1 (the default) scales each group's advantages by sqrt((n-1)/n) against the golden run: the
  step-1 rollout is the same, the loss differs (-0.0786 measured, against -0.1111 with ddof 0)."""
  history = _run(tmp_path, "ar3po")
  first = history[1]
  for name in ("rollout/responses", "rollout/tokens", "rollout/reward_mean"):
    assert first[name] == GOLDEN[1][name], name
  assert math.isclose(first["train/loss"], -0.07856728881597519, rel_tol=1e-5), first["train/loss"]


@pytest.mark.slow
def test_the_engine_runs_the_loop_with_streamed_stages(tmp_path):
  """rollout.sampler=engine (the default): other draws than the static kernel's, the same greedy eval
  (the engine's greedy tokens are the kernel's), and the engine's per-step metrics, documented."""
  static = _run(tmp_path / "static", "ar3po", adv_std_ddof=0)
  history = _run(tmp_path / "engine", "ar3po", sampler="engine", adv_std_ddof=0)
  assert history[0]["eval/accuracy"] == static[0]["eval/accuracy"]
  for record in history[1:]:
    assert 0 < record["rollout/slot_utilization"] <= 1 and record["rollout/tokens_per_s"] > 0
    assert record["engine/decode_calls"] > 0 and record["rollout/responses"] > 0
    assert all(metrics.documentation(name, REGISTRY["ar3po"].metrics_doc) for name in record), record
  assert [r["step"] for r in history] == [0, 1, 2, 3]


@pytest.mark.slow
def test_eval_samples_add_per_set_metrics_beside_the_greedy_accuracy(tmp_path):
  tokenizer, model, params, train_prompts, eval_prompts = fake_setup.parts(0)
  verifier = fake_setup.FirstCharVerifier()
  setup = Setup(tokenizer, model, params, train_prompts, {"heldout": eval_prompts}, verifier, "the fake task")
  config = fake_setup.config("grpo")
  config.rl.steps = 1
  config.eval.samples, config.eval.temperature, config.eval.top_p = 2, 0.6, 0.9
  history = train.run(config, str(tmp_path), setup, log=lambda m: None)
  for record in (history[0], history[-1]):
    assert "eval/accuracy" in record and 0.0 <= record["eval/heldout/avg@2"] <= record["eval/heldout/pass@2"] <= 1.0
    assert all(metrics.documentation(name) for name in record if name.startswith("eval/"))
