"""AR3PO: S stages of k for active prompts, one buffered correct response for all-wrong prompts."""

import numpy as np
import pytest

from ar3po_jax.datasets.stream import PromptStream
from ar3po_jax.rewards.exact import ExactVerifier
from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.rollout.scheduler import Scheduler
from ar3po_jax.rollout.simulated import ScriptedSampler, make_prompts
from ar3po_jax.rollout.strategies import make_strategy
from ar3po_jax.types import Response
from configs.tiny import get_config

# sim-0 leaves after stage 1; sim-1 finds its success in stage 2; sim-2 and sim-3 stay all wrong,
# and only sim-2 has a buffered correct response (from step 3; the rollout runs at step 5).
SCRIPTS = ["10", "0001", "0000", "0000"]


def ar3po_config(reuse_mode="recompute", reuse=True, reuse_pick="newest", stages=2, k=2):
  rollout = get_config("ar3po").rollout
  rollout.ar3po.stages, rollout.ar3po.k = stages, k
  rollout.ar3po.reuse, rollout.ar3po.reuse_mode, rollout.ar3po.reuse_pick = reuse, reuse_mode, reuse_pick
  return rollout


def buffered(text: str, step: int) -> Response:
  return Response(np.zeros(3, np.int32), np.zeros(3, np.float32), text, reward=1.0, step=step)


def run(rollout, scripts=SCRIPTS, buffer=None, seed=0):
  prompts = make_prompts(len(scripts))
  rollout.batch_prompts = len(scripts)
  if buffer is None:
    buffer = ReplayBuffer()
    buffer.add("sim-2", buffered("old \\boxed{2}", 3), 3)
  sampler = ScriptedSampler({p.uid: s for p, s in zip(prompts, scripts)})
  scheduler = Scheduler(make_strategy(rollout), sampler, ExactVerifier(), buffer, PromptStream(prompts))
  return scheduler.rollout(5, np.random.default_rng(seed)), sampler, buffer


def texts(group):
  return [r.text.split(" ")[0] for r in group.responses]


def test_stages_shrink_the_active_pool_and_reuse_fills_all_wrong_groups():
  result, sampler, buffer = run(ar3po_config())
  assert sampler.calls == [
      (["sim-0", "sim-1", "sim-2", "sim-3"], [2, 2, 2, 2]),
      (["sim-1", "sim-2", "sim-3"], [2, 2, 2]),
  ]
  g0, g1, g2, g3 = result.groups
  assert texts(g0) == ["sim-0#0", "sim-0#1"]
  assert texts(g1) == ["sim-1#0", "sim-1#1", "sim-1#2", "sim-1#3"]
  assert texts(g2) == ["sim-2#0", "sim-2#1", "sim-2#2", "sim-2#3", "old"]
  assert texts(g3) == ["sim-3#0", "sim-3#1", "sim-3#2", "sim-3#3"]  # nothing buffered: stays all wrong
  assert [r.reused for r in g2.responses] == [False] * 4 + [True]
  assert g2.correct.tolist() == [0, 0, 0, 0, 1] and g2.responses[-1].step == 3
  assert all(g.train_mask == [True] * g.size for g in result.groups)
  assert all(g.posterior_mean is None for g in result.groups)

  m = result.metrics
  assert m["rollout/responses"] == 14 and m["rollout/stages"] == 2
  assert m["rollout/responses_per_prompt"] == 3.5
  assert m["rollout/responses_per_prompt_hist"] == {"2": 1, "4": 3}
  assert m["rollout/reused"] == 1 and m["buffer/staleness"] == 2
  assert m["rollout/frac_zero_adv_groups_before_reuse"] == 0.5
  assert m["rollout/frac_zero_adv_groups"] == 0.25
  assert m["rollout/frac_all_wrong_before_reuse"] == 0.5 and m["rollout/frac_all_wrong"] == 0.25
  assert m["rollout/train_responses"] == 15
  # The step's two correct responses join the old one.
  assert m["buffer/size"] == 3
  assert [r.text.split(" ")[0] for r in buffer.responses("sim-0")] == ["sim-0#0"]
  assert [r.text.split(" ")[0] for r in buffer.responses("sim-1")] == ["sim-1#3"]


def test_option_one_and_two_differ_only_in_the_reused_rows_train_mask():
  one, _, _ = run(ar3po_config("recompute"))
  two, _, _ = run(ar3po_config("stop_gradient"))
  assert [texts(g) for g in one.groups] == [texts(g) for g in two.groups]
  for a, b in zip(one.groups, two.groups):
    for r, mask_one, mask_two in zip(a.responses, a.train_mask, b.train_mask):
      assert (mask_one, mask_two) == ((True, False) if r.reused else (True, True))
  assert two.metrics["rollout/masked_responses"] == 1 and one.metrics["rollout/masked_responses"] == 0


