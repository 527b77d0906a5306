"""What every benchmark reports about the machine, and the machine's limits, measured.

``describe()`` names the machine (CPU model, cores, load, library versions, devices, BLAS).
The limits are measured in the benchmark's own process, so a figure and the limit it is a
fraction of come from the same run:

- ``matmul_peak``: FLOP/s of a square float32 ``jax.jit(a @ b)`` (the best the machine's
  XLA does on matmul-shaped work);
- ``memory_bandwidth``: bytes/s of a numpy copy (read + write) of an array far larger
  than the caches (the ceiling of streaming work);
- ``device_memory_bandwidth``: the same for a jitted copy on JAX's default device (a GPU's
  HBM bandwidth there; XLA's own copy on CPU);
- ``fft_seconds``: the bare XLA real FFT of the same columns a spectrum transforms (the
  floor of a spectrum stage).
"""

from __future__ import annotations

import json
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


def device_memory_bandwidth(
    nbytes: int = 1 << 30, repeats: int = 7, inner: int = 4
) -> dict[str, Any]:
    """Bytes/s of a jitted device-to-device copy on the default device (read + write counted).

    The copy is ``jax.jit(jnp.negative, donate_argnums=0)`` over a float32 array of about
    ``nbytes`` bytes (``nbytes // 4`` elements) placed on ``jax.devices()[0]``: the cheapest
    elementwise kernel that has to read every byte and write every byte (XLA and JAX may
    elide a plain ``jnp.copy``, ``x * 1`` or an identity, so a copy that flips the sign bit
    stands in for it). The input is donated, so the output reuses its buffer: no call pays
    for fresh pages (on CPU, the first touch of a fresh large output cuts the rate several
    times) and the memory in use stays at ``nbytes``. Each sample is ``inner`` chained calls
    blocked once at the end, so the dispatch of one call overlaps the copy before it; the
    figure is ``2 * bytes * inner`` over the median of ``repeats`` samples, after one
    warm-up sample (which also compiles).

    On a GPU this is the HBM bandwidth a streaming kernel reaches (the ceiling of
    memory-bound stages; keep ``nbytes`` many times the L2 cache, 60 MB on an H100/H200).
    On CPU it is the same copy done by XLA, to set beside :func:`memory_bandwidth` (numpy's).

    Returns:
        ``bytes`` (one array), ``seconds`` (the median time of one copy),
        ``bytes_per_second``, ``device`` and ``platform``.

    Example:
        >>> figure = device_memory_bandwidth(nbytes=1 << 20, repeats=3)
        >>> figure["bytes"], figure["bytes_per_second"] > 0
        (1048576, True)
    """
    device = jax.devices()[0]
    elements = max(1, int(nbytes) // 4)
    negate = jax.jit(jnp.negative, donate_argnums=0)
    state = [jax.device_put(np.ones(elements, np.float32), device)]

    def chained() -> jax.Array:
        for _ in range(inner):
            state[0] = negate(state[0])
        return state[0]

    seconds = median_seconds(chained, repeats) / inner
    size = 4 * elements
    return {
        "bytes": size,
        "seconds": seconds,
        "bytes_per_second": 2.0 * size / seconds,
        "device": str(device),
        "platform": device.platform,
    }


def time_rounds(
    candidates: dict[str, Callable[[], Any]], repeats: int, warmups: int = 2
) -> dict[str, list[float]]:
    """Interleaved rounds: every candidate once per round, so load changes hit all alike,
    after ``warmups`` untimed calls of each (compile and first-touch)."""
    for run in candidates.values():
        for _ in range(warmups):
            jax.block_until_ready(run())
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append(time.perf_counter() - start)
    return times


def emit(report: dict[str, Any], out: str | None) -> None:
    """Print the JSON report, and write it to ``out`` too when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        with open(out, "w") as handle:
            handle.write(text + "\n")
