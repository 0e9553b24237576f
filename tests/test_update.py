import json
import pathlib

import jax
import numpy as np
import pytest

from ar3po_jax.models.transformer import positions_from_mask
from ar3po_jax.sampling import score
from ar3po_jax.update import UpdateSettings, init_train_state, jit_update, make_optimizer, make_schedule, make_update_fn
from tests.helpers import tiny_model

MODEL, PARAMS = tiny_model(seed=11)
TP, TR = 4, 6


def make_batch(rows=12, real=10, seed=0, noise=0.3, params=None):
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
  old = np.asarray(score(PARAMS if params is None else params, tokens, mask, model=MODEL, prompt_slots=TP))
  old = old + rng.normal(0, noise, old.shape).astype(np.float32) * mask[:, TP:]  # off-policy enough to clip
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


def run_update(batch, lr=1e-2, warmup_steps=0, params=None, flatten=False, **settings):
  s = UpdateSettings(**settings)
  opt = make_optimizer(lr, warmup_steps=warmup_steps, flatten=flatten)
  update = jit_update(make_update_fn(MODEL, opt, s, make_schedule(lr, warmup_steps)))
  state = init_train_state(jax.tree.map(np.array, PARAMS if params is None else params), opt)
  return update(state, {k: np.array(v) for k, v in batch.items()})


def numpy_loss(batch, eps_low=0.2, eps_high=0.2, weights=1.0):
  """Hand-written loss and clip fraction; advantages with the sample std (ddof 1), as verl."""
  logp = np.asarray(score(PARAMS, batch["tokens_BxT"], batch["mask_BxT"], model=MODEL, prompt_slots=TP))
  adv = np.zeros(len(batch["rewards_B"]))
  for g in np.unique(batch["group_ids_B"][batch["row_valid_B"]]):
    rows = (batch["group_ids_B"] == g) & batch["row_valid_B"]
    r = batch["rewards_B"][rows]
    adv[rows] = (r - r.mean()) / (r.std(ddof=1) + 1e-6) if len(r) > 1 else 0.0
  ratio = np.exp(logp - batch["old_logp_BxTr"])
  obj = np.minimum(ratio * adv[:, None], np.clip(ratio, 1 - eps_low, 1 + eps_high) * adv[:, None]) * weights
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
  # The same metrics the dashboards show: entropy of pi_theta on trained tokens (float32), the
  # |sampler - trainer| log-prob gap (here the sampler's numbers are pi_old), the learning rate.
  tokens, mask = batch["tokens_BxT"], batch["mask_BxT"]
  logits, _ = MODEL.apply({"params": PARAMS}, tokens, positions_from_mask(mask), mask)
  logp_v = np.asarray(jax.nn.log_softmax(np.asarray(logits, np.float64)[:, TP - 1 : -1], -1))
  entropy = -(np.exp(logp_v) * logp_v).sum(-1)
  m = mask[:, TP:] & batch["row_valid_B"][:, None]
  assert float(metrics["train/entropy"]) == pytest.approx(entropy[m].mean(), rel=1e-4)
  logp = np.asarray(score(PARAMS, tokens, mask, model=MODEL, prompt_slots=TP))
  gap = np.abs(batch["old_logp_BxTr"] - logp)[m]
  assert float(metrics["train/logprob_mismatch_mean"]) == pytest.approx(gap.mean(), rel=1e-4)
  assert float(metrics["train/logprob_mismatch_max"]) == pytest.approx(gap.max(), rel=1e-4)
  assert float(metrics["train/lr"]) == pytest.approx(1e-2)
  assert int(metrics["train/optimizer_steps"]) == 1


GOLDEN = json.loads((pathlib.Path(__file__).parent / "data" / "update_golden_9004284.json").read_text())


