"""The multi-host helpers on one process: what they do there is what every process does on many."""

import jax
import numpy as np
import pytest

from ar3po_jax import distributed, sharding


def test_initialize_only_when_asked(monkeypatch):
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize() is False
  assert jax.process_count() == 1


def test_put_and_to_host_round_trip_a_tree():
  mesh = sharding.make_mesh()
  host = {"tokens": np.arange(12, dtype=np.int32).reshape(4, 3), "mask": np.ones((4, 3), bool)}
  placed = distributed.put(host, sharding.batch_sharding(mesh))
  assert all(isinstance(x, jax.Array) and x.sharding == sharding.batch_sharding(mesh) for x in placed.values())
  back = distributed.to_host(placed)
  np.testing.assert_array_equal(back["tokens"], host["tokens"])
  assert back["mask"].dtype == bool


def test_put_accepts_a_tree_of_shardings_and_device_arrays():
  mesh = sharding.make_mesh()
  params = {"layers_0": {"attn": {"q_proj": {"kernel": jax.numpy.ones((4, 8))}}}}
  placed = distributed.put(params, sharding.tree_shardings(params, mesh))
  np.testing.assert_array_equal(distributed.to_host(placed)["layers_0"]["attn"]["q_proj"]["kernel"], np.ones((4, 8)))


def test_kv_cache_sharding_splits_rows_and_only_divisible_heads():
  mesh = sharding.make_mesh()
  spec = sharding.kv_cache_sharding(mesh, n_kv_heads=2).spec
  assert spec[0] == sharding.BATCH_AXES and spec[2] is None  # a tensor axis of 1 splits nothing


def test_single_process_helpers_are_pass_throughs():
  tree = {"a": np.arange(3)}
  assert distributed.broadcast(tree) is tree
  distributed.barrier("unused")
  distributed.check_same_on_all_hosts([np.arange(3)], "anything")
  assert distributed.leader_first(lambda: 7, "unused") == 7


class _CountingVerifier:
  def __init__(self):
    self.closed = False

  def __call__(self, texts, answers):
    return [float(t == a) for t, a in zip(texts, answers)]

  def metrics(self):
    return {"verify/total": 2.0}

  def close(self):
    self.closed = True


def test_leader_verifier_passes_rewards_counters_and_close_through():
  inner = _CountingVerifier()
  verifier = distributed.LeaderVerifier(inner)
  rewards = verifier(["1", "2"], ["1", "3"])
  assert rewards.dtype == np.float32 and rewards.tolist() == [1.0, 0.0]
  assert verifier.metrics() == {"verify/total": 2.0}
  verifier.close()
  assert inner.closed


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_sampling_with_a_cache_sharding_matches_without(temperature):
  from ar3po_jax.models.transformer import ModelConfig, Transformer, init_params
  from ar3po_jax.sampling import SamplingParams, sample

  config = ModelConfig(vocab_size=16, d_model=16, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8, d_ff=32)
  model, params = Transformer(config), init_params(config, jax.random.key(0))
  mesh = sharding.make_mesh()
  tokens = np.array([[0, 5, 6], [7, 8, 9]], np.int32)
  mask = tokens > 0
  sp = SamplingParams(max_new_tokens=4, temperature=temperature, stop_ids=1, pad_id=0)
  plain = sample(params, tokens, mask, jax.random.key(1), model=model, params_s=sp)
  pinned = sample(params, tokens, mask, jax.random.key(1), model=model, params_s=sp, cache_sharding=sharding.kv_cache_sharding(mesh, 1))
  np.testing.assert_array_equal(plain.tokens_BxTr, pinned.tokens_BxTr)
  np.testing.assert_allclose(plain.logprobs_BxTr, pinned.logprobs_BxTr, rtol=1e-6)
