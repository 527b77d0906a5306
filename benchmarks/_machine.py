"""What every benchmark reports about the machine, and the machine's limits, measured.

``describe()`` names the machine (CPU model, cores, load, library versions, devices, BLAS).
The limits are measured in the benchmark's own process, so a figure and the limit it is a
fraction of come from the same run:

- ``matmul_peak``: FLOP/s of a square float32 ``jax.jit(a @ b)`` (the best the machine's
  XLA does on matmul-shaped work);
- ``memory_bandwidth``: bytes/s of a numpy copy (read + write) of an array far larger
  than the caches (the ceiling of streaming work);
- ``fft_seconds``: the bare XLA real FFT of the same columns a spectrum transforms (the
  floor of a spectrum stage).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe() -> dict[str, Any]:
    """The machine and the software a benchmark ran on."""
    import scipy

    try:
        from threadpoolctl import threadpool_info

        blas = [
            {key: pool.get(key) for key in ("internal_api", "version", "num_threads")}
            for pool in threadpool_info()
        ]
    except ImportError:
        blas = []
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "devices": [str(device) for device in jax.devices()],
        "blas": blas,
    }


def median_seconds(fn: Callable[[], Any], repeats: int = 7) -> float:
    """The median wall time of ``fn()`` (blocked until ready) after one warm-up call."""
    jax.block_until_ready(fn())
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def matmul_peak(n: int = 2048, repeats: int = 7) -> dict[str, float]:
    """FLOP/s of a square float32 matmul, ``jax.jit(a @ b)`` on ``n x n`` (2 n^3 FLOP)."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), jnp.float32)
    b = jax.random.normal(key_b, (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    seconds = median_seconds(lambda: matmul(a, b), repeats)
    return {"n": n, "seconds": seconds, "flop_per_second": 2.0 * n**3 / seconds}


def memory_bandwidth(nbytes: int = 1 << 29, repeats: int = 7) -> dict[str, float]:
    """Bytes/s of ``np.copyto`` between two arrays of ``nbytes`` (read + write counted)."""
    source = np.ones(nbytes // 4, np.float32)
    target = np.empty_like(source)
    seconds = median_seconds(lambda: np.copyto(target, source), repeats)
    return {"bytes": nbytes, "seconds": seconds, "bytes_per_second": 2.0 * nbytes / seconds}


def fft_seconds(rows: int, columns: int, repeats: int = 7) -> float:
    """The bare XLA real FFT of ``columns`` contiguous float32 series of ``rows`` points."""
    x = jnp.ones((columns, rows), jnp.float32)
    rfft = jax.jit(lambda x: jnp.fft.rfft(x, axis=-1))
    return median_seconds(lambda: rfft(x), repeats)
