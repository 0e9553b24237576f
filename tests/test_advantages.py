import numpy as np

from ar3po_jax.advantages import group_advantages


def reference(rewards, groups, valid, post_mean, use_post, scale_by_std=True, eps=1e-6, ddof=1):
  """Plain NumPy, one group at a time (a group of one has advantage 0)."""
  out = np.zeros(len(rewards), np.float64)
  for g in set(groups[valid].tolist()):
    rows = (groups == g) & valid
    r = rewards[rows]
    adv = r - r.mean()
    if scale_by_std and len(r) > ddof:
      adv = adv / (r.std(ddof=ddof) + eps)
    out[rows] = adv
  u = np.clip(post_mean, eps, 1 - eps)
  posterior = (rewards - u) / np.sqrt(u * (1 - u)) if scale_by_std else rewards - u
  return np.where(valid, np.where(use_post, posterior, out), 0.0)


def random_batch(rng, rows=40):
  sizes = []
  while sum(sizes) < rows - 6:
    sizes.append(int(rng.integers(1, 10)))
  groups = np.concatenate([np.full(s, i) for i, s in enumerate(sizes)]).astype(np.int32)
  n = len(groups)
  pad = rows - n
  groups = np.concatenate([groups, np.arange(len(sizes), len(sizes) + pad)]).astype(np.int32)
  rewards = rng.integers(0, 2, rows).astype(np.float32) + rng.choice([0.0, -0.5], rows, p=[0.8, 0.2]).astype(np.float32)
  valid = np.arange(rows) < n
  post = rng.uniform(0.05, 0.95, rows).astype(np.float32)
  use = (rng.random(rows) < 0.3) & valid
  return rewards, groups, valid, post, use


def test_matches_numpy_on_random_variable_size_batches_with_padding():
  rng = np.random.default_rng(0)
  for _ in range(20):
    batch = random_batch(rng)
    for scale in (True, False):
      for ddof in (0, 1):
        got = np.asarray(group_advantages(*batch, scale_by_std=scale, std_ddof=ddof))
        np.testing.assert_allclose(got, reference(*batch, scale_by_std=scale, ddof=ddof), atol=1e-4)


def test_hand_computed_group_and_edge_cases():
  rewards = np.array([1, 0, 0, 0, 1, 1, 1, 0, 9], np.float32)
  groups = np.array([0, 0, 0, 0, 1, 1, 2, 3, 4], np.int32)
  valid = np.array([True] * 8 + [False])
  zeros = np.zeros(9, np.float32)
  adv = np.asarray(group_advantages(rewards, groups, valid, zeros + 0.5, np.zeros(9, bool)))
  # Group 0: mean 0.25, sample std (ddof 1, as verl) sqrt(0.75 / 3) = 0.5; all-correct group 1,
  # singleton groups 2 and 3, padding row: 0.
  np.testing.assert_allclose(adv[:4], [0.75 / 0.5, -0.25 / 0.5, -0.25 / 0.5, -0.25 / 0.5], rtol=1e-5)
  np.testing.assert_array_equal(adv[4:], 0.0)
  # The population std (ddof 0) stays available: sqrt(3) / 4.
  pop = np.asarray(group_advantages(rewards, groups, valid, zeros + 0.5, np.zeros(9, bool), std_ddof=0))
  np.testing.assert_allclose(pop[:2], [0.75 / (np.sqrt(3) / 4), -0.25 / (np.sqrt(3) / 4)], rtol=1e-5)
  np.testing.assert_array_equal(pop[4:], 0.0)


def test_posterior_baseline_for_degenerate_groups():
  rewards = np.array([0, 0, 0, 1, 1], np.float32)
  groups = np.array([0, 0, 0, 1, 1], np.int32)
  post = np.array([0.2, 0.2, 0.2, 0.75, 0.75], np.float32)
  adv = np.asarray(group_advantages(rewards, groups, np.ones(5, bool), post, np.ones(5, bool)))
  np.testing.assert_allclose(adv[:3], -0.2 / np.sqrt(0.16), rtol=1e-5)  # all wrong: pushed down
  np.testing.assert_allclose(adv[3:], 0.25 / np.sqrt(0.1875), rtol=1e-5)  # all right: pushed up


def test_posterior_baseline_is_not_scaled_without_scale_by_std():
  rewards = np.array([0, 0, 1, 1], np.float32)
  groups = np.array([0, 0, 1, 1], np.int32)
  post = np.array([0.2, 0.2, 0.75, 0.75], np.float32)
  adv = np.asarray(group_advantages(rewards, groups, np.ones(4, bool), post, np.ones(4, bool), scale_by_std=False))
  # Dr. GRPO style: r - u, no division by sqrt(u (1 - u)).
  np.testing.assert_allclose(adv, [-0.2, -0.2, 0.25, 0.25], rtol=1e-6)


def test_padding_rows_change_nothing():
  rng = np.random.default_rng(1)
  rewards, groups, valid, post, use = random_batch(rng, rows=30)
  base = np.asarray(group_advantages(rewards, groups, valid, post, use))
  rewards2 = rewards.copy()
  rewards2[~valid] = 100.0
  np.testing.assert_array_equal(np.asarray(group_advantages(rewards2, groups, valid, post, use)), base)
