"""benchmarks/strategies.py: flags, presets and the config each (variant, seed) run gets."""

import pytest

from benchmarks import strategies
from configs import tiny


def test_a_preset_names_its_results_folder_and_mix_is_the_same_flag():
  assert strategies.parse_args(["--preset=slow", "--variants=grpo"]).results == "benchmarks/results/strategies_slow"
  assert strategies.parse_args(["--mix=hard", "--variants=grpo"]).results == "benchmarks/results/strategies_hard"
  given = strategies.parse_args(["--preset=slow", "--results=/tmp/r", "--variants=grpo"])
  assert (given.mix, given.results) == ("slow", "/tmp/r")
  with pytest.raises(SystemExit):
    strategies.parse_args(["--preset=fast"])
  with pytest.raises(SystemExit):
    strategies.parse_args(["--variants=grpo,nonesuch"])


def test_a_runs_config_has_the_variants_the_presets_and_the_overrides_fields():
  config = strategies.make_config("aero_reject", 2, 100, 20, ["rollout.aero.reject_ratio=0.5"], "/tmp/c", "slow")
  assert config.rollout.strategy == "aero" and config.rollout.aero.budget == 8
  assert config.rl.lr == tiny.PRESETS["slow"]["rl.lr"]
  assert (config.seed, config.rl.steps, config.eval.every, config.cache_dir) == (2, 100, 20, "/tmp/c")
  assert config.rollout.aero.reject_ratio == 0.5
  with pytest.raises(KeyError, match="no field 'rl.nonesuch'"):
    strategies.make_config("grpo", 0, 1, 1, ["rl.nonesuch=1"])
