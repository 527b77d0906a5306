"""Sorts along an axis: ``jnp.sort``'s bits, numpy's speed on the CPU backend.

XLA CPU sorts with a comparator called per comparison: measured on the 2-core Xeon, 524,288 x 8
float32 values take 1.35-1.8 s along either axis, where ``np.sort`` takes 26-47 ms. On CPU these
functions therefore sort through a host callback to numpy's stable sort, which orders floats
exactly as ``lax.sort`` does (``-0.0`` and ``+0.0`` tie and keep their order, NaNs go last in
their order; checked in ``tests/test_stats.py``), so the bits are the same either way. On other
platforms (GPU, TPU, where XLA's sort is fast) they are ``lax.sort``; ``_host.numpy_on_cpu``
chooses.

They work under ``jit`` and ``vmap`` (the callback sorts along a trailing axis, so added batch
axes come first). Being callbacks on CPU, they are not differentiable there and cannot go into
``jax.export``: the drift statistics that use them are neither.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

from ._host import numpy_on_cpu


def sort(x: jax.Array, axis: int = 0) -> jax.Array:
    """``jnp.sort(x, axis=axis)`` (stable).

    Example:
        >>> import jax.numpy as jnp
        >>> sort(jnp.array([[3.0, 1.0], [-0.0, 2.0], [0.0, jnp.nan]])).tolist()
        [[-0.0, 1.0], [0.0, 2.0], [3.0, nan]]
    """
    return sort_by_key(x, axis=axis)[0]


def sort_by_key(key: jax.Array, *values: jax.Array, axis: int = 0) -> tuple[jax.Array, ...]:
    """``lax.sort((key, *values), dimension=axis, num_keys=1, is_stable=True)``: ``key``
    sorted along ``axis`` and ``values`` (its shape) in the same order.

    Example:
        >>> import jax.numpy as jnp
        >>> keys, rows = sort_by_key(jnp.array([2.0, 1.0, 2.0]), jnp.arange(3))
        >>> keys.tolist(), rows.tolist()
        ([1.0, 2.0, 2.0], [1, 0, 2])
    """
    axis = axis - key.ndim if axis >= 0 else axis  # from the end: vmap adds axes in front
    arrays = (key, *values)

    def on_device(*arrays: jax.Array) -> tuple[jax.Array, ...]:
        return tuple(lax.sort(arrays, dimension=key.ndim + axis, num_keys=1, is_stable=True))

    results = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays]
    return numpy_on_cpu(_numpy_sort(axis), on_device, results, *arrays)


def _numpy_sort(axis: int):
    def sort_on_host(outputs: list[np.ndarray], key: np.ndarray, *values: np.ndarray) -> None:
        if values:
            order = np.argsort(key, axis=axis, kind="stable")
            for output, a in zip(outputs, (key, *values), strict=True):
                output[...] = np.take_along_axis(a, order, axis=axis)
            return
        rows = np.moveaxis(key, axis, -1)
        rows = np.ascontiguousarray(rows).reshape(-1, key.shape[axis])
        ordered = np.sort(rows, axis=-1)  # numpy's SIMD sort, 5-10x its stable one
        if np.issubdtype(key.dtype, np.floating):
            _stable_ties(ordered, rows)
        shape = np.moveaxis(key, axis, -1).shape
        outputs[0][...] = np.moveaxis(ordered.reshape(shape), -1, axis)

    return sort_on_host


def _stable_ties(ordered: np.ndarray, rows: np.ndarray) -> None:
    """Put the ties that differ in bits back in their input order, as a stable sort leaves
    them: the run of zeros (``-0.0 == +0.0``, after the negatives) and the run of NaNs (last)
    of each row."""
    zeros, nans = rows == 0, np.isnan(rows)
    n_nans = np.count_nonzero(nans, axis=1)
    for tie, start in (
        (zeros, np.count_nonzero(rows < 0, axis=1)),
        (nans, rows.shape[1] - n_nans),
    ):
        if not tie.any():
            continue
        counts = np.count_nonzero(tie, axis=1)
        row, _ = np.nonzero(tie)  # row by row, each in input order
        within = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
        ordered[row, np.repeat(start, counts) + within] = rows[tie]
