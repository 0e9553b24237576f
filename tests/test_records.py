"""The run's step records (ar3po_jax/rollout/records.py): hand-built scheduler states, the scheduler
stamping each response with its stage, the log's resume rewind, and a short real run on the fake task."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ar3po_jax.rollout import ReplayBuffer, Scheduler, make_strategy, records
from ar3po_jax.rollout.strategies.base import StepState
from ar3po_jax.types import Group, Prompt, Response


def _prompt(uid: str) -> Prompt:
  return Prompt(uid, np.asarray([1, 2], np.int32), "1")


def _response(reward: float, stage: int = 0, step: int = 5, reused: bool = False) -> Response:
  return Response(np.asarray([3], np.int32), np.asarray([-0.5], np.float32), "x", reward=reward, step=step,
                  reused=reused, stage=stage)


def test_step_records_count_per_stage_and_log_reuse_ages():
  state = StepState(step=5, stages_run=2)
  state.add_prompts([_prompt("a"), _prompt("b")])
  # a: stage 0 gives 1 of 2 correct and it stops; b: 0 of 2, then 0 of 2 in stage 1, then a reused one.
  state.slots[0].responses = [_response(1.0), _response(0.0)]
  state.slots[1].responses = [_response(0.0), _response(0.0), _response(0.0, 1), _response(0.0, 1)]
  old = _response(1.0, stage=1, step=2, reused=True)
  groups = [
      Group(state.slots[0].prompt, list(state.slots[0].responses), [True] * 2),
      Group(state.slots[1].prompt, state.slots[1].responses + [old], [True] * 5),
  ]
  rec = records.step_records(state, groups, 5)
  assert rec["step"] == 5
  assert rec["prompts"] == [
      {"uid": "a", "sampled": [2, 0], "correct": [1, 0]},
      {"uid": "b", "sampled": [2, 2], "correct": [0, 0]},
  ]
  # Rewards of b's group: four 0s and one 1: population std sqrt(0.2 * 0.8) = 0.4.
  assert rec["reuse"] == [{"uid": "b", "sampled_step": 2, "age": 3, "spread": 0.4, "nonzero": True}]
  json.dumps(rec)  # the record is plain JSON


def test_a_reused_response_that_leaves_the_group_uniform_has_no_spread():
  state = StepState(step=4, stages_run=1)
  state.add_prompts([_prompt("a")])
  state.slots[0].responses = [_response(1.0), _response(1.0)]
  group = Group(state.slots[0].prompt, state.slots[0].responses + [_response(1.0, step=1, reused=True)], [True] * 3)
  (event,) = records.step_records(state, [group], 4)["reuse"]
  assert event == {"uid": "a", "sampled_step": 1, "age": 3, "spread": 0.0, "nonzero": False}


class _ScriptedSampler:
  """Prompt 'hard' always wrong, every other prompt right on every second response."""

  def __call__(self, prompts, counts, step):
    del step
    out = []
    for p, n in zip(prompts, counts):
      out.append([Response(np.asarray([3], np.int32), np.asarray([-1.0], np.float32),
                           "0" if p.uid == "hard" else str(i % 2)) for i in range(n)])
    return out


def _verify(texts, answers):
  return np.asarray([float(t == a) for t, a in zip(texts, answers)], np.float32)


def test_the_scheduler_stamps_stages_and_hands_the_record_over():
  from configs import tiny

  rollout_cfg = tiny.get_config("ar3po").rollout
  rollout_cfg.batch_prompts = 2
  strategy = make_strategy(rollout_cfg)
  prompts = [_prompt("hard"), _prompt("easy")]
  buffer = ReplayBuffer(2, 100)
  buffer.add("hard", _response(1.0, step=0), 0)  # an old correct answer to 'hard': reused at step 3

  class Source:
    def __call__(self, n):
      return prompts[:n]

  result = Scheduler(strategy, _ScriptedSampler(), _verify, buffer, Source()).rollout(3, np.random.default_rng(0))
  rec = result.records
  by_uid = {e["uid"]: e for e in rec["prompts"]}
  # AR3PO (2 stages of 4): 'easy' is mixed after stage 0 and stops; 'hard' gets a second stage, all wrong.
  assert by_uid["easy"] == {"uid": "easy", "sampled": [4, 0], "correct": [2, 0]}
  assert by_uid["hard"] == {"uid": "hard", "sampled": [4, 4], "correct": [0, 0]}
  (event,) = rec["reuse"]
  assert {k: event[k] for k in ("uid", "sampled_step", "age", "nonzero")} == {
      "uid": "hard", "sampled_step": 0, "age": 3, "nonzero": True}
  assert event["spread"] == pytest.approx(np.std([0.0] * 8 + [1.0]), abs=1e-6)
  fresh = [r for g in result.groups for r in g.responses if not r.reused]
  assert sorted({r.stage for r in fresh}) == [0, 1]
  assert sum(sum(e["sampled"]) for e in rec["prompts"]) == result.metrics["rollout/responses"]


def test_the_log_rewinds_to_the_restored_step_and_appends(tmp_path):
  path = tmp_path / records.RECORDS_FILE
  path.write_text("".join(json.dumps({"step": s, "prompts": [], "reuse": []}) + "\n" for s in range(4)) + '{"step": 4')
  log = records.RecordLog(str(tmp_path), active=True, restored_step=2)  # steps 0 and 1 were checkpointed
  log.write({"step": 2, "prompts": [], "reuse": []})
  assert [r["step"] for r in records.read(str(tmp_path))] == [0, 1, 2]
  records.RecordLog(str(tmp_path), active=True)  # a fresh run starts a fresh file
  assert records.read(str(tmp_path)) == []
  inactive = records.RecordLog(str(tmp_path / "nowhere"), active=False)
  inactive.write({"step": 0, "prompts": [], "reuse": []})  # other processes write nothing
  assert not (tmp_path / "nowhere").exists()


def test_full_draws_come_every_n_steps_from_the_first_and_are_off_by_default():
  from configs import tiny

  analysis = tiny.get_config("grpo").analysis
  assert not any(records.full_draw_due(analysis, s) for s in range(50))
  analysis.full_draw_every = 10
  assert [s for s in range(25) if records.full_draw_due(analysis, s)] == [0, 10, 20]
  assert not records.full_draw_due(None, 0)


def test_read_names_the_file_when_records_are_missing_or_malformed(tmp_path):
  with pytest.raises(FileNotFoundError, match="records.jsonl"):
    records.read(str(tmp_path))
  (tmp_path / records.RECORDS_FILE).write_text('{"oops": 1}\n')
  with pytest.raises(ValueError, match="line 1"):
    records.read(str(tmp_path))


@pytest.mark.slow
def test_a_short_real_run_writes_one_record_per_step_with_full_draws(tmp_path):
  import fake_setup

  from ar3po_jax import train
  from ar3po_jax.tasks import Setup

  tokenizer, model, params, train_prompts, eval_prompts = fake_setup.parts(0)
  setup = Setup(tokenizer, model, params, train_prompts, {"heldout": eval_prompts}, fake_setup.FirstCharVerifier(),
                "the fake task")
  config = fake_setup.config("ar3po")
  config.analysis.full_draw_every, config.analysis.full_draw_samples, config.analysis.full_draw_prompts = 2, 3, 2
  history = train.run(config, str(tmp_path), setup, log=lambda m: None)
  recs = records.read(str(tmp_path))
  assert [r["step"] for r in recs] == [0, 1, 2]
  for rec, metrics in zip(recs, history[1:]):
    assert sum(sum(e["sampled"]) for e in rec["prompts"]) == metrics["rollout/responses"]
    assert len(rec["reuse"]) == metrics["rollout/reused"]
    assert all(e["age"] >= 1 for e in rec["reuse"])
  assert [r["step"] for r in recs if "full_draw" in r] == [0, 2]
  draw = recs[0]["full_draw"]
  assert draw["samples"] == 3 and len(draw["pass_rates"]) == 2
  # Pass rates over 3 samples are multiples of 1/3; the uids are the step's first two drawn prompts.
  assert all(abs(v * 3 - round(v * 3)) < 1e-5 for v in draw["pass_rates"].values())
  assert list(draw["pass_rates"]) == [e["uid"] for e in recs[0]["prompts"]][:2]


@pytest.mark.slow
def test_a_resumed_run_drops_the_records_of_the_steps_it_redoes(tmp_path):
  import fake_setup

  from ar3po_jax import train
  from ar3po_jax.tasks import Setup

  def run(steps):
    tokenizer, model, params, train_prompts, eval_prompts = fake_setup.parts(0)
    setup = Setup(tokenizer, model, params, train_prompts, {"heldout": eval_prompts},
                  fake_setup.FirstCharVerifier(), "the fake task")
    config = fake_setup.config("ar3po", steps=steps)
    config.checkpoint.enabled, config.checkpoint.every, config.checkpoint.async_save = True, 1, False
    train.run(config, str(tmp_path), setup, log=lambda m: None)

  run(2)
  # A run killed after logging step 2 but before checkpointing it leaves that step's record behind.
  with open(tmp_path / records.RECORDS_FILE, "a") as f:
    f.write(json.dumps({"step": 2, "prompts": [], "reuse": [], "stale": True}) + "\n")
  run(3)
  recs = records.read(str(tmp_path))
  assert [r["step"] for r in recs] == [0, 1, 2]
  assert "stale" not in recs[2] and len(recs[2]["prompts"]) == 4
