import dataclasses

import jax
import numpy as np
import pytest

from ar3po_jax.sampling import score
from ar3po_jax.update import UpdateSettings, init_train_state, jit_update, make_optimizer, make_update_fn
from tests.helpers import tiny_model

MODEL, PARAMS = tiny_model(seed=11)
TP, TR = 4, 6


def make_batch(rows=12, real=10, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(4, 32, (rows, TP + TR)).astype(np.int32)
  mask = np.ones((rows, TP + TR), bool)
  prompt_len = rng.integers(1, TP + 1, rows)
  resp_len = rng.integers(1, TR + 1, rows)
  for i in range(rows):
    mask[i, : TP - prompt_len[i]] = False
    mask[i, TP + resp_len[i] :] = False
  tokens[~mask] = 0
  groups = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3, 3] + list(range(4, 4 + rows - real)), np.int32)
  old = np.asarray(score(PARAMS, tokens, mask, model=MODEL, prompt_slots=TP))
  old = old + rng.normal(0, 0.3, old.shape).astype(np.float32) * mask[:, TP:]  # off-policy enough to clip
  return {
      "tokens_BxT": tokens,
      "mask_BxT": mask,
      "old_logp_BxTr": old.astype(np.float32),
      "ref_logp_BxTr": old.astype(np.float32) - 0.1,
      "rewards_B": np.array([1, 0, 0, 1, 1, 0, 1, 0, 1, 1] + [0] * (rows - real), np.float32),
      "group_ids_B": groups,
      "row_valid_B": np.arange(rows) < real,
      "train_row_B": np.arange(rows) < real,
      "posterior_mean_B": np.full(rows, 0.5, np.float32),
      "use_posterior_B": np.zeros(rows, bool),
  }


def run_update(batch, **settings):
  s = UpdateSettings(**settings)
  opt = make_optimizer(1e-2)
  update = jit_update(make_update_fn(MODEL, opt, s))
  state = init_train_state(jax.tree.map(np.array, PARAMS), opt)
  return update(state, {k: np.array(v) for k, v in batch.items()})


def numpy_loss(batch, eps_low=0.2, eps_high=0.2):
  logp = np.asarray(score(PARAMS, batch["tokens_BxT"], batch["mask_BxT"], model=MODEL, prompt_slots=TP))
  adv = np.zeros(len(batch["rewards_B"]))
  for g in np.unique(batch["group_ids_B"][batch["row_valid_B"]]):
    rows = (batch["group_ids_B"] == g) & batch["row_valid_B"]
    r = batch["rewards_B"][rows]
    adv[rows] = (r - r.mean()) / (r.std() + 1e-6)
  ratio = np.exp(logp - batch["old_logp_BxTr"])
  obj = np.minimum(ratio * adv[:, None], np.clip(ratio, 1 - eps_low, 1 + eps_high) * adv[:, None])
  m = batch["mask_BxT"][:, TP:] & batch["train_row_B"][:, None] & batch["row_valid_B"][:, None]
  clipped = (np.clip(ratio, 1 - eps_low, 1 + eps_high) * adv[:, None]) < ratio * adv[:, None]
  return -(obj * m).sum() / m.sum(), (clipped * m).sum() / m.sum()


def test_loss_and_clip_frac_match_numpy_reference():
  batch = make_batch()
  _, metrics = run_update(batch)
  loss, clip_frac = numpy_loss(batch)
  assert float(metrics["train/loss"]) == pytest.approx(loss, rel=1e-4, abs=1e-6)
  assert float(metrics["train/clip_frac"]) == pytest.approx(clip_frac, rel=1e-4)
  assert 0 < clip_frac < 1


def test_micro_batching_changes_no_number():
  batch = make_batch(rows=12)
  whole, m1 = run_update(batch)
  micro, m2 = run_update(batch, micro_batch_rows=3)
  assert float(m1["train/loss"]) == pytest.approx(float(m2["train/loss"]), rel=1e-5)
  assert float(m1["train/grad_norm"]) == pytest.approx(float(m2["train/grad_norm"]), rel=1e-5)
  # Adam's first step moves every weight by about lr = 1e-2; summation order may differ by float noise.
  for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(micro.params)):
    np.testing.assert_allclose(a, b, atol=2e-5)


def test_padding_rows_weigh_nothing():
  base = make_batch(rows=12)
  noisy = dict(base)
  noisy["tokens_BxT"] = base["tokens_BxT"].copy()
  noisy["tokens_BxT"][10:] = 7
  noisy["rewards_B"] = base["rewards_B"].copy()
  noisy["rewards_B"][10:] = 5.0
  a, _ = run_update(base)
  b, _ = run_update(noisy)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_array_equal(x, y)


def test_stop_gradient_rows_count_in_group_stats_but_get_no_gradient():
  batch = make_batch()
  stop = dict(batch, train_row_B=batch["train_row_B"].copy())
  stop["train_row_B"][0] = False  # the only correct response of group 0
  masked = dict(batch, mask_BxT=batch["mask_BxT"].copy())
  masked["mask_BxT"][0, TP:] = False
  dropped = dict(batch, row_valid_B=batch["row_valid_B"].copy())
  dropped["row_valid_B"][0] = False
  a, ma = run_update(stop)
  b, mb = run_update(masked)
  c, _ = run_update(dropped)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(x, y, atol=1e-7)
  # Dropping the row instead makes group 0 all-wrong: its other rows lose their negative advantage.
  assert float(ma["train/adv_abs_mean"]) > 0
  assert any(not np.allclose(x, y) for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params)))


def test_non_finite_loss_skips_the_step_and_counts_it():
  batch = make_batch()
  batch["old_logp_BxTr"] = batch["old_logp_BxTr"].copy()
  batch["old_logp_BxTr"][1, 0] = np.nan
  state, metrics = run_update(batch)
  for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(PARAMS)):
    np.testing.assert_array_equal(x, y)
  assert int(state.skipped_steps) == 1 and int(state.step) == 0
  assert int(metrics["train/skipped_steps"]) == 1


def test_kl_term_enters_only_with_beta():
  batch = make_batch()
  _, m0 = run_update(batch)
  _, m1 = run_update(batch, beta=0.5)
  assert float(m0["train/kl"]) == 0.0  # no reference model: nothing to report
  assert float(m1["train/kl"]) > 0
  assert float(m1["train/loss"]) == pytest.approx(float(m0["train/loss"]) + 0.5 * float(m1["train/kl"]), rel=1e-4)


def test_one_compile_per_row_bucket():
  opt = make_optimizer(1e-2)
  update = jit_update(make_update_fn(MODEL, opt, UpdateSettings()))
  state = jax.device_put(init_train_state(jax.tree.map(np.array, PARAMS), opt))  # placed, as the training loop places it
  for rows, seed in ((12, 0), (12, 1), (16, 2), (12, 3)):
    state, _ = update(state, make_batch(rows=rows, seed=seed))
  assert update._cache_size() == 2
