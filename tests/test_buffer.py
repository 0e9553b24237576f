"""ReplayBuffer: per-prompt capacity, global oldest-first eviction, picks, exact checkpointing."""

import json

import numpy as np
import pytest

from ar3po_jax.rollout.buffer import ReplayBuffer
from ar3po_jax.types import Response


def correct(tag: str, length: int = 3) -> Response:
  return Response(np.arange(length, dtype=np.int32), np.full(length, -0.5, np.float32), tag, reward=1.0)


def tags(buffer: ReplayBuffer, uid: str) -> list[str]:
  return [r.text for r in buffer.responses(uid)]


def test_per_prompt_capacity_keeps_the_newest():
  buffer = ReplayBuffer(per_prompt=2, total=100)
  for step in (1, 2, 3):
    buffer.add("a", correct(f"a{step}"), step)
  assert tags(buffer, "a") == ["a2", "a3"]
  buffer.add("a", correct("a0"), 0)  # older than everything kept: it is the one dropped
  assert tags(buffer, "a") == ["a2", "a3"]
  assert buffer.size == 2


def test_total_capacity_evicts_the_globally_oldest():
  buffer = ReplayBuffer(per_prompt=2, total=3)
  buffer.add("a", correct("a1"), 1)
  buffer.add("b", correct("b2"), 2)
  buffer.add("c", correct("c3"), 3)
  buffer.add("d", correct("d4"), 4)
  assert "a" not in buffer and buffer.size == 3
  buffer.add("b", correct("b5"), 5)
  assert tags(buffer, "b") == ["b5"]  # b2 was the oldest left, though b itself was not full
  assert tags(buffer, "c") == ["c3"] and tags(buffer, "d") == ["d4"]


def test_same_step_entries_evict_in_insertion_order():
  buffer = ReplayBuffer(per_prompt=1, total=2)
  for uid in "xyz":
    buffer.add(uid, correct(uid), 7)
  assert "x" not in buffer and "y" in buffer and "z" in buffer


def test_eviction_stays_right_after_many_per_prompt_drops():
  buffer = ReplayBuffer(per_prompt=1, total=2)
  for step in range(5000):
    buffer.add("hot", correct(f"hot{step}"), step)
  buffer.add("cold", correct("cold"), 6000)
  buffer.add("new", correct("new"), 6001)
  assert "hot" not in buffer and buffer.size == 2
  assert len(buffer._heap) < 2 * buffer.size + 1100  # stale heap items are compacted away


def test_pick_newest_marks_a_copy_reused():
  buffer = ReplayBuffer()
  buffer.add("a", correct("old"), 1)
  buffer.add("a", correct("new"), 4)
  picked = buffer.pick("a", "newest", np.random.default_rng(0))
  assert picked.text == "new" and picked.reused and picked.step == 4 and picked.reward == 1.0
  assert not any(r.reused for r in buffer.responses("a"))  # the stored entry is untouched
  assert buffer.pick("missing", "newest", np.random.default_rng(0)) is None
  with pytest.raises(ValueError):
    buffer.pick("a", "oldest", np.random.default_rng(0))


def test_pick_random_draws_from_the_rng():
  buffer = ReplayBuffer()
  buffer.add("a", correct("old"), 1)
  buffer.add("a", correct("new"), 4)
  first = [buffer.pick("a", "random", np.random.default_rng(s)).text for s in range(40)]
  again = [buffer.pick("a", "random", np.random.default_rng(s)).text for s in range(40)]
  assert first == again and set(first) == {"old", "new"}


def test_staleness_is_current_step_minus_producing_step():
  buffer = ReplayBuffer()
  buffer.add("a", correct("a"), 3)
  buffer.add("b", correct("b"), 8)
  assert sorted(buffer.staleness(10).tolist()) == [2, 7]


def _plain(value) -> bool:
  if isinstance(value, np.ndarray):
    return True
  if isinstance(value, list):
    return all(isinstance(v, str) for v in value)
  return isinstance(value, (int, float, str))


def test_state_dict_round_trip_is_exact_and_plain():
  buffer = ReplayBuffer(per_prompt=2, total=5)
  rng = np.random.default_rng(1)
  for step in range(6):
    for uid in rng.choice(list("abcd"), size=2, replace=False):
      buffer.add(str(uid), correct(f"{uid}{step}", length=step + 1), step)
  state = buffer.state_dict()
  assert all(_plain(v) for v in state.values())
  json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in state.items()})

  restored = ReplayBuffer(per_prompt=9, total=9)
  restored.load_state_dict(state)
  assert (restored.per_prompt, restored.total, restored.size) == (2, 5, buffer.size)
  for uid in "abcd":
    ours, theirs = buffer.responses(uid), restored.responses(uid)
    assert [(r.text, r.step) for r in ours] == [(r.text, r.step) for r in theirs]
    for r, t in zip(ours, theirs):
      np.testing.assert_array_equal(r.token_ids, t.token_ids)
      np.testing.assert_array_equal(r.logprobs, t.logprobs)
  # The insertion counter survives too: both evict the same entries from here on.
  for b in (buffer, restored):
    b.add("e", correct("e6"), 5)
    b.add("f", correct("f6"), 5)
  for uid in "abcdef":
    assert tags(buffer, uid) == tags(restored, uid)