@pytest.mark.parametrize("case", ["default", "micro3", "beta"])
def test_one_mini_batch_reproduces_the_single_step_update(case):
  """Golden numbers of the update at 9004284 (one step per rollout, population std): with
  mini_batches = epochs = 1 and adv_std_ddof = 0 the new update gives the same numbers (bit for bit
  on the machine that wrote them; the tolerance only allows another CPU's last bits)."""
  want = GOLDEN[case]
  opt = make_optimizer(1e-2, 0.1, 1.0, 3)
  update = jit_update(make_update_fn(MODEL, opt, UpdateSettings(**want["settings"], adv_std_ddof=0)))
  state = init_train_state(jax.tree.map(np.array, PARAMS), opt)
  for seed, want_metrics in zip((0, 1), want["metrics"]):
    state, metrics = update(state, {k: np.array(v) for k, v in make_batch(seed=seed).items()})
    for name, value in want_metrics.items():
      assert float(metrics[name]) == pytest.approx(float.fromhex(value), rel=2e-6, abs=1e-12), (case, seed, name)
  leaves = jax.tree.leaves(state.params)
  for key, fn in (("param_sums", lambda x: x), ("param_abs_sums", np.abs)):
    got = [float(np.sum(fn(np.asarray(x, np.float64)))) for x in leaves]
    np.testing.assert_allclose(got, [float.fromhex(v) for v in want[key]], rtol=2e-6, atol=1e-9)


def test_mini_batches_take_several_steps_and_the_clip_acts_on_later_ones():
  batch = make_batch(noise=0.0)  # pi_old = pi_theta: the first step's ratio is 1
  state, metrics = run_update(batch, lr=5e-2, warmup_steps=2, mini_batches=4)
  assert int(state.step) == 4 and int(metrics["train/optimizer_steps"]) == 4
  assert float(metrics["train/clip_frac_first"]) == 0.0
  assert float(metrics["train/logprob_mismatch_max"]) < 1e-5  # sampler and trainer agree in float32
  assert float(metrics["train/clip_frac_last"]) > 0.0  # three steps later pi_theta has left the trust region
  assert float(metrics["train/ratio_max"]) > 1.2 or float(metrics["train/ratio_min"]) < 0.8
  assert float(metrics["train/kl_old_last"]) > 0.0
  assert float(metrics["train/lr"]) == pytest.approx(5e-2 / 2)  # the warm-up's first value
  # Advantages come from the whole batch, so they do not depend on the split.
  _, one = run_update(batch)
  assert float(metrics["train/adv_abs_mean"]) == pytest.approx(float(one["train/adv_abs_mean"]), rel=1e-6)
  assert float(metrics["train/tokens"]) == float(one["train/tokens"])
  state, metrics = run_update(batch, lr=5e-2, mini_batches=2, epochs=2)
  assert int(state.step) == 4 and float(metrics["train/clip_frac_last"]) > 0.0
  with pytest.raises(ValueError, match="rl.mini_batches=5"):
    run_update(batch, mini_batches=5)


def test_the_flattened_optimizer_takes_the_same_steps():
  """rl.flatten_optimizer changes how XLA sees AdamW (one raveled vector), not its numbers: after four
  mini-batch steps with clipping and warm-up the parameters agree to rounding (the global norm sums in
  another order; Adam divides by sqrt(v), which magnifies that where v is tiny)."""
  batch = make_batch(noise=0.3)
  plain, m_plain = run_update(batch, lr=5e-2, warmup_steps=2, mini_batches=4)
  flat, m_flat = run_update(batch, lr=5e-2, warmup_steps=2, mini_batches=4, flatten=True)
  for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(flat.params)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-3, atol=1e-4)  # steps move weights ~5e-2
  assert float(m_flat["train/clip_frac_last"]) == pytest.approx(float(m_plain["train/clip_frac_last"]), abs=1e-6)
  assert len(jax.tree.leaves(flat.opt_state)) < len(jax.tree.leaves(plain.opt_state)) / 4  # a few vectors


def test_truncated_importance_weights_hand_computed():
  batch = make_batch()
  # The sampler's numbers differ from the trainer's pi_old (here: the re-scored one), except in rows
  # 0 and 1, which were reused and so take no correction.
  logp = np.asarray(score(PARAMS, batch["tokens_BxT"], batch["mask_BxT"], model=MODEL, prompt_slots=TP))
  batch["sampler_logp_BxTr"] = (logp + 0.2 * (np.arange(TR) % 3 - 1)) * batch["mask_BxT"][:, TP:]
  batch["fresh_row_B"] = batch["row_valid_B"] & (np.arange(12) >= 2)
  cap = 1.1
  weights = np.minimum(np.exp(batch["old_logp_BxTr"] - batch["sampler_logp_BxTr"]), cap)
  weights = np.where(batch["fresh_row_B"][:, None], weights, 1.0)
  loss, _ = numpy_loss(batch, weights=weights)
  _, metrics = run_update(batch, tis_cap=cap)
  assert float(metrics["train/loss"]) == pytest.approx(loss, rel=1e-4, abs=1e-6)
  assert float(metrics["train/loss"]) != pytest.approx(numpy_loss(batch)[0], rel=1e-3)
  _, off = run_update(batch)
  assert float(off["train/loss"]) == pytest.approx(numpy_loss(batch)[0], rel=1e-4, abs=1e-6)
  assert "train/tis_weight_mean" in metrics and "train/tis_weight_mean" not in off


