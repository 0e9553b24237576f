import numpy as np
import pytest

from ar3po_jax import batching
from ar3po_jax.types import Group, Prompt, Response


def _response(ids, reward, reused=False):
  ids = np.asarray(ids, np.int32)
  return Response(ids, np.full(len(ids), -0.5, np.float32), "", reward=reward, reused=reused)


def test_buckets_are_few_and_bounded():
  assert [batching.sampler_rows(n) for n in (1, 8, 9, 13, 17, 25, 33, 100, 500)] == [8, 8, 12, 16, 24, 32, 48, 128, 512]
  assert batching.sampler_rows(9, multiple=8) == 16
  sizes = {batching.row_bucket(n, 288, 8, 4) for n in range(1, 289)}
  assert len(sizes) == 8 and max(sizes) == 288 and all(s % 4 == 0 for s in sizes)
  for n in range(1, 289):
    assert 0 <= batching.row_bucket(n, 288, 8, 4) - n < 36
  assert batching.prompt_slots([3, 9]) == 16


def test_pack_update_batch_layout():
  p0 = Prompt("a", np.array([5, 6, 7], np.int32), "1")
  p1 = Prompt("b", np.array([8], np.int32), "2")
  groups = [
      Group(
          p0,
          [_response([9, 3], 1.0), _response([10, 11, 3], 0.0), _response([12], 1.0, reused=True)],
          [True, True, False],
      ),
      Group(p1, [_response([13, 3], 0.0)], [True], posterior_mean=0.25),
  ]
  groups[0].responses[1].penalty = -0.5
  batch, reused = batching.pack_update_batch(groups, response_slots=4, rows=6, pad_id=0)
  assert batch["tokens_BxT"].shape == (6, 12)  # 8 prompt slots + 4 response slots
  np.testing.assert_array_equal(batch["tokens_BxT"][0], [0, 0, 0, 0, 0, 5, 6, 7, 9, 3, 0, 0])
  np.testing.assert_array_equal(batch["mask_BxT"][3], [False] * 7 + [True, True, True, False, False])
  np.testing.assert_array_equal(batch["rewards_B"], [1.0, -0.5, 1.0, 0.0, 0, 0])
  np.testing.assert_array_equal(batch["group_ids_B"][:4], [0, 0, 0, 1])
  assert len(set(batch["group_ids_B"][4:]) & {0, 1}) == 0 and batch["group_ids_B"].max() < 6
  np.testing.assert_array_equal(batch["row_valid_B"], [True] * 4 + [False] * 2)
  np.testing.assert_array_equal(batch["train_row_B"], [True, True, False, True, False, False])
  np.testing.assert_array_equal(batch["use_posterior_B"], [False, False, False, True, False, False])
  assert batch["posterior_mean_B"][3] == 0.25
  np.testing.assert_array_equal(reused, [False, False, True, False, False, False])
  np.testing.assert_array_equal(batch["old_logp_BxTr"][1], [-0.5, -0.5, -0.5, 0.0])
  # A fixed prompt width (the training set's longest) only adds left padding: one shape for every step.
  wide, _ = batching.pack_update_batch(groups, response_slots=4, rows=6, pad_id=0, prompt_width=16)
  assert wide["tokens_BxT"].shape == (6, 20)
  np.testing.assert_array_equal(wide["tokens_BxT"][:, 8:], batch["tokens_BxT"])
  assert not wide["mask_BxT"][:, :8].any()


def test_too_many_rows_is_a_clear_error():
  p = Prompt("a", np.array([5], np.int32), "1")
  with pytest.raises(ValueError, match="do not fit"):
    batching.pack_update_batch([Group(p, [_response([1], 1.0)] * 3, [True] * 3)], 4, rows=2, pad_id=0)


def test_response_bucket_picks_the_smallest_even_length_that_fits():
  assert [batching.response_bucket(n, 40, 2) for n in (1, 20, 24, 25, 40)] == [24, 24, 24, 40, 40]
  assert [batching.response_bucket(n, 40, 1) for n in (1, 40)] == [40, 40]
  assert sorted({batching.response_bucket(n, 20480, 4) for n in range(1, 20481, 97)}) == [5120, 10240, 15360, 20480]
  with pytest.raises(ValueError, match="exceeds the 40 response slots"):
    batching.response_bucket(41, 40, 2)


