"""Session-wide test setup: a persistent JAX compile cache so repeated shapes never compile twice."""

import os
import pathlib

import pytest

_CACHE = pathlib.Path(
    os.environ.get("AR3PO_TEST_JAX_CACHE", pathlib.Path(__file__).resolve().parent.parent / ".jax_cache")
)


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: end-to-end tests (still run in CI)")
  import jax

  jax.config.update("jax_compilation_cache_dir", str(_CACHE))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture
def np_rng():
  import numpy as np

  return np.random.default_rng(0)
