r"""Compile time of a training pass, and of the whole RL update, with the layers unrolled or scanned.

  python -m benchmarks.scan_compile --layers=30 --rows=64 --length=64 [--modes=scan,unrolled] [--what=grad,update] \
      [--optimizers=flat,plain]

The model is SmolLM2-135M's shape (576 wide, 9 heads of 64, 3 key/value heads, 1,536 FFN, vocab 49,152,
tied embeddings) at the given depth, float32; parameters are abstract (no weights are made), so what
is timed is XLA's compile of the gradient pass alone, which the update wraps in its mini-batch scan.
`--what=update` compiles `update.make_update_fn` as the run does (configs/hf.py:ar3po,arithmetic_chat's
rl settings: 4 mini-batches in a scan, AdamW, the clipped-ratio loss) over `rows` rows of `length`
prompt slots plus the task's 64 response slots (the unpacked layout of benchmarks/update.py), with
AdamW per parameter leaf (`plain`) or over one raveled vector (`flat`, rl.flatten_optimizer).
`--remat=on` checkpoints the scanned layer (model.remat). Prints one JSON line per (what, mode,
optimizer, remat): seconds to lower, seconds to compile, the count of dot_general ops in the lowered
program and, for the update, XLA's scratch memory for one call (`temp_mib`, from the compiled
program's memory analysis: activations and temporaries, not the weights and optimizer state).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from ar3po_jax.models.transformer import ModelConfig, Transformer, init_params

SMOLLM2 = ModelConfig(vocab_size=49152, d_model=576, n_layers=30, n_heads=9, n_kv_heads=3, head_dim=64, d_ff=1536,
                      tie_embeddings=True, rope_theta=100000.0, norm_eps=1e-5)


def compile_seconds(config: ModelConfig, rows: int, length: int) -> dict:
  model = Transformer(config)
  params = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
  tokens = jax.ShapeDtypeStruct((rows, length), jnp.int32)

  def loss(p, tokens_BxT):
    positions = jnp.broadcast_to(jnp.arange(length), (rows, length))
    logits, _ = model.apply({"params": p}, tokens_BxT, positions, jnp.ones((rows, length), bool))
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits, -1), tokens_BxT[..., None], -1))

  start = time.perf_counter()
  lowered = jax.jit(jax.value_and_grad(loss)).lower(params, tokens)
  lowered_s = time.perf_counter() - start
  dots = lowered.as_text().count("dot_general")
  start = time.perf_counter()
  lowered.compile()
  return {"what": "grad", "layers": config.n_layers, "scan_layers": config.scan_layers, "rows": rows, "length": length,
          "lower_s": round(lowered_s, 2), "compile_s": round(time.perf_counter() - start, 2), "dot_general": dots}


def update_compile_seconds(config: ModelConfig, rows: int, length: int, flatten: bool = True) -> dict:
  from ar3po_jax import config_validation
  from ar3po_jax.update import UpdateSettings, init_train_state, jit_update, make_optimizer, make_update_fn
  from benchmarks.update import random_batch
  from configs import hf as hf_config

  c = config_validation.resolve(hf_config.get_config("ar3po,arithmetic_chat"))
  optimizer = make_optimizer(c.rl.lr, c.rl.weight_decay, c.rl.grad_clip, flatten=flatten)
  settings = UpdateSettings.from_config(c.rl, c.rollout.temperature)
  update = jit_update(make_update_fn(Transformer(config), optimizer, settings))
  state = jax.eval_shape(lambda: init_train_state(init_params(config, jax.random.key(0)), optimizer))
  batch = random_batch(rows, length, c.rollout.max_new_tokens, config.vocab_size, 8, np.random.default_rng(0))
  batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), batch)
  start = time.perf_counter()
  lowered = update.lower(state, batch)
  lowered_s = time.perf_counter() - start
  dots = lowered.as_text().count("dot_general")
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()  # XLA's buffer assignment: the update's scratch memory
  return {"what": "update", "optimizer": "flat" if flatten else "plain", "remat": config.remat,
          "layers": config.n_layers, "scan_layers": config.scan_layers, "rows": rows, "prompt_slots": length,
          "response_slots": c.rollout.max_new_tokens, "mini_batches": c.rl.mini_batches,
          "lower_s": round(lowered_s, 2), "compile_s": round(compile_s, 2), "dot_general": dots,
          "temp_mib": round(memory.temp_size_in_bytes / 2**20) if memory is not None else None}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--layers", type=int, default=30)
  p.add_argument("--rows", type=int, default=64)
  p.add_argument("--length", type=int, default=64)
  p.add_argument("--optimizers", default="flat", help="update only: flat (one raveled vector), plain, or both")
  p.add_argument("--remat", default="off", help="update only: off, on or both (model.remat, scanned layers)")
  p.add_argument("--modes", default="scan,unrolled")
  p.add_argument("--what", default="grad,update", help="grad: the loss's value and gradient; update: the RL update")
  args = p.parse_args(argv)
  for what in args.what.split(","):
    for mode in args.modes.split(","):
      config = dataclasses.replace(SMOLLM2, n_layers=args.layers, scan_layers=mode == "scan")
      if what == "grad":
        print(json.dumps(compile_seconds(config, args.rows, args.length)), flush=True)
        continue
      for optimizer in args.optimizers.split(","):
        for remat in args.remat.replace("both", "off,on").split(","):
          if remat == "on" and mode != "scan":
            continue  # remat checkpoints the scanned layer
          config = dataclasses.replace(config, remat=remat == "on")
          row = update_compile_seconds(config, args.rows, args.length, flatten=optimizer == "flat")
          print(json.dumps(row), flush=True)


if __name__ == "__main__":
  main()
