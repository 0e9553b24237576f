"""Parameter trees to and from a single .npz file (the warm-start cache; full run state goes through
orbax checkpoints). Keys are '/'-joined paths, so a file lists as readable parameter names."""

from __future__ import annotations

import os

import jax
import numpy as np


def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    flat[prefix + "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = np.asarray(leaf)
  return flat


def unflatten(flat: dict[str, np.ndarray]) -> dict:
  tree: dict = {}
  for key, value in flat.items():
    node = tree
    *parents, leaf = key.split("/")
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = value
  return tree


def save_npz(tree, path: str) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, **flatten(jax.device_get(tree)))
  os.replace(tmp, path)  # atomic: a killed run leaves the old file or the new one, never half of one


def load_npz(path: str) -> dict:
  with np.load(path) as data:
    return unflatten({k: data[k] for k in data.files})
