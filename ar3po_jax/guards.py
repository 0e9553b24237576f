"""Stops a run whose updates keep failing, instead of spending its budget on steps that change nothing.

The compiled update skips a step whose loss, gradient or new parameters are not finite (parameters and
optimizer state stay as they were) and counts it in `train/skipped_steps`. One skipped step can be a
fluke (an extreme batch); several in a row mean the run cannot recover by itself (a learning rate that
overflows, parameters already damaged), and every further step only burns rollout compute.

Our choices: the limit counts consecutive steps that had an update (a step without groups neither
extends nor breaks the streak); it restarts at zero on resume; 0 turns the check off.
"""

from __future__ import annotations


class TooManySkippedSteps(SystemExit):
  """Ends the run (exit code 1) with a message naming the cause."""

  def __init__(self, message: str, step: int):
    super().__init__(message)
    self.step = step


class SkippedStepGuard:
  def __init__(self, limit: int, skipped_so_far: int = 0):
    self.limit = limit
    self.total = int(skipped_so_far)
    self.in_a_row = 0

  def observe(self, step: int, skipped_total: float | None, metrics: dict | None = None) -> None:
    """skipped_total: the step's cumulative `train/skipped_steps` (None: the step had no update)."""
    if skipped_total is None:
      return
    skipped_total = int(skipped_total)
    self.in_a_row = self.in_a_row + 1 if skipped_total > self.total else 0
    self.total = skipped_total
    if self.limit and self.in_a_row >= self.limit:
      m = metrics or {}
      seen = ", ".join(f"{k} {m[k]:.4g}" for k in ("train/loss", "train/grad_norm") if k in m)
      raise TooManySkippedSteps(
          f"stopping at step {step}: the last {self.in_a_row} updates were all skipped because the loss, the gradient "
          f"or the new parameters were not finite (train/skipped_steps {skipped_total}"
          + (f"; last step {seen}" if seen else "")
          + "). The parameters are those of the last applied update. Check rl.lr, rl.grad_clip and the data, "
          "or raise rl.max_skipped_steps (0: never stop)",
          step,
      )