def test_no_reuse_when_turned_off():
  result, _, _ = run(ar3po_config(reuse=False))
  assert result.metrics["rollout/reused"] == 0
  assert texts(result.groups[2]) == ["sim-2#0", "sim-2#1", "sim-2#2", "sim-2#3"]
  assert np.isnan(result.metrics["buffer/staleness"])


@pytest.mark.parametrize("pick,expected", [("newest", {"new"}), ("random", {"old", "new"})])
def test_reuse_pick(pick, expected):
  picked = set()
  for seed in range(30):
    buffer = ReplayBuffer()
    buffer.add("sim-0", buffered("old \\boxed{0}", 1), 1)
    buffer.add("sim-0", buffered("new \\boxed{0}", 2), 2)
    result, _, _ = run(ar3po_config(reuse_pick=pick, stages=1), scripts=["00"], buffer=buffer, seed=seed)
    picked.add(texts(result.groups[0])[-1])
  assert picked == expected


def test_single_stage_of_one_matches_the_papers_cap():
  result, sampler, _ = run(ar3po_config(stages=4, k=1), scripts=["1", "01", "0000", "0001"], buffer=ReplayBuffer())
  assert [n for _, counts in sampler.calls for n in counts] == [1] * 4 + [1] * 3 + [1] * 2 + [1] * 2
  assert [g.size for g in result.groups] == [1, 2, 4, 4]
  # A one-response group has zero advantage even though it is correct.
  assert result.metrics["rollout/frac_zero_adv_groups"] == 0.5


def test_bad_knobs_are_refused():
  with pytest.raises(ValueError, match="reuse_mode"):
    make_strategy(ar3po_config(reuse_mode="both"))
  with pytest.raises(ValueError, match="reuse_pick"):
    make_strategy(ar3po_config(reuse_pick="oldest"))


def test_prompts_with_a_correct_response_are_never_given_a_reused_one():
  buffer = ReplayBuffer()
  for uid in ("sim-0", "sim-1", "sim-2"):
    buffer.add(uid, buffered(f"old-{uid} \\boxed{{0}}", 1), 1)
  result, _, _ = run(ar3po_config(), buffer=buffer)
  assert [sum(r.reused for r in g.responses) for g in result.groups] == [0, 0, 1, 0]


def test_a_matched_control_prompt_has_its_buffered_response_withheld_and_logged():
  rollout = ar3po_config()
  rollout.ar3po.reuse_control = 0.999  # every prompt of this test in the control (a hash below 0.999)
  assert all(make_strategy(rollout).in_control(f"sim-{i}") for i in range(4))
  result, _, buffer = run(rollout)
  g2, g3 = result.groups[2], result.groups[3]
  assert texts(g2) == ["sim-2#0", "sim-2#1", "sim-2#2", "sim-2#3"]  # the buffered "old" was not added
  assert g2.withheld_step == 3  # the step of the response withheld
  assert g3.withheld_step is None  # nothing buffered for sim-3: nothing withheld
  assert result.metrics["ar3po/withheld"] == 1 and result.metrics["rollout/reused"] == 0
  assert result.records["withheld"] == [{"uid": "sim-2", "sampled_step": 3, "age": 2}]
  assert result.records["reuse"] == []
  assert len(buffer.responses("sim-2")) == 1  # withholding takes nothing out of the buffer


def test_the_control_is_a_fixed_share_of_prompts_and_leaves_the_others_rng_untouched():
  rollout = ar3po_config(reuse_pick="random", stages=1)
  rollout.ar3po.reuse_control = 0.5
  strategy = make_strategy(rollout)
  uids = [f"p{i}" for i in range(4000)]
  share = np.mean([strategy.in_control(u) for u in uids])
  assert share == pytest.approx(0.5, abs=0.03)
  assert [strategy.in_control(u) for u in uids[:50]] == [make_strategy(rollout).in_control(u) for u in uids[:50]]
  # With a random pick, the treated prompts get the same responses as without the control: a withheld
  # prompt still draws its pick from the step's rng.
  scripts = ["00"] * 40
  prompts = make_prompts(len(scripts))

  def picks(control):
    r = ar3po_config(reuse_pick="random", stages=1)
    r.ar3po.reuse_control = control
    buffer = ReplayBuffer(4, 10_000)
    for p in prompts:
      for step in (1, 2, 3):
        buffer.add(p.uid, buffered(f"{p.uid}@{step} \\boxed{{0}}", step), step)
    result, _, _ = run(r, scripts=scripts, buffer=buffer, seed=7)
    return {g.prompt.uid: g.responses[-1].text for g in result.groups if g.responses[-1].reused}

  treated, everyone = picks(0.5), picks(0.0)
  assert 0 < len(treated) < len(everyone) == 40
  assert treated == {uid: everyone[uid] for uid in treated}


def test_a_control_share_outside_zero_to_one_is_refused():
  rollout = ar3po_config()
  rollout.ar3po.reuse_control = 1.0
  with pytest.raises(ValueError, match="reuse_control"):
    make_strategy(rollout)
