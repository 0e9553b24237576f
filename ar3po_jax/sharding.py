"""The device mesh and where every array lives on it.

Axes: `data` (batch rows), `fsdp` (batch rows and parameter shards), `tensor` (within-layer model
parallelism). Parameters are placed by regex rules over their '/'-joined names, the first match
winning; optimizer state follows the rule of the parameter whose name ends its path. A dimension
that a rule would shard but that the axis size does not divide is replicated instead, so a tiny
model runs on any mesh.
"""

from __future__ import annotations

import re
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# Megatron-style: column-parallel in-projections, row-parallel out-projections, FSDP on the other dim.
DEFAULT_RULES: tuple[tuple[str, P], ...] = (
    (r"embed/embedding$", P("tensor", "fsdp")),
    (r"(q_proj|k_proj|v_proj|gate_proj|up_proj)/kernel$", P("fsdp", "tensor")),
    (r"(q_proj|k_proj|v_proj)/bias$", P("tensor")),
    (r"(o_proj|down_proj)/kernel$", P("tensor", "fsdp")),
    (r"lm_head/kernel$", P("fsdp", "tensor")),
    (r".*", P()),
)


def make_mesh(data: int = -1, fsdp: int = 1, tensor: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A (data, fsdp, tensor) mesh; data = -1 takes every device the other axes leave."""
  devices = list(devices if devices is not None else jax.devices())
  if fsdp < 1 or tensor < 1:
    raise ValueError(f"mesh.fsdp and mesh.tensor must be >= 1, got fsdp={fsdp} tensor={tensor}")
  if data == -1:
    if len(devices) % (fsdp * tensor):
      raise ValueError(f"{len(devices)} devices do not divide into mesh.fsdp={fsdp} x mesh.tensor={tensor}")
    data = len(devices) // (fsdp * tensor)
  if data < 1 or data * fsdp * tensor != len(devices):
    raise ValueError(f"mesh data={data} x fsdp={fsdp} x tensor={tensor} does not match the {len(devices)} devices")
  grid = np.asarray(devices, dtype=object).reshape(data, fsdp, tensor)
  return Mesh(grid, AXES, axis_types=(jax.sharding.AxisType.Auto,) * len(AXES))


def path_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _fit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
  """The spec with every axis that does not divide its dimension dropped (replicated)."""
  fitted = []
  for dim, axis in enumerate(tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axis is None or dim >= len(shape):
      fitted.append(None)
      continue
    names = axis if isinstance(axis, tuple) else (axis,)
    size = int(np.prod([mesh.shape[n] for n in names]))
    fitted.append(axis if shape[dim] % size == 0 and size > 1 else None)
  return P(*fitted[: len(shape)])


def spec_for(name: str, shape: tuple[int, ...], mesh: Mesh, rules=DEFAULT_RULES) -> P:
  for pattern, spec in rules:
    if re.search(pattern, name):
      return _fit(spec, shape, mesh) if len(shape) else P()
  return P()


def tree_shardings(tree, mesh: Mesh, rules=DEFAULT_RULES):
  """NamedShardings for every leaf of a parameter (or optimizer state) tree, by rule."""

  def leaf_sharding(path, leaf):
    shape = tuple(getattr(leaf, "shape", ()))
    return NamedSharding(mesh, spec_for(path_name(path), shape, mesh, rules))

  return jax.tree_util.tree_map_with_path(leaf_sharding, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Rows over data and fsdp; every other dimension whole."""
  return NamedSharding(mesh, P(BATCH_AXES))


def kv_cache_sharding(mesh: Mesh, n_kv_heads: int) -> NamedSharding:
  """KV cache [B, S, K, H]: rows like the batch, kv heads over `tensor` (matching the k/v projections'
  column split) when the axis divides them, else whole on every tensor shard."""
  heads = "tensor" if mesh.shape["tensor"] > 1 and n_kv_heads % mesh.shape["tensor"] == 0 else None
  return NamedSharding(mesh, P(BATCH_AXES, None, heads, None))


def data_parallel_size(mesh: Mesh) -> int:
  return int(np.prod([mesh.shape[a] for a in BATCH_AXES]))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
