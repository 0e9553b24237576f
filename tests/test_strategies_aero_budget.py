"""AERO at GRPO's rollout budget (configs/tiny.py:aero_budget): 8 responses per prompt on average."""

import json

import numpy as np
import pytest

from ar3po_jax.rollout.strategies.aero import Aero
from ar3po_jax.simulate import simulate
from configs.tiny import get_config

# Warm-start pass-rate histograms of the embedded task (k of 8 samples right, 200 held-out prompts),
# seeds 0 / 1 / 2, as recorded in benchmarks/results/strategies/grpo_seed*.json.
HISTOGRAMS = (
    (34, 13, 17, 11, 13, 15, 17, 13, 67),
    (73, 21, 11, 14, 8, 6, 7, 12, 48),
    (81, 28, 11, 10, 7, 4, 5, 6, 48),
)


def rates_of(histogram):
  return [k / 8 for k, count in enumerate(histogram) for _ in range(count)]


def expected_responses(a, p):
  """n_explore, then rescue batches of n_extra (the last cut to the budget) while all are still wrong."""
  q = 1.0 - p
  total, held, still_wrong = a.n_explore, a.n_explore, q**a.n_explore
  while held < a.budget:
    batch = min(a.n_extra, a.budget - held)
    total += still_wrong * batch
    still_wrong *= q**batch
    held += batch
  return total


def test_the_preset_averages_grpos_budget_and_the_default_stays():
  budget, default = get_config("aero_budget").rollout.aero, get_config("aero").rollout.aero
  assert get_config("aero_budget").rollout.strategy == "aero"
  assert (default.n_explore, default.budget, default.n_extra) == (8, 16, 2)
  per_seed = [np.mean([expected_responses(budget, p) for p in rates_of(h)]) for h in HISTOGRAMS]
  assert np.mean(per_seed) == pytest.approx(8.0, rel=0.01), per_seed
  old = [np.mean([expected_responses(default, p) for p in rates_of(h)]) for h in HISTOGRAMS]
  assert np.mean(old) > 10  # the reconstruction's default spends well over GRPO's 8


def test_the_simulator_measures_the_expected_average(tmp_path):
  config = get_config("aero_budget")
  for seed, histogram in enumerate(HISTOGRAMS[:2]):
    path = tmp_path / f"rates{seed}.json"
    path.write_text(json.dumps(rates_of(histogram)))
    row = simulate(config, "aero", f"file:{path}", 4_000, 1, seed=seed)
    expected = np.mean([expected_responses(config.rollout.aero, p) for p in rates_of(histogram)])
    assert row["responses_per_prompt"] == pytest.approx(expected, rel=0.02)


# The hard mix's warm starts (configs/tiny.py:NAME,hard), seeds 0 / 1 / 2, as recorded in
# benchmarks/results/strategies_hard/grpo_seed*.json: 57 to 70% of prompts never solved.
HARD_HISTOGRAMS = (
    (125, 38, 15, 3, 1, 1, 1, 5, 11),
    (114, 38, 13, 9, 4, 3, 0, 5, 14),
    (139, 37, 9, 1, 3, 1, 0, 7, 3),
)


def test_the_hard_mix_preset_averages_grpos_budget_where_aero_budget_overspends():
  hard = get_config("aero_budget_hard,hard")
  assert hard.rollout.strategy == "aero" and tuple(hard.task.level_weights) == (1.0, 0.5, 1.5, 3.0, 3.0)
  per_seed = [np.mean([expected_responses(hard.rollout.aero, p) for p in rates_of(h)]) for h in HARD_HISTOGRAMS]
  assert np.mean(per_seed) == pytest.approx(8.0, rel=0.01), per_seed
  default_sized = get_config("aero_budget").rollout.aero
  overspent = [np.mean([expected_responses(default_sized, p) for p in rates_of(h)]) for h in HARD_HISTOGRAMS]
  assert np.mean(overspent) > 10  # sized on the default mix, it spends its rescue on never-solved prompts


def test_the_rejection_only_preset_samples_exactly_grpos_budget(tmp_path):
  config = get_config("aero_reject")
  a = config.rollout.aero
  assert (a.n_explore, a.budget) == (8, 8)
  path = tmp_path / "rates.json"
  path.write_text(json.dumps(rates_of(HARD_HISTOGRAMS[0])))
  row = simulate(config, "aero", f"file:{path}", 2_000, 1, seed=0)
  assert row["responses_per_prompt"] == 8.0  # no rescue can add a response
  assert row["aero_rescued_per_step"] == 0
  # Selective rejection trains fewer rows than it samples: 0.90 a prompt by the closed form on this seed.
  rates = rates_of(HARD_HISTOGRAMS[0])
  expected = np.mean([Aero.closed_forms(config.rollout, p)["aero_rejected_per_prompt"] for p in rates])
  assert expected == pytest.approx(0.90, abs=0.01)
  assert row["aero_rejected_per_drawn"] == pytest.approx(expected, rel=0.1)
