import os
import subprocess
import sys

import pytest

from ar3po_jax import config_validation
from configs import tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("strategy", tiny.STRATEGIES)
def test_every_strategy_config_is_valid(strategy):
  config = config_validation.resolve(tiny.get_config(strategy))
  assert config.rollout.strategy == strategy
  config_validation.validate(config)


@pytest.mark.parametrize("variant", sorted(tiny.VARIANTS))
def test_every_variant_is_a_registered_strategy_with_other_knobs(variant):
  # A variant (aero_budget) is not a strategy: its config runs the strategy it names, differs from that
  # strategy's config only in the variant's fields and its workdir, and is valid.
  strategy, fields = tiny.VARIANTS[variant]
  assert variant not in tiny.STRATEGIES and strategy in tiny.STRATEGIES
  config = config_validation.resolve(tiny.get_config(variant))
  assert config.rollout.strategy == strategy
  config_validation.validate(config)
  got = dict(config_validation._leaves(config))
  plain = dict(config_validation._leaves(config_validation.resolve(tiny.get_config(strategy))))
  changed = {".".join(k) for k in got if got[k] != plain[k]}
  assert changed == set(fields) | {"workdir"}
  assert all(got[tuple(k.split("."))] == v for k, v in fields.items())


def test_a_flattened_optimizer_is_refused_with_sharded_parameters():
  c = config_validation.resolve(tiny.get_config("grpo"))
  c.rl.flatten_optimizer = True
  assert config_validation.problems(c) == []  # replicated parameters: fine
  c.mesh.fsdp = 2
  assert any("rl.flatten_optimizer" in p and "fsdp (2)" in p for p in config_validation.problems(c))


def test_dapo_config_uses_clip_higher_and_no_kl():
  c = config_validation.resolve(tiny.get_config("dapo"))
  assert (c.rl.eps_low, c.rl.eps_high, c.rl.beta) == (0.2, 0.28, 0.0)


def test_strategy_presets_resolve_from_the_final_strategy():
  # --config=configs/tiny.py:grpo --config.rollout.strategy=dapo: DAPO's clip, not GRPO's.
  c = tiny.get_config("grpo")
  c.rollout.strategy = "dapo"
  assert config_validation.resolve(c).rl.eps_high == 0.28
  c = tiny.get_config("dapo")
  c.rollout.strategy = "grpo"
  assert config_validation.resolve(c).rl.eps_high == 0.2
  c = tiny.get_config("grpo")
  c.rollout.strategy, c.rl.eps_high = "dapo", 0.25  # an explicit value wins over the preset
  assert config_validation.resolve(c).rl.eps_high == 0.25

  assert config_validation.problems(tiny.get_config("grpo")) == []  # checked as it will run: presets filled


def test_unknown_strategy_is_named():
  with pytest.raises(ValueError, match="unknown strategy 'ppo'"):
    tiny.get_config("ppo")


def test_every_impossible_value_is_reported_at_once():
  c = config_validation.resolve(tiny.get_config("ar3po"))
  c.rollout.ar3po.k = 0
  c.rl.loss_agg = "mean"
  c.rollout.top_p = 1.5
  with pytest.raises(config_validation.ConfigError) as e:
    config_validation.validate(c)
  message = str(e.value)
  assert "k*S >= 1" in message and "rl.loss_agg" in message and "rollout.top_p" in message


def _main(*args):
  return subprocess.run(
      [sys.executable, "-m", "ar3po_jax.main", *args], cwd=REPO, capture_output=True, text=True, timeout=120
  )


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


def test_cli_resolves_the_strategy_preset_after_flags(tmp_path):
  # Stops at the first missing piece after the config is printed: an unknown task name is refused by
  # validation, so nothing is built. The printed error lists problems of the resolved config only.
  result = _main(f"--workdir={tmp_path}/w", "--config=configs/tiny.py:grpo", "--config.rollout.strategy=dapo",
                 "--config.task.name=nope")
  assert result.returncode != 0 and "task.name must be one of" in result.stderr
  assert "eps_high" not in result.stderr


def test_main_simulate_and_eval_import_in_one_process():
  code = "import ar3po_jax.main, ar3po_jax.simulate, ar3po_jax.eval; import ar3po_jax.main as m; m.define_flags()"
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr
