"""Drift statistics side by side: liam-core, scipy / numpy, and a plain ``jax.jit`` of the obvious code.

Run (about 2 minutes on 2 cores; quote the medians, the machine is noisy):

    .venv/bin/python benchmarks/drift.py --rows 10000 100000 262144 --out benchmarks/results/drift.json

Two samples of ``rows x 8`` float32 (the second shifted by 0.1), as the analysis's drift windows
are (at most ``pipeline.drift.max_rows`` = 262,144 rows each). Per statistic and size, in
interleaved rounds:

* ``liam``     ``liam_core.algebra.ks_statistic`` / ``wasserstein_1d`` / ``psi``;
* ``oracle``   what a user would call instead: ``scipy.stats.ks_2samp(..., axis=0,
  method="asymp")`` (it also computes the p-value), ``scipy.stats.wasserstein_distance`` column
  by column, numpy's quantile edges and ``searchsorted`` histogram for the PSI;
* ``plain_jax`` the same algorithm in ``jax.numpy`` as a JAX user would write it (``jnp.sort``,
  ``jnp.searchsorted``, ``vmap`` over columns), under ``jax.jit``.

Every contender's result is checked against the oracle (``rtol`` 1e-4: float32 against float64).
The time limit here is the sort: ``np_sort_ms`` is numpy's sort of both samples, the least work a
sort-based statistic does, and ``liam_over_np_sort`` the ratio. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from _machine import describe, emit, time_rounds

from liam_core import algebra

COLUMNS = 8
BINS = 10
EPS = 1e-6  # psi's floor for an empty bin


def plain_ks(a: jax.Array, b: jax.Array) -> jax.Array:
    def one(a: jax.Array, b: jax.Array) -> jax.Array:
        a, b = jnp.sort(a), jnp.sort(b)
        pooled = jnp.concatenate([a, b])
        cdf_a = jnp.searchsorted(a, pooled, side="right") / a.shape[0]
        cdf_b = jnp.searchsorted(b, pooled, side="right") / b.shape[0]
        return jnp.max(jnp.abs(cdf_a - cdf_b))

    return jax.vmap(one, in_axes=1)(a, b)


def plain_wasserstein(u: jax.Array, v: jax.Array) -> jax.Array:
    def one(u: jax.Array, v: jax.Array) -> jax.Array:
        u, v = jnp.sort(u), jnp.sort(v)
        pooled = jnp.sort(jnp.concatenate([u, v]))
        deltas = jnp.diff(pooled)
        cdf_u = jnp.searchsorted(u, pooled[:-1], side="right") / u.shape[0]
        cdf_v = jnp.searchsorted(v, pooled[:-1], side="right") / v.shape[0]
        return jnp.sum(jnp.abs(cdf_u - cdf_v) * deltas)

    return jax.vmap(one, in_axes=1)(u, v)


def plain_psi(reference: jax.Array, current: jax.Array) -> jax.Array:
    def one(reference: jax.Array, current: jax.Array) -> jax.Array:
        edges = jnp.quantile(reference, jnp.arange(1, BINS) / BINS)
        share_r = (
            jnp.bincount(jnp.searchsorted(edges, reference, side="right"), length=BINS)
            / reference.size
        )
        share_c = (
            jnp.bincount(jnp.searchsorted(edges, current, side="right"), length=BINS) / current.size
        )
        share_r, share_c = jnp.maximum(share_r, EPS), jnp.maximum(share_c, EPS)
        return jnp.sum((share_c - share_r) * jnp.log(share_c / share_r))

    return jax.vmap(one, in_axes=1)(reference, current)


def numpy_psi(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    out = []
    for j in range(reference.shape[1]):
        edges = np.quantile(reference[:, j], np.arange(1, BINS) / BINS)
        share_r = np.bincount(np.searchsorted(edges, reference[:, j], side="right"), minlength=BINS)
        share_c = np.bincount(np.searchsorted(edges, current[:, j], side="right"), minlength=BINS)
        share_r = np.maximum(share_r / reference.shape[0], EPS)
        share_c = np.maximum(share_c / current.shape[0], EPS)
        out.append(np.sum((share_c - share_r) * np.log(share_c / share_r)))
    return np.asarray(out)


def contenders(a: np.ndarray, b: np.ndarray) -> dict[str, dict[str, Callable[[], Any]]]:
    da, db = jax.device_put(a), jax.device_put(b)
    jit_ks, jit_w, jit_psi = jax.jit(plain_ks), jax.jit(plain_wasserstein), jax.jit(plain_psi)
    columns = range(a.shape[1])
    return {
        "ks_statistic": {
            "liam": lambda: algebra.ks_statistic(da, db),
            "oracle": lambda: scipy.stats.ks_2samp(a, b, axis=0, method="asymp").statistic,
            "plain_jax": lambda: jit_ks(da, db),
        },
        "wasserstein_1d": {
            "liam": lambda: algebra.wasserstein_1d(da, db),
            "oracle": lambda: np.array(
                [scipy.stats.wasserstein_distance(a[:, j], b[:, j]) for j in columns]
            ),
            "plain_jax": lambda: jit_w(da, db),
        },
        "psi": {
            "liam": lambda: algebra.psi(da, db, bins=BINS),
            "oracle": lambda: numpy_psi(a, b),
            "plain_jax": lambda: jit_psi(da, db),
        },
    }


def median_ms(candidates: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median ms of each candidate over interleaved rounds."""
    return {
        name: 1e3 * statistics.median(t) for name, t in time_rounds(candidates, repeats).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 262_144])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None, help="also write the JSON report here")
    options = parser.parse_args()
    report: dict[str, Any] = {
        "columns": COLUMNS,
        "repeats": options.repeats,
        "machine": describe(),
        "sizes": {},
    }
    rng = np.random.default_rng(0)
    for rows in options.rows:
        a = rng.standard_normal((rows, COLUMNS)).astype(np.float32)
        b = (rng.standard_normal((rows, COLUMNS)) + 0.1).astype(np.float32)
        sort_ms = median_ms({"np_sort": lambda a=a, b=b: (np.sort(a, 0), np.sort(b, 0))}, 5)
        entry: dict[str, Any] = {"np_sort_ms": round(sort_ms["np_sort"], 2)}
        for statistic, candidates in contenders(a, b).items():
            oracle = np.asarray(candidates["oracle"](), np.float64)
            agree = {
                name: bool(np.allclose(np.asarray(run(), np.float64), oracle, rtol=1e-4, atol=1e-6))
                for name, run in candidates.items()
            }
            medians = median_ms(candidates, options.repeats)
            entry[statistic] = {
                "median_ms": {name: round(ms, 2) for name, ms in medians.items()},
                "liam_over_oracle": round(medians["liam"] / medians["oracle"], 3),
                "liam_over_plain_jax": round(medians["liam"] / medians["plain_jax"], 3),
                "liam_over_np_sort": round(medians["liam"] / sort_ms["np_sort"], 2),
                "agrees_with_oracle": agree,
            }
        report["sizes"][str(rows)] = entry
        print(json.dumps({str(rows): entry}), flush=True)
    emit(report, options.out)


if __name__ == "__main__":
    main()
