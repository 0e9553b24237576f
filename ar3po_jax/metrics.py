"""Where metrics go: one JSON line per step, TensorBoard events (scalars, and sampled completions as
text at each evaluation), a live progress bar, and at the end a summary table and a plot of eval
accuracy against cumulative sampled responses.

Every metric name is documented once, in `DOCS` below; a strategy documents its own per-step metrics
in its `metrics_doc` (only the running strategy's are logged). `documentation(name)` finds either.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import numpy as np

# "sampled" excludes reused responses; a ratio with a zero denominator is NaN (null in metrics.jsonl).
DOCS: dict[str, str] = {
    "step": "RL step; 0 is the evaluation before RL",
    "eval/accuracy": "fraction of held-out prompts whose greedy (temperature 0) response is correct (eval steps only)",
    # Configs with eval.samples only: k = eval.samples responses a prompt at eval.temperature / eval.top_p.
    "eval/<set>/avg@k": "mean reward of the k responses per prompt of one held-out set",
    "eval/<set>/pass@k": "fraction of that set's prompts with a correct response among k (unbiased estimator)",
    # The update takes S = rl.epochs x rl.mini_batches optimizer steps; "mean" is over those S steps.
    "train/loss": "clipped-ratio loss (+ beta * k3 KL), aggregated per rl.loss_agg; mean over the S steps",
    "train/clip_frac": "fraction of trained tokens where the clip bound the objective; mean over the S steps",
    "train/clip_frac_first": "clip fraction of the first optimizer step (0 on-policy)",
    "train/clip_frac_last": "clip fraction of the last optimizer step",
    "train/kl": "token-mean k3 KL to the reference policy (0 without one)",
    "train/kl_old": "token-mean k3 estimate of KL(pi_theta || pi_old); mean over the S steps",
    "train/kl_old_last": "the same at the last optimizer step",
    "train/ratio_mean": "token-mean pi_theta / pi_old before each step (1 when on-policy); mean over the S steps",
    "train/ratio_mean_last": "token-mean pi_theta / pi_old at the last optimizer step",
    "train/ratio_min": "smallest per-token pi_theta / pi_old over all S steps",
    "train/ratio_max": "largest per-token pi_theta / pi_old over all S steps",
    "train/logp_mean": "token-mean log-prob of trained tokens",
    "train/logprob_mismatch_mean":
        "mean |sampler - trainer| log-prob of fresh tokens, first mini-batch, before any step",
    "train/logprob_mismatch_max": "max |sampler - trainer| log-prob of fresh tokens, first mini-batch, before any step",
    "train/tis_weight_mean": "mean truncated importance weight min(pi_old / pi_sampler, rl.tis_cap) (rl.tis_cap > 0)",
    "train/optimizer_steps": "optimizer steps applied in this update (S, less any skipped)",
    "train/grad_norm": "global gradient norm, before clipping; mean over the S steps",
    "train/tokens": "tokens that received gradient (one epoch)",
    "train/adv_abs_mean": "mean |advantage| over rows",
    "train/skipped_steps": "cumulative updates skipped for a non-finite loss, gradient or new parameters",
    "train/lr": "learning rate of the step's optimizer update (schedule included)",
    "train/entropy": "token-mean policy entropy over trained tokens",
    "train/rows": "responses in the update batch (one a row unless rl.pack)",
    "train/row_bucket": "padded rows of the update batch",
    "train/response_slots": "response slots of the update batch (one of rl.response_buckets lengths)",
    "train/padding_efficiency": "real tokens (prompts and responses, every packed segment) / all token slots of the"
        " update batch (rows x row length)",
    "train/row_length": "token slots of a packed update row (rl.pack; fixed per run)",
    "train/packed_rows": "rows the packed responses fill (rl.pack); train/row_bucket pads them",
    "train/compiled_variants": "distinct update shapes compiled so far (rows x prompt and response slots, or rows x"
        " row length when packed)",
    "rollout/responses": "responses sampled in the step",
    "rollout/tokens": "tokens of the responses sampled",
    "rollout/response_len_mean": "mean length in tokens of the responses sampled",
    "rollout/response_len_max": "longest response sampled, in tokens",
    "rollout/prompts_drawn": "prompts taken from the data stream (DAPO: all generation batches)",
    "rollout/responses_per_prompt": "rollout/responses / rollout/prompts_drawn",
    "rollout/responses_per_kept_prompt": "rollout/responses / rollout/prompts (differs from the above only for DAPO)",
    "rollout/responses_per_prompt_hist": '{"n": number of drawn prompts sampled n responses}',
    "rollout/stages": "stages run (streamed: the most stages any prompt ran; DAPO: generation batches)",
    "rollout/prompts": "groups (prompts) handed to the update",
    "rollout/train_responses": "responses in those groups, reused included",
    "rollout/masked_responses": "responses in those groups with train_mask False",
    "rollout/reused": "reused responses added from the buffer",
    "rollout/frac_zero_adv_groups_before_reuse": "fraction of groups with zero advantage, reused rows left out",
    "rollout/frac_zero_adv_groups":
        "fraction of groups with all training rewards equal or one response, and no posterior_mean",
    "rollout/frac_all_wrong_before_reuse": "fraction of groups whose sampled responses are all wrong",
    "rollout/frac_all_wrong": "fraction of groups with no correct response, reused included",
    "rollout/reward_mean": "mean verifier reward over all sampled responses",
    "rollout/empty": "1 when no group was formed (the trainer skips the update)",
    "rollout/cum_responses": "responses sampled since the start of RL",
    "rollout/cum_tokens": "response tokens sampled since the start of RL",
    "buffer/size": "responses in the replay buffer after this step's additions",
    "buffer/staleness": "mean (step - producing step) over this step's reused responses",
    "verify/*":
        "the verifier's counters for this step's calls, where it keeps any (MathVerifier: errors, timeouts, ...)",
    "time/sample_s": "seconds inside sampler calls (streamed stages: inside the engine's polls)",
    "rollout/slot_utilization":
        "engine (rollout.sampler=engine): live row-steps / all row-steps of this step's rollout decode calls",
    "rollout/tokens_per_s": "engine: response tokens / seconds inside this step's rollout engine iterations",
    "engine/decode_calls": "engine: decode calls of N steps in this step's rollout",
    "engine/prefill_calls": "engine: prefill calls in this step's rollout",
    "time/verify_s": "seconds inside verifier calls",
    "time/update_s": "seconds in the update (old/ref log-prob passes included)",
    "time/eval_s": "seconds in the held-out evaluation after this step (only on steps that evaluate)",
    "time/step_s": "seconds for the whole step (evaluation included)",
    "time/elapsed_s": "seconds since RL started",
}
TEXT_DOCS = {
    "eval/samples": "TensorBoard text at each evaluation: a few held-out prompts, the policy's completions and rewards",
}


def is_timing(name: str) -> bool:
  """Whether a metric measures wall-clock (differs between two runs of the same computation)."""
  return name.startswith("time/") or name == "rollout/tokens_per_s"


def documentation(name: str, strategy_docs: dict[str, str] | None = None) -> str | None:
  """The documented meaning of a logged metric name (None: undocumented)."""
  if name in DOCS:
    return DOCS[name]
  if strategy_docs and name in strategy_docs:
    return strategy_docs[name]
  parts = name.split("/")
  if len(parts) == 3 and parts[0] == "eval" and parts[2].partition("@")[0] in ("avg", "pass"):
    return DOCS.get(f"eval/<set>/{parts[2].partition('@')[0]}@k")  # eval/gsm8k/pass@4
  prefix = name.split("/")[0] + "/*"
  return DOCS.get(prefix)


@dataclasses.dataclass
class RunCounters:
  """What a run accumulates across steps (rollout/cum_*, train/compiled_variants); checkpointed."""

  cum_responses: int = 0
  cum_tokens: int = 0
  compiled_shapes: set[tuple[int, ...]] = dataclasses.field(default_factory=set)

  def state_dict(self) -> dict:
    return {
        "cum_responses": self.cum_responses,
        "cum_tokens": self.cum_tokens,
        "compiled_shapes": sorted(self.compiled_shapes),
    }

  def load_state_dict(self, state: dict) -> None:
    self.cum_responses, self.cum_tokens = int(state["cum_responses"]), int(state["cum_tokens"])
    self.compiled_shapes = {tuple(s) for s in state["compiled_shapes"]}


# What the progress bar and the summary show, in order.
_LIVE = (
    "eval/accuracy", "rollout/reward_mean", "rollout/responses_per_prompt", "rollout/frac_zero_adv_groups",
    "train/clip_frac",
)


def _jsonable(value: Any):
  if isinstance(value, (np.floating, np.integer)):
    value = value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  return value


class MetricsWriter:
  """Writes metrics of one process; only process 0 of a multi-host run should hold an active one."""

  def __init__(self, workdir: str, tensorboard: bool = True, active: bool = True, append: bool = False):
    self.workdir, self.active = workdir, active
    self.history: list[dict] = []
    self._tb = None
    if not active:
      return
    os.makedirs(workdir, exist_ok=True)
    self._file = open(os.path.join(workdir, "metrics.jsonl"), "a" if append else "w")
    if tensorboard:
      from tensorboardX import SummaryWriter

      self._tb = SummaryWriter(os.path.join(workdir, "tb"))

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    record = {"step": int(step), **{k: _jsonable(v) for k, v in metrics.items()}}
    self.history.append(record)
    if not self.active:
      return
    self._file.write(json.dumps(record, sort_keys=True) + "\n")
    self._file.flush()
    if self._tb is not None:
      for name, value in record.items():
        if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
          self._tb.add_scalar(name, value, step)

  def write_text(self, step: int, name: str, text: str) -> None:
    """TensorBoard text (markdown) at `step`, e.g. sampled completions with their rewards; a no-op
    without TensorBoard (metrics.jsonl keeps numbers only)."""
    if self.active and self._tb is not None:
      self._tb.add_text(name, text, step)

  def close(self) -> None:
    if self.active:
      self._file.close()
      if self._tb is not None:
        self._tb.close()


def samples_markdown(samples: list[dict[str, Any]], max_chars: int = 2000) -> str:
  """A markdown table of sampled completions: prompt, completion, answer and reward per row."""

  def cell(text: Any) -> str:
    text = str(text)
    text = text if len(text) <= max_chars else text[:max_chars] + " ..."
    return text.replace("|", "\\|").replace("\n", "<br>")

  lines = ["| prompt | completion | answer | reward |", "|---|---|---|---|"]
  for s in samples:
    lines.append(f"| {cell(s['prompt'])} | {cell(s['completion'])} | {cell(s['answer'])} | {s['reward']:g} |")
  return "\n".join(lines)


def live_postfix(metrics: dict[str, Any]) -> dict[str, str]:
  """Short labels for the progress bar."""
  out = {}
  for name in _LIVE:
    value = metrics.get(name)
    if isinstance(value, (int, float)) and value is not None:
      out[name.split("/")[-1]] = f"{value:.3g}"
  return out


def summary_table(history: list[dict], warm_start_accuracy: float | None = None) -> str:
  """The closing table: accuracy at the start and end, rollout cost, time."""
  evals = [(r["step"], r["eval/accuracy"]) for r in history if r.get("eval/accuracy") is not None]
  rows = []
  if evals:
    first, last = evals[0][1], evals[-1][1]
    rows.append(("eval/accuracy (first -> last)", f"{first:.3f} -> {last:.3f}  ({100 * (last - first):+.1f} points)"))
  steps = [r for r in history if "rollout/responses" in r]
  if steps:
    responses = sum(r["rollout/responses"] for r in steps)
    tokens = sum(r.get("rollout/tokens", 0) for r in steps)
    rows.append(("RL steps", str(len(steps))))
    rows.append(("responses sampled", f"{int(responses):,}"))
    rows.append(("response tokens sampled", f"{int(tokens):,}"))
    for name in (
        "rollout/responses_per_prompt", "rollout/frac_zero_adv_groups", "rollout/reward_mean", "train/clip_frac"
    ):
      values = [r[name] for r in steps if isinstance(r.get(name), (int, float))]
      if values:
        rows.append((f"{name} (mean)", f"{np.mean(values):.3f}"))
    elapsed = steps[-1].get("time/elapsed_s")
    if elapsed:
      rows.append(("RL wall-clock", f"{elapsed:.0f} s"))
  width = max((len(k) for k, _ in rows), default=10)
  return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def plot_accuracy_vs_responses(history: list[dict], path: str, title: str = "") -> None:
  """PNG of eval/accuracy against cumulative sampled responses."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import matplotlib.ticker

  points = [
      (r.get("rollout/cum_responses", 0), r["eval/accuracy"]) for r in history if r.get("eval/accuracy") is not None
  ]
  if not points:
    return
  xs, ys = zip(*points)
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.plot(xs, ys, marker="o")
  ax.set_xlabel("cumulative sampled responses")
  ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))
  ax.set_ylabel("held-out greedy accuracy")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
