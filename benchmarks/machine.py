"""What a benchmark number was measured on, and the machine's matrix-multiply peak."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import time

import jax
import jax.numpy as jnp


def cpu_model() -> str:
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return platform.processor() or "unknown"
  for line in out.splitlines():
    if line.startswith("Model name:"):
      return line.split(":", 1)[1].strip()
  return "unknown"


def describe() -> dict:
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
      "cpu": cpu_model(),
      "cores": os.cpu_count(),
      "load_average_1m": os.getloadavg()[0],
      "python": platform.python_version(),
      "jax": jax.__version__,
      "jax_backend": jax.default_backend(),
  }


def matmul_peak_flops(n: int = 2048, repeats: int = 10, dtype=jnp.float32) -> float:
  """Best FLOP/s of an n x n x n jnp.dot over `repeats` timed calls (compile excluded).

  The best, not the mean: the peak is what the hardware can do, and on a shared machine every
  slower repeat measures a neighbour's load, not the kernel.
  """
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    dot(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2.0 * n**3 / best


def write_report(path: str, report: dict) -> None:
  """The benchmark's JSON report at `path`, folders created; written whole, then renamed, so an
  interrupted run never leaves half a report over the last good one."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(report, f, indent=1)
  os.replace(path + ".tmp", path)
