"""Benchmark: the LIAM Binary Algebra against numpy, scipy and scikit-learn, side by side.

On N x 64 float32 rows (N = 1e5 and 1e6 by default):

- (a) ``spectrum``: standardize -> rolling mean over 32 rows -> power spectrum of every column;
- (b) ``patterns``: covariance -> SVD -> rank, condition number, explained variance;
- (c) ``pca``: PCA projection on 8 components;
- ``pipeline``: the three together (one jitted program for liam-core);
- ``welch``: standardize -> Welch's power spectral density of every column (segments of
  1024 rows, half overlapping, Hann), with ``jax.scipy.signal.welch`` as the plain-JAX
  contender beside scipy.

Every contender runs in this one process on the same input; each figure is the median of
``--repeats`` runs (at least 7), JAX compile time is reported apart, peak memory is the
compiled program's arguments + outputs + temporaries for JAX and the tracemalloc peak for
numpy/scipy/scikit-learn, and the error of every float32 result is measured against a
float64 numpy reference. Output: JSON (``--out``) and a markdown table on stdout.

    python benchmarks/algebra.py --sizes 100000 1000000 --repeats 7 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import jax
import jax.scipy.signal
import numpy as np
import scipy.linalg
import scipy.ndimage
import scipy.signal
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from liam_core import algebra

WINDOW = 32
COMPONENTS = 8
SEGMENT = 1024


# ---- liam-core ------------------------------------------------------------------------------


def liam_spectrum(x):
    return algebra.periodogram(algebra.rolling_mean(algebra.standardize(x), WINDOW))[1]


def liam_patterns(x):
    patterns = algebra.svd_patterns(algebra.covariance(x))
    return patterns["rank"], patterns["condition_number"], patterns["explained_variance_ratio"]


def liam_pca(x):
    return algebra.pca(x, COMPONENTS)[0]


def liam_pipeline(x):
    return liam_spectrum(x), liam_patterns(x), liam_pca(x)


def liam_welch(x):
    return algebra.welch(algebra.standardize(x), nperseg=SEGMENT)[1]


def jax_welch(x):
    """What a JAX user writes: jax.numpy standardization and jax.scipy.signal.welch."""
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    return jax.scipy.signal.welch(z, nperseg=SEGMENT, axis=0)[1]


# ---- numpy ----------------------------------------------------------------------------------


def numpy_spectrum(x):
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    c = np.cumsum(z, axis=0, dtype=z.dtype)
    rolled = np.concatenate([c[WINDOW - 1 : WINDOW], c[WINDOW:] - c[:-WINDOW]]) / WINDOW
    rolled = rolled - rolled.mean(axis=0)
    n = rolled.shape[0]
    power = np.abs(np.fft.rfft(rolled, axis=0)) ** 2 / n
    power[1 : (n + 1) // 2] *= 2  # one-sided density, fs = 1
    return power


def numpy_patterns(x):
    s = np.linalg.svd(np.cov(x, rowvar=False), compute_uv=False)
    tolerance = s.max() * max(s.shape[0], s.shape[0]) * np.finfo(s.dtype).eps
    rank = int(np.sum(s > tolerance))
    return rank, s[0] / s[-1], s**2 / np.sum(s**2)


def numpy_pca(x):
    mean = x.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    components = vectors[:, ::-1][:, :COMPONENTS]
    largest = np.argmax(np.abs(components), axis=0)
    components = components * np.sign(components[largest, np.arange(COMPONENTS)])
    return (x - mean) @ components


def numpy_pipeline(x):
    return numpy_spectrum(x), numpy_patterns(x), numpy_pca(x)


# ---- scipy and scikit-learn -----------------------------------------------------------------


def scipy_spectrum(x):
    z = StandardScaler().fit_transform(x)
    # uniform_filter1d centers an even window at i - WINDOW // 2; keep the "valid" rows.
    rolled = scipy.ndimage.uniform_filter1d(z, WINDOW, axis=0)
    rolled = rolled[WINDOW // 2 : x.shape[0] - (WINDOW - 1 - WINDOW // 2)]
    return scipy.signal.periodogram(rolled, axis=0)[1]


def scipy_patterns(x):
    s = scipy.linalg.svd(np.cov(x, rowvar=False), compute_uv=False)
    tolerance = s.max() * s.shape[0] * np.finfo(s.dtype).eps
    return int(np.sum(s > tolerance)), s[0] / s[-1], s**2 / np.sum(s**2)


def sklearn_pca(x):
    return PCA(COMPONENTS, svd_solver="covariance_eigh").fit_transform(x)


def scipy_pipeline(x):
    return scipy_spectrum(x), scipy_patterns(x), sklearn_pca(x)


def scipy_welch(x):
    return scipy.signal.welch(StandardScaler().fit_transform(x), nperseg=SEGMENT, axis=0)[1]


CONTENDERS: dict[str, dict[str, Callable]] = {
    "spectrum": {"liam-core": liam_spectrum, "numpy": numpy_spectrum, "scipy": scipy_spectrum},
    "patterns": {"liam-core": liam_patterns, "numpy": numpy_patterns, "scipy": scipy_patterns},
    "pca": {"liam-core": liam_pca, "numpy": numpy_pca, "scikit-learn": sklearn_pca},
    "pipeline": {"liam-core": liam_pipeline, "numpy": numpy_pipeline, "scipy": scipy_pipeline},
    "welch": {"liam-core": liam_welch, "jax.scipy.signal": jax_welch, "scipy": scipy_welch},
}
JAX_CONTENDERS = {"liam-core", "jax.scipy.signal"}  # jitted, compiled apart, on device arrays


# ---- measurement ----------------------------------------------------------------------------


def _leaves(result: Any) -> list[np.ndarray]:
    return [np.asarray(leaf, np.float64) for leaf in jax.tree_util.tree_leaves(result)]


def _relative_error(result: Any, reference: Any) -> float:
    """Largest error of any output, relative to that output's largest magnitude."""
    errors = []
    for got, want in zip(_leaves(result), _leaves(reference), strict=True):
        if got.shape != want.shape:
            raise ValueError(f"shape {got.shape} != reference {want.shape}")
        got, want = np.abs(got), np.abs(want)  # PCA axes and spectra: compare magnitudes
        scale = max(float(np.max(want)), np.finfo(np.float64).tiny)
        errors.append(float(np.max(np.abs(got - want))) / scale)
    return max(errors)


