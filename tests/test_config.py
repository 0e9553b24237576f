import os
import subprocess
import sys

import pytest

from ar3po_jax import config_validation
from configs import tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("strategy", tiny.STRATEGIES)
def test_every_strategy_config_is_valid(strategy):
  config = tiny.get_config(strategy)
  assert config.rollout.strategy == strategy
  config_validation.validate(config)


def test_dapo_config_uses_clip_higher_and_no_kl():
  c = tiny.get_config("dapo")
  assert (c.rl.eps_low, c.rl.eps_high, c.rl.beta) == (0.2, 0.28, 0.0)


def test_unknown_strategy_is_named():
  with pytest.raises(ValueError, match="unknown strategy 'ppo'"):
    tiny.get_config("ppo")


def test_every_impossible_value_is_reported_at_once():
  c = tiny.get_config("ar3po")
  c.rollout.ar3po.k = 0
  c.rl.loss_agg = "mean"
  c.rollout.top_p = 1.5
  with pytest.raises(config_validation.ConfigError) as e:
    config_validation.validate(c)
  message = str(e.value)
  assert "k*S >= 1" in message and "rl.loss_agg" in message and "rollout.top_p" in message


def _main(*args):
  return subprocess.run([sys.executable, "-m", "ar3po_jax.main", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_refuses_unknown_keys_before_doing_anything(tmp_path):
  result = _main(f"--workdir={tmp_path}/w", "--config.rl.lrr=1e-5")
  assert result.returncode != 0 and "lrr" in result.stderr
  assert not os.path.exists(tmp_path / "w")


def test_cli_refuses_impossible_values_and_unwritable_workdirs(tmp_path):
  result = _main(f"--workdir={tmp_path}/w", "--config.rollout.ar3po.stages=0")
  assert result.returncode != 0 and "rollout.ar3po needs stages >= 1" in result.stderr
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  result = _main(f"--workdir={blocker}/w")
  assert result.returncode != 0 and "cannot be written" in result.stderr
