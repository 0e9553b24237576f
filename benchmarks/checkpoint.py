r"""What a checkpoint of the embedded run costs: time the training loop is blocked, time until the
background write is done, and bytes on disk, for the TrainState and for a full replay buffer.

  .venv/bin/python -m benchmarks.checkpoint --repeats=5

The model is configs/tiny.py's (tokenizer vocabulary 128); the buffer holds `--buffer_entries`
correct responses of `--response_tokens` tokens (every prompt of the RL pool at per_prompt = 2).
Prints one JSON object. Bigger models scale by bytes: the TrainState is params + Adam's two moments,
12 bytes a float32 parameter (gradients are not saved).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

import jax
import numpy as np
from absl import app, flags

from ar3po_jax import checkpoint
from ar3po_jax.models.transformer import ModelConfig, init_params
from ar3po_jax.rollout import ReplayBuffer
from ar3po_jax.types import Response
from ar3po_jax.update import init_train_state, make_optimizer
from configs import tiny

flags.DEFINE_integer("repeats", 5, "Saves timed (the first, which sets up the folder layout, is not counted).")
flags.DEFINE_integer("buffer_entries", 1024, "Responses in the replay buffer.")
flags.DEFINE_integer("response_tokens", 40, "Tokens per buffered response.")
FLAGS = flags.FLAGS


def _disk_bytes(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def _buffer(entries: int, tokens: int) -> ReplayBuffer:
  buffer = ReplayBuffer(per_prompt=2, total=100_000)
  rng = np.random.default_rng(0)
  for i in range(entries):
    ids = rng.integers(4, 128, tokens).astype(np.int32)
    buffer.add(f"p{i // 2}", Response(ids, rng.normal(size=tokens).astype(np.float32), "x" * tokens, False, reward=1.0), step=i // 64)
  return buffer


def _trained_like(state):
  # Adam moments of a trained model are dense, not the zeros of a fresh one (which compress to nothing).
  leaves, treedef = jax.tree.flatten(state)
  rng = np.random.default_rng(1)
  return jax.tree.unflatten(treedef, [rng.normal(size=x.shape).astype(x.dtype) if x.dtype == np.float32 else x for x in leaves])


def _measure(directory: str, state, host: dict, repeats: int) -> dict:
  ckpt = checkpoint.Checkpointer(directory, every=1, keep=2)
  blocking, total = [], []
  for step in range(repeats + 1):
    start = time.perf_counter()
    ckpt.save(step, state, host, force=True)
    blocked = time.perf_counter() - start
    ckpt.wait()
    if step:
      blocking.append(blocked)
      total.append(time.perf_counter() - start)
  ckpt.close()
  step_dir = os.path.join(directory, str(repeats))
  return {
      "blocking_s_median": statistics.median(blocking),
      "until_written_s_median": statistics.median(total),
      "bytes": {item: _disk_bytes(os.path.join(step_dir, item)) for item in ("state", "arrays", "host")},
  }


def main(argv):
  del argv
  config = tiny.get_config("ar3po")
  model_config = ModelConfig.from_config(config.model, 128)
  params = init_params(model_config, jax.random.key(0))
  state = _trained_like(init_train_state(params, make_optimizer(1e-4)))
  buffer = _buffer(FLAGS.buffer_entries, FLAGS.response_tokens)
  host = {"buffer": buffer.state_dict(), "sampler_key": [0, 1], "host_rng": np.random.default_rng(0).bit_generator.state}
  num_params = sum(x.size for x in jax.tree.leaves(params))
  with tempfile.TemporaryDirectory() as d:
    with_buffer = _measure(os.path.join(d, "with_buffer"), state, host, FLAGS.repeats)
    state_only = _measure(os.path.join(d, "state_only"), state, {}, FLAGS.repeats)
  print(json.dumps({
      "parameters": num_params,
      "train_state_float32_bytes": 3 * 4 * num_params,
      "buffer_entries": FLAGS.buffer_entries,
      "response_tokens": FLAGS.response_tokens,
      "with_buffer": with_buffer,
      "state_only": state_only,
  }, indent=1))


if __name__ == "__main__":
  app.run(main)