def _time(fn: Callable[[], Any], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        seconds.append(time.perf_counter() - start)
    return seconds


def _numpy_peak_bytes(fn: Callable, x: np.ndarray) -> int:
    tracemalloc.start()
    fn(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def run(sizes: list[int], repeats: int, columns: int = 64, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    results: dict[str, Any] = {"machine": machine(), "repeats": repeats, "cases": []}
    for n in sizes:
        x = rng.standard_normal((n, columns)).astype(np.float32)
        x[:, 1] += np.sin(np.arange(n) * 2 * np.pi / 96).astype(np.float32)  # a daily cycle
        x64 = x.astype(np.float64)
        device_x = jax.device_put(x)
        input_bytes = x.nbytes
        for stage, contenders in CONTENDERS.items():
            reference = {
                "spectrum": numpy_spectrum,
                "patterns": numpy_patterns,
                "pca": numpy_pca,
                "pipeline": numpy_pipeline,
                "welch": scipy_welch,
            }[stage](x64)
            case = {"stage": stage, "rows": n, "columns": columns, "contenders": {}}
            for name, fn in contenders.items():
                entry: dict[str, Any] = {}
                if name in JAX_CONTENDERS:
                    jitted = jax.jit(fn)
                    start = time.perf_counter()
                    compiled = jitted.lower(device_x).compile()
                    entry["compile_seconds"] = time.perf_counter() - start
                    memory = compiled.memory_analysis()
                    entry["peak_bytes"] = int(
                        memory.argument_size_in_bytes
                        + memory.output_size_in_bytes
                        + memory.temp_size_in_bytes
                    )
                    result = compiled(device_x)
                    seconds = _time(lambda c=compiled, d=device_x: c(d), repeats)
                else:
                    result = fn(x)
                    entry["peak_bytes"] = input_bytes + _numpy_peak_bytes(fn, x)
                    seconds = _time(lambda fn=fn, x=x: fn(x), repeats)
                entry["median_seconds"] = statistics.median(seconds)
                entry["seconds"] = seconds
                entry["peak_over_input"] = entry["peak_bytes"] / input_bytes
                entry["relative_error_vs_float64"] = _relative_error(result, reference)
                case["contenders"][name] = entry
            ours = case["contenders"]["liam-core"]["median_seconds"]
            case["speedup"] = {
                name: entry["median_seconds"] / ours
                for name, entry in case["contenders"].items()
                if name != "liam-core"
            }
            results["cases"].append(case)
            print(_row(case), flush=True)
    return results


def machine() -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "devices": [str(device) for device in jax.devices()],
        "blas": [
            {
                key: pool.get(key)
                for key in ("internal_api", "version", "architecture", "num_threads")
            }
            for pool in threadpool_info()
        ],
        "openblas_env": {
            key: os.environ.get(key) for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        },
    }


def _row(case: dict[str, Any]) -> str:
    cells = [case["stage"], f"{case['rows']:.0e}"]
    for name, entry in case["contenders"].items():
        cells.append(f"{name} {entry['median_seconds'] * 1e3:.1f} ms")
    cells += [f"x{speed:.2f} vs {name}" for name, speed in case["speedup"].items()]
    ours = case["contenders"]["liam-core"]
    cells.append(f"peak {ours['peak_over_input']:.2f}x input")
    cells.append(f"compile {ours['compile_seconds']:.2f} s")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/algebra.json")
    args = parser.parse_args()
    if args.repeats < 7:
        parser.error("--repeats must be at least 7 (medians of at least 7 runs)")
    results = run(args.sizes, args.repeats)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as file:
        json.dump(results, file, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
