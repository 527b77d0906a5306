"""Benchmark: the LIAM Binary Algebra against numpy, scipy and scikit-learn, side by side.

On N x 64 float32 rows (N = 1e4, 1e5, 1e6 and 4e6 by default):

- (a) ``spectrum``: standardize -> rolling mean over 32 rows -> power spectrum of every column;
- (b) ``patterns``: covariance -> SVD -> rank, condition number, explained variance;
- (c) ``pca``: PCA projection on 8 components;
- ``pipeline``: the three together (one jitted program for liam-core);
- ``welch``: standardize -> Welch's power spectral density of every column (segments of
  1024 rows, half overlapping, Hann), with ``jax.scipy.signal.welch`` as the plain-JAX
  contender beside scipy.

Every contender runs in this one process on the same input, in interleaved rounds (each once
per round); each figure is the median of ``--repeats`` runs (at least 7), JAX compile time is
reported apart, peak memory is the
compiled program's arguments + outputs + temporaries for JAX and the tracemalloc peak for
numpy/scipy/scikit-learn, and the error of every float32 result is measured against a
float64 numpy reference. Output: JSON (``--out``) and a markdown table on stdout.

    python benchmarks/algebra.py --sizes 100000 1000000 --repeats 7 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import _machine
import jax
import jax.numpy as jnp
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


# ---- a plain jax.jit of the obvious code (what a JAX user writes in fifteen lines) ----------


def jax_spectrum(x):
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    c = jnp.cumsum(z, axis=0)
    rolled = jnp.concatenate([c[WINDOW - 1 : WINDOW], c[WINDOW:] - c[:-WINDOW]]) / WINDOW
    rolled = rolled - rolled.mean(axis=0)
    n = rolled.shape[0]
    power = jnp.abs(jnp.fft.rfft(rolled, axis=0)) ** 2 / n
    return power.at[1 : (n + 1) // 2].multiply(2)  # one-sided density, fs = 1


def jax_patterns(x):
    s = jnp.linalg.svd(jnp.cov(x, rowvar=False), compute_uv=False)
    tolerance = s.max() * s.shape[0] * jnp.finfo(s.dtype).eps
    return jnp.sum(s > tolerance), s[0] / s[-1], s**2 / jnp.sum(s**2)


def jax_pca(x):
    _, vectors = jnp.linalg.eigh(jnp.cov(x, rowvar=False))
    components = vectors[:, ::-1][:, :COMPONENTS]
    largest = jnp.argmax(jnp.abs(components), axis=0)
    components = components * jnp.sign(components[largest, jnp.arange(COMPONENTS)])
    return (x - x.mean(axis=0)) @ components


def jax_pipeline(x):
    return jax_spectrum(x), jax_patterns(x), jax_pca(x)


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
    "spectrum": {"liam-core": liam_spectrum, "jax.jit": jax_spectrum, "numpy": numpy_spectrum,
                 "scipy": scipy_spectrum},
    "patterns": {"liam-core": liam_patterns, "jax.jit": jax_patterns, "numpy": numpy_patterns,
                 "scipy": scipy_patterns},
    "pca": {"liam-core": liam_pca, "jax.jit": jax_pca, "numpy": numpy_pca,
            "scikit-learn": sklearn_pca},
    "pipeline": {"liam-core": liam_pipeline, "jax.jit": jax_pipeline, "numpy": numpy_pipeline,
                 "scipy": scipy_pipeline},
    "welch": {"liam-core": liam_welch, "jax.scipy.signal": jax_welch, "scipy": scipy_welch},
}  # fmt: skip
JAX_CONTENDERS = {"liam-core", "jax.jit", "jax.scipy.signal"}  # jitted, on device arrays


def stage_limit(stage: str, rows: int, columns: int, limits: dict[str, Any]) -> dict[str, Any]:
    """What bounds ``stage`` on this machine: the seconds the machine's measured limit
    allows (FLOP at the matmul peak for the matmul-shaped stages, the bare real FFT of the
    same columns for the spectra)."""
    gram = 2.0 * rows * columns * columns  # the covariance's FLOP
    if stage == "spectrum":
        fft = _machine.fft_seconds(rows - WINDOW + 1, columns)
        return {"bound": "bare XLA rfft of the same columns", "seconds": fft}
    if stage == "welch":
        count = (rows - SEGMENT // 2) // (SEGMENT // 2)
        fft = _machine.fft_seconds(SEGMENT, columns * count)
        return {"bound": "bare XLA rfft of the same segments", "seconds": fft}
    peak = limits["matmul_peak"]["flop_per_second"]
    if stage == "pipeline":  # the spectrum's FFT and the two stages' FLOP
        flop = 2 * gram + 2.0 * rows * columns * COMPONENTS
        fft = _machine.fft_seconds(rows - WINDOW + 1, columns)
        return {
            "bound": "bare XLA rfft of the spectrum's columns + FLOP at the square-matmul peak",
            "flop": flop,
            "seconds": fft + flop / peak,
        }
    flop = gram + (2.0 * rows * columns * COMPONENTS if stage == "pca" else 0.0)
    return {"bound": "FLOP at the square-matmul peak", "flop": flop, "seconds": flop / peak}


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


def _numpy_peak_bytes(fn: Callable, x: np.ndarray) -> int:
    tracemalloc.start()
    fn(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def run(
    sizes: list[int],
    repeats: int,
    columns: int = 64,
    seed: int = 0,
    oracle_rows: int = 10**6,
    out: str | None = None,
) -> dict[str, Any]:
    """Every stage at every size; above ``oracle_rows`` rows only the JAX contenders run
    (the scaling table), and errors are not measured. The results so far are written to
    ``out`` after every case, so a run cut short keeps what it measured."""
    rng = np.random.default_rng(seed)
    limits = {
        "matmul_peak": _machine.matmul_peak(repeats=repeats),
        "memory_bandwidth": _machine.memory_bandwidth(repeats=repeats),
        "device_memory_bandwidth": _machine.device_memory_bandwidth(repeats=repeats),
    }
    results: dict[str, Any] = {
        "machine": _machine.describe(),
        "limits": limits,
        "repeats": repeats,
        "cases": [],
    }
    for n in sizes:
        x = rng.standard_normal((n, columns)).astype(np.float32)
        x[:, 1] += np.sin(np.arange(n) * 2 * np.pi / 96).astype(np.float32)  # a daily cycle
        x64 = x.astype(np.float64)
        device_x = jax.device_put(x)
        input_bytes = x.nbytes
        oracles = n <= oracle_rows
        for stage, contenders in CONTENDERS.items():
            reference = None
            if oracles:
                reference = {
                    "spectrum": numpy_spectrum,
                    "patterns": numpy_patterns,
                    "pca": numpy_pca,
                    "pipeline": numpy_pipeline,
                    "welch": scipy_welch,
                }[stage](x64)
            case = {"stage": stage, "rows": n, "columns": columns, "contenders": {}}
            runs: dict[str, Callable[[], Any]] = {}
            for name, fn in contenders.items():
                if not oracles and name not in JAX_CONTENDERS:
                    continue
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
                    runs[name] = lambda c=compiled, d=device_x: c(d)
                else:
                    result = fn(x)
                    entry["peak_bytes"] = input_bytes + _numpy_peak_bytes(fn, x)
                    runs[name] = lambda fn=fn, x=x: fn(x)
                entry["peak_over_input"] = entry["peak_bytes"] / input_bytes
                if reference is not None:
                    entry["relative_error_vs_float64"] = _relative_error(result, reference)
                if name == "liam-core":
                    result_of_ours = result
                case["contenders"][name] = entry
            # Interleaved rounds (every contender once per round), so a change of the
            # machine's speed or memory state hits all alike; each was called once above.
            for name, seconds in _machine.time_rounds(runs, repeats, warmups=1).items():
                case["contenders"][name]["median_seconds"] = statistics.median(seconds)
                case["contenders"][name]["seconds"] = seconds
            ours = case["contenders"]["liam-core"]["median_seconds"]
            case["speedup"] = {
                name: entry["median_seconds"] / ours
                for name, entry in case["contenders"].items()
                if name != "liam-core"
            }
            limit = stage_limit(stage, n, columns, limits)
            limit["fraction_reached"] = limit["seconds"] / ours
            case["limit"] = limit
            # The least traffic a stage can cost: its input read once, its outputs written
            # once, at the default device's copy bandwidth (HBM on a GPU).
            outputs = jax.tree_util.tree_leaves(result_of_ours)
            moved = input_bytes + sum(np.asarray(leaf).nbytes for leaf in outputs)
            bandwidth = limits["device_memory_bandwidth"]["bytes_per_second"]
            case["memory_traffic"] = {
                "bytes": moved,
                "seconds_at_device_bandwidth": moved / bandwidth,
                "fraction_reached": moved / bandwidth / ours,
            }
            case["rows_per_second"] = n / ours
            results["cases"].append(case)
            print(_row(case), flush=True)
            if out is not None:
                _write(results, out)
    return results


def _write(results: dict[str, Any], out: str) -> None:
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "w") as file:
        json.dump(results, file, indent=2)
    os.replace(out + ".tmp", out)


def _row(case: dict[str, Any]) -> str:
    cells = [case["stage"], f"{case['rows']:.0e}"]
    for name, entry in case["contenders"].items():
        cells.append(f"{name} {entry['median_seconds'] * 1e3:.1f} ms")
    cells += [f"x{speed:.2f} vs {name}" for name, speed in case["speedup"].items()]
    ours = case["contenders"]["liam-core"]
    cells.append(f"{case['limit']['fraction_reached']:.0%} of the limit")
    cells.append(f"{case['memory_traffic']['fraction_reached']:.0%} of the bandwidth")
    cells.append(f"peak {ours['peak_over_input']:.2f}x input")
    cells.append(f"compile {ours['compile_seconds']:.2f} s")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 4_000_000]
    )
    parser.add_argument(
        "--oracle-rows",
        type=int,
        default=1_000_000,
        help="the largest size at which numpy/scipy/scikit-learn and the float64 errors run",
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/algebra.json")
    args = parser.parse_args()
    if args.repeats < 7:
        parser.error("--repeats must be at least 7 (medians of at least 7 runs)")
    run(args.sizes, args.repeats, oracle_rows=args.oracle_rows, out=args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