def test_non_finite_new_parameters_are_not_applied():
  """rl.lr = inf: loss and gradient are finite, the parameters Adam would produce are not."""
  batch = make_batch()
  state, metrics = run_update(batch, lr=float("inf"))
  for x, y in zip(jax.tree.leaves(state.params), jax.tree.leaves(PARAMS)):
    np.testing.assert_array_equal(x, y)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.opt_state))
  assert int(state.skipped_steps) == 1 and int(state.step) == 0
  assert int(metrics["train/skipped_steps"]) == 1 and np.isfinite(float(metrics["train/loss"]))


def test_kl_at_padding_cannot_overflow_into_a_skipped_step():
  """A confident policy gives the pad token log-prob ~ -1000 where the reference holds a placeholder;
  exp(1000) was inf, inf * 0 = NaN, and the step was skipped."""
  params = jax.tree.map(np.array, PARAMS)
  params["final_norm"]["scale"] = params["final_norm"]["scale"] * 3e4
  batch = make_batch(noise=0.0, params=params)
  state, metrics = run_update(batch, beta=0.5, params=params)
  assert int(state.skipped_steps) == 0 and np.isfinite(float(metrics["train/loss"]))
  assert np.isfinite(float(metrics["train/kl"]))


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
  # Placed, as the training loop places it.
  state = jax.device_put(init_train_state(jax.tree.map(np.array, PARAMS), opt))
  for rows, seed in ((12, 0), (12, 1), (16, 2), (12, 3)):
    state, _ = update(state, make_batch(rows=rows, seed=seed))
  assert update._cache_size() == 2


# ---------------------------------------------------------------------------------------------------
# The packed layout (rl.pack): the same groups, several sequences per row, the same numbers.
# ---------------------------------------------------------------------------------------------------


def _groups(seed=0):
  """Groups of unequal sizes, prompt and response lengths, with a reused (Option II) response and an
  AERO posterior on an all-wrong group; sampler log-probs off-policy enough to clip."""
  from ar3po_jax.types import Group, Prompt, Response

  rng = np.random.default_rng(seed)
  groups = []
  for g, (size, prompt_len) in enumerate([(3, 2), (1, 4), (4, 3), (2, 1), (5, 2)]):
    prompt = Prompt(str(g), rng.integers(4, 32, prompt_len).astype(np.int32), "")
    responses = []
    for i in range(size):
      ids = rng.integers(4, 32, int(rng.integers(1, TR + 1))).astype(np.int32)
      logp = (-rng.uniform(2.5, 4.0, len(ids))).astype(np.float32)
      responses.append(Response(ids, logp, "", reward=float((i + g) % 2), reused=(g == 2 and i == 0)))
    train = [not (g == 0 and i == 1) for i in range(size)]
    groups.append(Group(prompt, responses, train, posterior_mean=0.3 if g == 3 else None))
  groups[3].responses[1].reward = 0.0  # all-wrong: AERO's posterior baseline
  return groups


def _both_layouts(groups):
  from ar3po_jax import batching

  unpacked, _ = batching.pack_update_batch(groups, TR, rows=16, pad_id=0)
  rows = batching.round_up(len(batching.pack_rows(groups, 24)), 2)  # even: two mini- or micro-batches
  packed, _ = batching.pack_update_batch_packed(groups, 24, rows=rows, responses=16, pad_id=0)
  return unpacked, packed


