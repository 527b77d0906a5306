"""Products of a tall ``[n, d]`` ``x`` (many rows, few columns) with its columns centred: the
Gram matrix ``(x - mean).T @ (x - mean)`` of covariance, PCA and whitening, and the projection
``(x - mean) @ matrix`` of PCA and whitening (on the host only onto a few axes: PCA's).

XLA CPU is slow at both shapes. Measured on the 2-core Xeon at ``[1e6, 64]`` float32:
``jax.jit`` of the Gram matrix took 150-290 ms (30-55 GFLOP/s, at most a quarter of its own
square-matmul peak) and of ``(x - mean) @ w`` onto 8 axes 125 ms, where numpy's BLAS takes
26 ms for ``x @ w``. On the CPU backend both therefore run through :func:`numpy_on_cpu`:
fixed chunks of rows, each centred while in cache and multiplied by BLAS, spread over a pool
of threads. The Gram matrix sums its chunks in float64, in row order within each of
``_GROUPS`` fixed groups and then group by group, so its bits depend on ``n`` and ``d`` only,
never on the number of threads (tested); each projected row is its own product. On other
platforms, and where XLA's dot was measured the faster (small inputs, a Gram matrix of more
than 64 columns, a projection onto more than 8 axes, dtypes other than float32/64), both are
XLA's dot. ``custom_jvp``
rules keep them differentiable: the tangents are XLA's.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from ._host import numpy_on_cpu

# Where the host path wins, measured on the 2-core Xeon against XLA's dot (float32, d = 8..256
# columns, n = 32768..1048576 rows, k = 8 projected axes): the Gram matrix 1.25x at [32768, 64]
# and 2.1-2.5x from [262144, 32] up, but 0.33-0.70x at the smaller inputs below 2^27 of
# n * d * d (not all: [1048576, 8] was 1.47x) and 0.7-0.97x at d = 128 and 256; the projection
# 1.1-2.8x from 2^23 elements up to d = 256 onto k = 8 axes, 0.4-0.9x below (0.86x at
# [100000, 64]), but 1.01x onto 16 axes, 0.81x onto 32 and 0.72x onto 64 (whitening's
# square matrix) at [1048576, 64].
GRAM_MIN_WORK = 1 << 27
"""The Gram matrix runs on the host from this ``n * d * d`` up ..."""
GRAM_MAX_COLUMNS = 64
"""... to this many columns ``d`` (beyond, XLA's dot is the faster)."""
PRODUCT_MIN_ELEMENTS = 1 << 23
"""The projection runs on the host from this ``n * d`` up ..."""
PRODUCT_MAX_COLUMNS = 256
"""... to this many columns ``d`` (the most measured) ..."""
PRODUCT_MAX_OUTPUTS = 8
"""... onto at most this many axes ``k`` (PCA's projection, not whitening's)."""
_GRAM_CHUNK = 1 << 18
"""A chunk of the Gram matrix holds about this many elements (4096 rows of 64 columns)."""
_PRODUCT_CHUNK = 1 << 16
"""A chunk of a projection holds about this many elements (1024 rows of 64 columns); both
sizes were the fastest of 2^13..2^20 measured at ``[1e6, 64]`` float32."""
_GROUPS = 16
"""Chunks are handed to the threads in this many fixed groups of consecutive chunks."""


def _host_dtype(x: jax.Array) -> bool:
    return x.dtype in (jnp.float32, jnp.float64)


def centered_gram(x: jax.Array, mean: jax.Array) -> jax.Array:
    """``(x - mean).T @ (x - mean)`` of ``[n, d]`` ``x`` and a ``[d]`` ``mean``.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
        >>> centered_gram(x, x.mean(axis=0)).tolist()
        [[8.0, 14.0], [14.0, 26.0]]
    """
    n, d = x.shape
    if _host_dtype(x) and d <= GRAM_MAX_COLUMNS and n * d * d >= GRAM_MIN_WORK:
        return _host_gram(x, mean)
    return _xla_gram(x, mean)


def centered_product(x: jax.Array, mean: jax.Array, matrix: jax.Array) -> jax.Array:
    """``(x - mean) @ matrix`` of ``[n, d]`` ``x``, a ``[d]`` ``mean`` and a ``[d, k]``
    ``matrix`` of the same dtype.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
        >>> centered_product(x, x.mean(axis=0), jnp.ones((2, 1))).tolist()
        [[-5.0], [-1.0], [6.0]]
    """
    (n, d), k = x.shape, matrix.shape[1]
    fits = d <= PRODUCT_MAX_COLUMNS and k <= PRODUCT_MAX_OUTPUTS and n * d >= PRODUCT_MIN_ELEMENTS
    if fits and _host_dtype(x) and mean.dtype == matrix.dtype == x.dtype:
        return _host_product(x, mean, matrix)
    return (x - mean) @ matrix


def _xla_gram(x: jax.Array, mean: jax.Array) -> jax.Array:
    centered = x - mean
    return centered.T @ centered


@jax.custom_jvp
def _host_gram(x: jax.Array, mean: jax.Array) -> jax.Array:
    spec = jax.ShapeDtypeStruct((x.shape[1], x.shape[1]), x.dtype)
    (gram,) = numpy_on_cpu(_write_grams, lambda x, m: (_xla_gram(x, m),), [spec], x, mean)
    return gram


@_host_gram.defjvp
def _host_gram_jvp(primals, tangents):
    (x, mean), (dx, dmean) = primals, tangents
    half = (dx - dmean).T @ (x - mean)
    return _host_gram(x, mean), half + half.T


@jax.custom_jvp
def _host_product(x: jax.Array, mean: jax.Array, matrix: jax.Array) -> jax.Array:
    spec = jax.ShapeDtypeStruct((x.shape[0], matrix.shape[1]), x.dtype)
    (product,) = numpy_on_cpu(
        _write_products, lambda x, m, w: ((x - m) @ w,), [spec], x, mean, matrix
    )
    return product


@_host_product.defjvp
def _host_product_jvp(primals, tangents):
    (x, mean, matrix), (dx, dmean, dmatrix) = primals, tangents
    tangent = (dx - dmean) @ matrix + (x - mean) @ dmatrix
    return _host_product(x, mean, matrix), tangent


def _write_grams(outputs: list[np.ndarray], x: np.ndarray, mean: np.ndarray) -> None:
    """The callback: ``x`` ``[..., n, d]`` and ``mean`` ``[..., d]`` (vmap's axes in front)."""
    for index in np.ndindex(x.shape[:-2]):
        outputs[0][index] = numpy_centered_gram(x[index], mean[index])


def _write_products(
    outputs: list[np.ndarray], x: np.ndarray, mean: np.ndarray, matrix: np.ndarray
) -> None:
    """The callback: ``x`` ``[..., n, d]``, ``mean`` ``[..., d]``, ``matrix`` ``[..., d, k]``."""
    for index in np.ndindex(x.shape[:-2]):
        numpy_centered_product(x[index], mean[index], matrix[index], out=outputs[0][index])


def numpy_centered_gram(x: np.ndarray, mean: np.ndarray, workers: int | None = None) -> np.ndarray:
    """:func:`centered_gram` in numpy, as the CPU backend computes it. ``workers`` (default:
    the CPUs this process may use) changes the speed, never the bits.

    Example:
        >>> x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
        >>> numpy_centered_gram(x, x.mean(axis=0)).tolist()
        [[8.0, 14.0], [14.0, 26.0]]
    """
    d = x.shape[1]
    sums = np.zeros((_GROUPS, d, d), np.float64)

    def add_chunks(group: int, chunks: list[slice]) -> None:
        size = chunks[0].stop - chunks[0].start if chunks else 0
        buffer = np.empty((size, d), x.dtype)
        product = np.empty((d, d), x.dtype)
        for rows in chunks:
            centered = np.subtract(x[rows], mean, out=buffer[: rows.stop - rows.start])
            np.matmul(centered.T, centered, out=product)
            sums[group] += product

    _in_groups(x, _GRAM_CHUNK, add_chunks, workers)
    return np.sum(sums, axis=0).astype(x.dtype)


def numpy_centered_product(
    x: np.ndarray,
    mean: np.ndarray,
    matrix: np.ndarray,
    out: np.ndarray | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """:func:`centered_product` in numpy, as the CPU backend computes it (into ``out``).

    Example:
        >>> x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]])
        >>> numpy_centered_product(x, x.mean(axis=0), np.ones((2, 1))).tolist()
        [[-5.0], [-1.0], [6.0]]
    """
    out = np.empty((x.shape[0], matrix.shape[1]), x.dtype) if out is None else out
    matrix = np.ascontiguousarray(matrix)  # BLAS was 3x slower on a transposed one

    def project_chunks(group: int, chunks: list[slice]) -> None:
        del group
        size = chunks[0].stop - chunks[0].start if chunks else 0
        buffer = np.empty((size, x.shape[1]), x.dtype)
        for rows in chunks:
            centered = np.subtract(x[rows], mean, out=buffer[: rows.stop - rows.start])
            np.matmul(centered, matrix, out=out[rows])

    _in_groups(x, _PRODUCT_CHUNK, project_chunks, workers)
    return out


def _in_groups(
    x: np.ndarray, elements: int, work: Callable[[int, list[slice]], None], workers: int | None
) -> None:
    """``work(group, chunks)`` for each of the ``_GROUPS`` groups of consecutive chunks of
    about ``elements`` elements of ``x`` (fixed by its shape alone), on ``workers`` threads."""
    n, d = x.shape
    size = max(1, elements // max(d, 1))
    chunks = [slice(start, min(start + size, n)) for start in range(0, n, size)]
    bounds = [(g * len(chunks)) // _GROUPS for g in range(_GROUPS + 1)]
    groups = [chunks[bounds[g] : bounds[g + 1]] for g in range(_GROUPS)]
    workers = workers or _cpus()
    if workers == 1:
        for group, members in enumerate(groups):
            work(group, members)
    else:
        list(_pool(workers).map(work, range(_GROUPS), groups))


def _cpus() -> int:
    """The CPUs this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="liam-tall")
