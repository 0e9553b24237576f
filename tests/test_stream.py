from ar3po_jax.datasets.stream import IndexStream


def test_a_call_across_an_epoch_boundary_hands_out_no_index_twice():
  for seed in range(20):
    stream = IndexStream(10, seed)
    stream.next(7)
    step = stream.next(6)  # 3 from the end of epoch 0, 3 from the start of epoch 1
    assert len(set(step)) == 6, (seed, step)
    # Every epoch still visits every index once.
    epoch1 = step[3:] + stream.next(7)
    assert sorted(epoch1) == list(range(10)), (seed, epoch1)


def test_the_reordered_epoch_resumes_from_its_state():
  stream = IndexStream(10, 3)
  stream.next(7)
  stream.next(6)
  resumed = IndexStream(10, 3)
  resumed.load_state_dict(stream.state_dict())
  assert resumed.next(12) == stream.next(12)
  old_format = IndexStream(10, 3)
  old_format.load_state_dict({"epoch": 0, "index": 4})  # a checkpoint from before "moved" existed
  assert old_format.next(3) == IndexStream(10, 3).next(7)[4:]