@pytest.mark.parametrize("settings", [{}, {"loss_agg": "seq_mean", "beta": 0.3, "micro_batch_rows": 2}])
def test_packed_update_equals_the_unpacked_one(settings):
  import optax

  unpacked, packed = _both_layouts(_groups())
  assert packed["mask_BxT"].mean() > unpacked["mask_BxT"].mean()  # fewer padded slots
  # SGD at lr 1: the parameter change is minus the gradient.
  update = jit_update(make_update_fn(MODEL, optax.sgd(1.0), UpdateSettings(**settings)))
  results = []
  for batch in (unpacked, packed):
    batch = dict(batch)
    if "ref_logp_BxT" in batch:
      batch["ref_logp_BxT"] = batch["old_logp_BxT"] - 0.1 * batch["response_BxT"]
    else:
      batch["ref_logp_BxTr"] = batch["old_logp_BxTr"] - 0.1 * batch["mask_BxT"][:, -TR:]
    state = init_train_state(jax.tree.map(np.array, PARAMS), optax.sgd(1.0))
    results.append(update(state, batch))
  (s0, m0), (s1, m1) = results
  assert 0 < float(m0["train/clip_frac"]) < 1
  for name in m0:
    np.testing.assert_allclose(float(m1[name]), float(m0[name]), rtol=1e-5, atol=1e-7, err_msg=name)
  for a, b, p in zip(jax.tree.leaves(s0.params), jax.tree.leaves(s1.params), jax.tree.leaves(PARAMS)):
    np.testing.assert_allclose(np.asarray(b) - p, np.asarray(a) - p, rtol=1e-4, atol=1e-7)


def test_packed_mini_batches_keep_whole_rows_and_exact_token_means():
  """Mini-batches split packed rows (rows m, N+m, ...): a response lives in one row, so each
  mini-batch's (sum, count) token-mean is exactly that of its own responses."""
  _, packed = _both_layouts(_groups())
  state, metrics = run_update(packed, lr=1e-2, mini_batches=2)
  assert int(state.step) == 2
  real_tokens = int((packed["response_BxT"] & packed["train_R"][packed["resp_of_token_BxT"]]).sum())
  assert float(metrics["train/tokens"]) == real_tokens
  # The first mini-batch is rows 0, 2, 4, ... with the advantages of the whole batch: the same rows
  # alone, their per-response fields intact, give the first step's numbers.
  first = {k: (v if k.endswith("_R") else v[0::2]) for k, v in packed.items()}
  _, alone = run_update(first, lr=1e-2)
  for name in ("clip_frac_first", "logprob_mismatch_mean", "logprob_mismatch_max"):
    want = float(alone["train/" + name.replace("_first", "")])
    assert float(metrics["train/" + name]) == pytest.approx(want, rel=1e-5, abs=1e-7), name
  assert float(alone["train/logprob_mismatch_mean"]) > 0


def test_packed_segments_do_not_see_each_other():
  from ar3po_jax import batching
  from ar3po_jax.sampling import score_packed

  _, packed = _both_layouts(_groups())
  row = 0
  assert packed["segment_BxT"][row].max() >= 2
  args = lambda b: (b["tokens_BxT"], b["segment_BxT"], b["positions_BxT"], b["response_BxT"])  # noqa: E731
  base = np.asarray(score_packed(PARAMS, *args(packed), model=MODEL))
  changed = dict(packed, tokens_BxT=packed["tokens_BxT"].copy())
  first = packed["segment_BxT"][row] == 1
  changed["tokens_BxT"][row, first] = (changed["tokens_BxT"][row, first] + 5) % 28 + 4
  after = np.asarray(score_packed(PARAMS, *args(changed), model=MODEL))
  others = packed["segment_BxT"][row] > 1
  np.testing.assert_array_equal(after[row, others], base[row, others])
  assert not np.allclose(after[row, first], base[row, first])
  # Each segment's log-probs equal those of its sequence scored alone in the unpacked layout.
  unpacked, _ = _both_layouts(_groups())
  alone = np.asarray(score(PARAMS, unpacked["tokens_BxT"], unpacked["mask_BxT"], model=MODEL, prompt_slots=8))
  for r in range(int(packed["response_valid_R"].sum())):
    where = packed["response_BxT"] & (packed["resp_of_token_BxT"] == r)
    n = int(where.sum())
    np.testing.assert_allclose(base[where], alone[r, :n], rtol=1e-5, atol=1e-6)
    assert batching.per_token(packed, np.arange(16) == r)[where].all()