def test_pack_refuses_a_response_longer_than_its_slots():
  p = Prompt("p", np.array([1, 2], np.int32), "1")
  with pytest.raises(ValueError, match="5 tokens does not fit 4 response slots"):
    batching.pack_update_batch([Group(p, [_response([1, 2, 3, 4, 5], 1.0)], [True])], 4, rows=2, pad_id=0)


def _groups():
  p0 = Prompt("a", np.array([5, 6, 7], np.int32), "1")
  p1 = Prompt("b", np.array([8], np.int32), "2")
  return [
      Group(
          p0,
          [_response([9, 3], 1.0), _response([10, 11, 3, 4], 0.0), _response([12], 1.0, reused=True)],
          [True, True, False],
      ),
      Group(p1, [_response([13, 3], 0.0)], [True], posterior_mean=0.25),
  ]


def test_first_fit_decreasing_hand_example():
  assert batching.first_fit_decreasing([3, 5, 2, 4, 1], 6) == [[1, 4], [3, 2], [0]]
  with pytest.raises(ValueError, match="7 tokens does not fit packed rows of 6"):
    batching.first_fit_decreasing([7], 6)


def test_packed_layout_segments_positions_and_per_response_fields():
  groups = _groups()
  # Sequences (prompt + response cut at the first stop 3): 5, 6, 4 and 3 tokens.
  order = batching.pack_rows(groups, 10, stop_ids=(3,))
  assert order == [[1, 2], [0, 3]]
  batch, reused = batching.pack_update_batch_packed(groups, 10, rows=3, responses=6, pad_id=0, stop_ids=(3,))
  np.testing.assert_array_equal(batch["tokens_BxT"][0], [5, 6, 7, 10, 11, 3, 5, 6, 7, 12])
  np.testing.assert_array_equal(batch["segment_BxT"][0], [1] * 6 + [2] * 4)
  np.testing.assert_array_equal(batch["positions_BxT"][0], [0, 1, 2, 3, 4, 5, 0, 1, 2, 3])  # restart per segment
  np.testing.assert_array_equal(batch["response_BxT"][1], [0, 0, 0, 1, 1, 0, 1, 1, 0, 0])
  np.testing.assert_array_equal(batch["resp_of_token_BxT"][1, :8], [0] * 5 + [3] * 3)
  np.testing.assert_array_equal(batch["segment_BxT"][2], 0)  # a padding row
  np.testing.assert_array_equal(batch["old_logp_BxT"][0], [0, 0, 0, -0.5, -0.5, -0.5, 0, 0, 0, -0.5])
  np.testing.assert_array_equal(batch["rewards_R"], [1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
  np.testing.assert_array_equal(batch["group_ids_R"][:4], [0, 0, 0, 1])
  assert len(set(batch["group_ids_R"][4:]) & {0, 1}) == 0 and batch["group_ids_R"].max() < 6
  np.testing.assert_array_equal(batch["response_valid_R"], [True] * 4 + [False] * 2)
  np.testing.assert_array_equal(batch["train_R"], [True, True, False, True, False, False])
  np.testing.assert_array_equal(batch["use_posterior_R"], [False, False, False, True, False, False])
  np.testing.assert_array_equal(reused, [False, False, True, False, False, False])
  # Real tokens of every segment over all slots: 18 of 30.
  assert batching.padding_efficiency(batch) == pytest.approx(18 / 30)
  np.testing.assert_array_equal(batching.per_token(batch, reused)[0], [0] * 6 + [0, 0, 0, 1])
  with pytest.raises(ValueError, match="need 2 packed rows of 10 tokens; the batch has 1"):
    batching.pack_update_batch_packed(groups, 10, rows=1, responses=6, pad_id=0, stop_ids=(3,))


def test_packed_row_buckets_stay_bounded_and_tight():
  rng = np.random.default_rng(0)
  compiled: list[int] = []
  fills = []
  for step in range(300):
    needed = int(rng.integers(15, 26)) if step < 200 else int(rng.integers(1, 60))  # a band, then anything
    rows = batching.packed_row_bucket(needed, compiled, max_variants=8, largest=64, multiple=4)
    assert rows >= needed and rows % 4 == 0 and rows <= 64
    compiled.append(rows)
    fills.append(needed / rows)
    assert len(set(compiled)) <= 8
  assert np.mean(fills[20:200]) > 0.85  # in a narrow band the compiled counts fit it
  assert 64 in compiled  # once the variants are spent, a larger batch takes the reserved largest
  with pytest.raises(ValueError, match="exceed the largest bucket"):
    batching.packed_row_bucket(65, [], 8, 64)
