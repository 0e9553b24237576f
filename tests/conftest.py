"""Session-wide test setup: a persistent JAX compile cache so repeated shapes never compile twice."""

import os
import pathlib

import pytest

_CACHE = pathlib.Path(
    os.environ.get("AR3PO_TEST_JAX_CACHE", pathlib.Path(__file__).resolve().parent.parent / ".jax_cache")
)


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: end-to-end tests (still run in CI)")
  # The runs that tests start as subprocesses (`python -m ar3po_jax.main`, the notebook's kernel) inherit
  # this and share the cache too: the end-to-end tests compile the same small programs many times.
  os.environ["JAX_COMPILATION_CACHE_DIR"] = str(_CACHE)
  import jax

  jax.config.update("jax_compilation_cache_dir", str(_CACHE))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def np_rng():
  import numpy as np

  return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
  """Modules with end-to-end (`slow`) tests first, the rest in their usual order. Under `-n auto --dist
  loadfile` each worker takes whole modules in this order, so the long ones start at once instead of
  leaving one worker alone with them at the end."""
  slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
  items.sort(key=lambda item: item.module.__name__ not in slow_modules)
