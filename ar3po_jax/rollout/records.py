"""What the run logs per step for its own analyses (`ar3po_jax.analyze`): WORKDIR/records.jsonl.

One JSON line per RL step, written by process 0 after the step's metrics:

  step        the sampling step (0-based, as `Response.step`; metrics.jsonl logs the same step's
              metrics under step + 1, the number of updates done after it)
  prompts     one entry per prompt drawn this step, in drawing order:
                uid      the prompt's uid
                sampled  fresh responses sampled for it in each stage run this step ([n_0, n_1, ...],
                         one entry per stage of the step, 0 where it got none)
                correct  how many of those were correct, per stage (verifier reward >= 0.5)
  reuse       one entry per reused response in the step's final groups:
                uid      the prompt
                sampled_step  the step whose policy sampled the reused response
                age      step - sampled_step (>= 1: a step never reuses its own responses)
                spread   the population std of the group's training rewards, reused ones included
                nonzero  the group has a non-zero advantage (rewards not all equal; AERO's posterior
                         baseline counts as non-zero), i.e. the reuse gave the group a gradient
  withheld    one entry per prompt of AR3PO's matched control (rollout.ar3po.reuse_control) that
              ended all wrong with a response buffered, which it was not given:
                uid, sampled_step, age   as for `reuse`, of the response withheld
  full_draw   only at steps where `analysis.full_draw_every` asks for one (train.py): before the
              update, `samples` fresh responses for up to `analysis.full_draw_prompts` of the step's
              drawn prompts at the same policy; `pass_rates` maps uid -> fraction correct.

Our choices: the records hold counts, never texts or tokens (a 100-step run writes well under a
megabyte); a resumed run drops the records of steps it redoes, as metrics.jsonl does.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from ar3po_jax.rollout.strategies.base import StepState, is_correct, rewards_all_equal
from ar3po_jax.types import Group, Prompt

RECORDS_FILE = "records.jsonl"


def step_records(state: StepState, groups: Sequence[Group], step: int) -> dict:
  """The step's record (module docstring) from the scheduler's state and the final groups. Pure."""
  stages = max(int(state.stages_run), 1 + max((r.stage for s in state.slots for r in s.responses), default=-1))
  prompts = []
  for slot in state.slots:
    sampled, correct = [0] * stages, [0] * stages
    for r in slot.responses:
      sampled[r.stage] += 1
      correct[r.stage] += int(is_correct(r))
    prompts.append({"uid": slot.prompt.uid, "sampled": sampled, "correct": correct})
  reuse = []
  for group in groups:
    reused = [r for r in group.responses if r.reused]
    if not reused:
      continue
    spread = float(np.std(group.rewards)) if group.size else 0.0
    nonzero = group.posterior_mean is not None or not rewards_all_equal(group)
    for r in reused:
      reuse.append({
          "uid": group.prompt.uid, "sampled_step": int(r.step), "age": int(step) - int(r.step),
          "spread": round(spread, 6), "nonzero": bool(nonzero),
      })
  withheld = [
      {"uid": g.prompt.uid, "sampled_step": int(g.withheld_step), "age": int(step) - int(g.withheld_step)}
      for g in groups if g.withheld_step is not None
  ]
  return {"step": int(step), "prompts": prompts, "reuse": reuse, "withheld": withheld}


def full_draw_due(analysis_config, step: int) -> bool:
  """Whether sampling step `step` (0-based) gets a full draw: every `full_draw_every` steps, from the first."""
  every = int(analysis_config.get("full_draw_every", 0)) if analysis_config is not None else 0
  return every > 0 and step % every == 0


def full_draw(sampler, verifier, train_prompts: Sequence[Prompt], record: dict, analysis_config) -> dict:
  """G fresh samples for the first `full_draw_prompts` prompts of the step's record, at the sampler's
  current policy and settings: {"samples": G, "pass_rates": {uid: fraction correct}}."""
  from ar3po_jax import evaluation  # JAX-side; the record building above stays importable without it

  by_uid = {p.uid: p for p in train_prompts}
  uids = list(dict.fromkeys(e["uid"] for e in record["prompts"]))[: int(analysis_config.full_draw_prompts)]
  prompts = [by_uid[u] for u in uids if u in by_uid]
  samples = int(analysis_config.full_draw_samples)
  if not prompts or samples < 1:
    return {"samples": samples, "pass_rates": {}}
  out = evaluation.sample_and_verify(sampler, prompts, verifier, samples, len(prompts) * samples)
  rates = out["rewards"].mean(axis=1)
  return {"samples": samples, "pass_rates": {p.uid: round(float(r), 6) for p, r in zip(prompts, rates)}}


class RecordLog:
  """Appends step records to WORKDIR/records.jsonl on the active process (process 0).

  restored_step: the step a resumed run continues from (updates done); the records of sampling steps
  >= it are dropped, since the run redoes those steps. None: a fresh run, which starts a fresh file."""

  def __init__(self, workdir: str, active: bool, restored_step: int | None = None):
    self.path = os.path.join(workdir, RECORDS_FILE)
    self.active = active
    if not active:
      return
    kept = rewind(self.path, restored_step) if restored_step is not None else []
    with open(self.path + ".tmp", "w") as f:
      f.writelines(kept)
    os.replace(self.path + ".tmp", self.path)

  def write(self, record: dict | None) -> None:
    if self.active and record is not None:
      with open(self.path, "a") as f:
        f.write(json.dumps(record, separators=(",", ":")) + "\n")


def rewind(path: str, restored_step: int) -> list[str]:
  """The lines of `path` whose sampling step is < restored_step, stopping at a line cut short by a kill."""
  kept = []
  if os.path.isfile(path):
    with open(path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          break
        if record["step"] < restored_step:
          kept.append(line if line.endswith("\n") else line + "\n")
  return kept


def read(workdir_or_path: str) -> list[dict]:
  """Every record of a workdir (or a records.jsonl path), in step order; a cut last line is skipped."""
  path = workdir_or_path
  if os.path.isdir(path):
    path = os.path.join(path, RECORDS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no step records (the run writes them to WORKDIR/{RECORDS_FILE})")
  out = []
  with open(path) as f:
    for i, line in enumerate(f):
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      if not isinstance(record, dict) or "step" not in record or "prompts" not in record:
        raise ValueError(f"{path} line {i + 1}: not a step record (needs 'step' and 'prompts')")
      out.append(record)
  return sorted(out, key=lambda r: r["step"])
