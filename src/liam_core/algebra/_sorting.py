"""Sorts along an axis: ``jnp.sort``'s bits, numpy's speed on the CPU backend.

XLA CPU sorts with a comparator called per comparison: measured on the 2-core Xeon, 524,288 x 8
float32 values take 1.35-1.8 s along either axis, where ``np.sort`` takes 26-47 ms. On CPU these
functions therefore sort through a host callback to numpy's stable sort, which orders floats
exactly as ``lax.sort`` does (``-0.0`` and ``+0.0`` tie and keep their order, NaNs go last in
their order; checked in ``tests/test_stats.py``), so the bits are the same either way. On other
platforms (GPU, TPU, where XLA's sort is fast) they are ``lax.sort``.

They work under ``jit`` and ``vmap`` (the callback sorts along a trailing axis, so added batch
axes come first). Being callbacks on CPU, they are not differentiable there and cannot go into
``jax.export``: the drift statistics that use them are neither.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


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

    def on_host(*arrays: jax.Array) -> tuple[jax.Array, ...]:
        # Arrays cross to the callback and back as bytes: JAX casts float64 to float32 on
        # the way where x64 is off, and a `jax.enable_x64` block is off on XLA's threads.
        dtypes = tuple(np.dtype(a.dtype) for a in arrays)
        shapes = tuple(jax.ShapeDtypeStruct(_bytes(a).shape, jnp.uint8) for a in arrays)
        sort_on_host = _numpy_sort(axis)

        def in_bytes(*data: np.ndarray) -> tuple[np.ndarray, ...]:
            arrays = (np.asarray(d).view(t)[..., 0] for d, t in zip(data, dtypes, strict=True))
            return tuple(
                np.ascontiguousarray(a).view(np.uint8).reshape(*a.shape, a.dtype.itemsize)
                for a in sort_on_host(*arrays)
            )

        answer = jax.pure_callback(
            in_bytes, shapes, *map(_bytes, arrays), vmap_method="broadcast_all"
        )
        return tuple(_from_bytes(b, t) for b, t in zip(answer, dtypes, strict=True))

    return lax.platform_dependent(*arrays, cpu=on_host, default=on_device)


def _bytes(array: jax.Array) -> jax.Array:
    """``uint8 [..., itemsize]``: the bytes of each element."""
    if array.dtype == jnp.bool_:
        array = array.astype(jnp.uint8)
    if array.dtype.itemsize == 1:
        return lax.bitcast_convert_type(array, jnp.uint8)[..., None]
    return lax.bitcast_convert_type(array, jnp.uint8)


def _from_bytes(data: jax.Array, dtype: np.dtype) -> jax.Array:
    if dtype == jnp.bool_:
        return data[..., 0] != 0
    if dtype.itemsize == 1:
        return lax.bitcast_convert_type(data[..., 0], dtype)
    return lax.bitcast_convert_type(data, dtype)


def _numpy_sort(axis: int):
    def sort_on_host(key: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
        if values:
            order = np.argsort(key, axis=axis, kind="stable")
            return tuple(np.take_along_axis(a, order, axis=axis) for a in (key, *values))
        rows = np.moveaxis(key, axis, -1)
        rows = np.ascontiguousarray(rows).reshape(-1, key.shape[axis])
        ordered = np.sort(rows, axis=-1)  # numpy's SIMD sort, 5-10x its stable one
        if np.issubdtype(key.dtype, np.floating):
            _stable_ties(ordered, rows)
        shape = np.moveaxis(key, axis, -1).shape
        return (np.moveaxis(ordered.reshape(shape), -1, axis),)

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
