import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ar3po_jax import losses


def test_clipped_loss_hand_computed():
  logp = np.log(np.array([[1.5, 0.5, 1.1]], np.float32))
  old = np.zeros((1, 3), np.float32)
  for adv, expected, clipped in (
      (1.0, [-1.2, -0.5, -1.1], [True, False, False]),  # A > 0: ratio capped at 1 + eps_high
      (-1.0, [1.5, 0.8, 1.1], [False, True, False]),  # A < 0: ratio floored at 1 - eps_low
  ):
    loss, was_clipped = losses.clipped_policy_loss(logp, old, np.array([adv], np.float32), 0.2, 0.2)
    np.testing.assert_allclose(np.asarray(loss)[0], expected, rtol=1e-5)
    assert np.asarray(was_clipped)[0].tolist() == clipped


def test_clip_higher_is_asymmetric():
  logp = np.log(np.array([[1.25]], np.float32))
  loss, _ = losses.clipped_policy_loss(logp, np.zeros((1, 1), np.float32), np.array([1.0], np.float32), 0.2, 0.28)
  np.testing.assert_allclose(np.asarray(loss), [[-1.25]], rtol=1e-6)  # inside [0.8, 1.28]: not clipped


def test_k3_kl_is_zero_at_equality_and_positive_otherwise():
  logp = np.log(np.array([[0.5, 0.2]], np.float32))
  ref = np.log(np.array([[0.5, 0.4]], np.float32))
  kl = np.asarray(losses.k3_kl(logp, ref))
  assert kl[0, 0] == pytest.approx(0.0, abs=1e-7)
  assert kl[0, 1] == pytest.approx(2.0 - np.log(2.0) - 1.0, rel=1e-5)


def test_token_mean_and_seq_mean_hand_computed():
  values = np.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], np.float32)
  mask = np.array([[True, True, True], [True, False, False]])
  s, n = losses.aggregate(values, mask, "token_mean")
  assert (float(s), float(n)) == (10.0, 4.0)
  s, n = losses.aggregate(values, mask, "seq_mean")
  assert (float(s), float(n)) == (6.0, 2.0)  # (2 + 4) over 2 sequences
  with pytest.raises(ValueError, match="rl.loss_agg"):
    losses.aggregate(values, mask, "mean")


def test_k3_kl_is_not_evaluated_at_masked_positions():
  # Padding: a placeholder ref log-prob 0 against a pad token the policy finds very unlikely.
  logp = np.array([[-0.5, -120.0]], np.float32)
  ref = np.array([[-0.4, 0.0]], np.float32)
  mask = np.array([[True, False]])
  kl = np.asarray(losses.k3_kl(logp, ref, mask))
  assert np.isfinite(kl).all() and kl[0, 1] == 0.0
  assert kl[0, 0] == pytest.approx(np.exp(0.1) - 0.1 - 1.0, rel=1e-5)
  # Unmasked, exp(120) overflows float32: inf * 0 in a masked sum is the NaN that skipped steps.
  assert np.isnan(np.sum(np.asarray(losses.k3_kl(logp, ref)) * mask))
  grad = jax.grad(lambda lp: jnp.sum(losses.k3_kl(lp, ref, mask) * mask))(jnp.asarray(logp))
  assert np.isfinite(np.asarray(grad)).all()


def test_truncated_is_weights_hand_computed():
  trainer = np.log(np.array([[0.5, 0.9, 0.2]], np.float32))
  sampler = np.log(np.array([[0.25, 0.9, 0.4]], np.float32))
  w = np.asarray(losses.truncated_is_weights(trainer, sampler, 1.5))
  np.testing.assert_allclose(w, [[1.5, 1.0, 0.5]], rtol=1e-6)  # 2.0 capped at 1.5; 1; 0.5


def test_seq_mean_over_packed_sequences_hand_computed():
  """Packed rows: sequence ids per token. Row 0 holds sequences 0 (2 tokens) and 2 (1 token), row 1
  holds sequence 1 (3 tokens); sequence 3 has no token in this batch and does not count."""
  values = jnp.array([[1.0, 3.0, 6.0, 9.0], [2.0, 4.0, 6.0, 5.0]])
  mask = jnp.array([[True, True, True, False], [True, True, True, False]])
  seq_ids = jnp.array([[0, 0, 2, 0], [1, 1, 1, 0]])
  total, count = losses.aggregate(values, mask, "seq_mean", seq_ids, num_seqs=4)
  assert float(count) == 3.0
  assert float(total) == pytest.approx(2.0 + 4.0 + 6.0)  # means 2, 4 and 6
  total, count = losses.aggregate(values, mask, "token_mean", seq_ids, num_seqs=4)
  assert float(total) == pytest.approx(22.0) and float(count) == 6.0
  # Per-token advantages ([B, T]) broadcast like per-row ones.
  logp = jnp.zeros((2, 4))
  per_row, _ = losses.clipped_policy_loss(logp, logp, jnp.array([1.0, -2.0]), 0.2, 0.2)
  per_token, _ = losses.clipped_policy_loss(logp, logp, jnp.array([[1.0] * 4, [-2.0] * 4]), 0.2, 0.2)
  np.testing.assert_array_equal(per_row, per_token)
