"""AERO at GRPO's rollout budget (configs/tiny.py:aero_budget): 8 responses per prompt on average."""

import json

import numpy as np
import pytest

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
