"""Group-relative advantages over a flat batch of variable-size groups.

Rows carry a group id; group statistics come from segment sums, never from reshaping to a fixed
group size, so groups of 1, 4, 9 or 16 responses share one compiled function. Padding rows
(row_valid False) weigh nothing in any statistic and get advantage 0.

From the paper: GRPO (Shao et al., 2024): A_i = (r_i - mean(r_group)) / (std(r_group) + eps); Dr. GRPO
drops the std. verl's GRPO estimator (the papers' framework) takes the sample std (torch.std, ddof 1).
Our choices: ddof 1 by default (`rl.adv_std_ddof`; 0 gives the population std this project used
before); a group of one has A = 0 with no special case (verl instead gives it mean 0, std 1, A = r).
AERO (our reconstruction, see docs/ALGORITHMS.md): a degenerate group (all rewards equal) that carries a
posterior mean u takes A_i = (r_i - u) / sqrt(u (1 - u)) instead of 0, or r_i - u when the run does
not scale by the std (Dr. GRPO style): the posterior std is a std like any other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def group_advantages(
    rewards_B: jax.Array,
    group_ids_B: jax.Array,
    row_valid_B: jax.Array,
    posterior_mean_B: jax.Array,
    use_posterior_B: jax.Array,
    *,
    scale_by_std: bool = True,
    eps: float = 1e-6,
    std_ddof: int = 1,
) -> jax.Array:
  """Per-row advantages [B]; group ids must lie in [0, B)."""
  num_segments = rewards_B.shape[0]
  weight_B = row_valid_B.astype(jnp.float32)
  count_G = jax.ops.segment_sum(weight_B, group_ids_B, num_segments)
  total_G = jax.ops.segment_sum(rewards_B * weight_B, group_ids_B, num_segments)
  mean_G = total_G / jnp.maximum(count_G, 1.0)
  centred_B = rewards_B - mean_G[group_ids_B]
  # ddof 1 on a group of one divides 0 by max(0, 1): A stays 0.
  var_G = jax.ops.segment_sum(centred_B**2 * weight_B, group_ids_B, num_segments) / jnp.maximum(count_G - std_ddof, 1.0)
  std_B = jnp.sqrt(var_G)[group_ids_B]
  grpo_B = centred_B / (std_B + eps) if scale_by_std else centred_B
  u_B = jnp.clip(posterior_mean_B, eps, 1.0 - eps)
  posterior_B = rewards_B - u_B
  if scale_by_std:
    posterior_B = posterior_B / jnp.sqrt(u_B * (1.0 - u_B))
  advantages_B = jnp.where(use_posterior_B, posterior_B, grpo_B)
  return jnp.where(row_valid_B, advantages_B, 0.0)
