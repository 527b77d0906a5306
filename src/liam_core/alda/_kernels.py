"""What one device computes on its block of chunks, and the built-in per-chunk kernels.

A device block holds ``n_slots`` chunk slots of ``chunk_size`` rows (``[n_slots, chunk_size,
...]``), the first ``n_real`` of which hold real rows. Everything here is traced into a
single-device program: the same program, compiled by the same XLA pipeline, runs on every
device of every topology (see ``_executors.py`` for why that matters).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from .._errors import ShapeError
from ._tree import additive_identity, reduce_tree, reduce_tree_streaming


def broadcast_mask(mask: jax.Array, like: jax.Array) -> jax.Array:
    """Reshape a row mask so it broadcasts against ``like`` (extra trailing axes of size 1)."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def masked(chunk: jax.Array, mask: jax.Array) -> jax.Array:
    """``chunk`` with the rows outside ``mask`` set to zero."""
    return jnp.where(broadcast_mask(mask, chunk), chunk, jnp.zeros((), chunk.dtype))


def to_inexact(x: jax.Array) -> jax.Array:
    """``x`` as a floating-point array (integers and bools become the default float)."""
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


# Built-in kernels are module-level functions (one object each), so their programs are built
# once. The sums are explicit pairwise trees of elementwise adds over the rows of a chunk: no
# XLA reduction algorithm is involved, so their bits cannot depend on how XLA batches, fuses
# or threads them, and they may run vectorized over a whole block. They need no mask: padded
# rows hold zeros, and ``where(mask, x, 0)`` would give the same zeros (at the price of a
# full copy of the block, which XLA does not fuse into the tree).
def sum_kernel(chunk: Any, mask: jax.Array) -> Any:
    """Per-chunk column sums (padded rows are zeros)."""
    del mask
    return jax.tree_util.tree_map(reduce_tree, chunk)


def inexact_sum_kernel(chunk: Any, mask: jax.Array) -> Any:
    """Per-chunk column sums in floating point (padded rows are zeros)."""
    del mask
    return jax.tree_util.tree_map(lambda c: reduce_tree(to_inexact(c)), chunk)


def centered_gram_kernel(chunk: jax.Array, mask: jax.Array, mean: jax.Array) -> jax.Array:
    """Per-chunk sum of outer products of the centered real rows: ``(x - m).T @ (x - m)``."""
    centered = masked(to_inexact(chunk) - mean, mask)
    if centered.ndim == 1:  # one variable
        centered = centered[:, None]
    return jnp.einsum("rd,re->de", centered, centered)


def divide_by_rows(total: Any, n_rows: jax.Array) -> Any:
    """Finish a sum into a mean."""
    return jax.tree_util.tree_map(lambda t: t / n_rows.astype(t.dtype), total)


def keep(total: Any, n_rows: jax.Array) -> Any:
    """Finish a sum as itself."""
    del n_rows
    return total


def loss_kernel(loss: Callable[..., Any], treedef: Any, layout: tuple[Any, ...]) -> Any:
    """Per-chunk ``(sum of losses, sum of gradients)`` over the real rows of a chunk.

    ``layout`` says, leaf by leaf of the flattened params, whether a leaf is differentiated
    (``"diff"``), another array (``"array"``) or a static value (the value itself).
    """

    def rebuild(diff: list[jax.Array], arrays: list[jax.Array]) -> Any:
        diff_iter, array_iter = iter(diff), iter(arrays)
        leaves = [
            next(diff_iter) if kind == "diff" else next(array_iter) if kind == "array" else kind
            for kind in layout
        ]
        return jax.tree_util.tree_unflatten(treedef, leaves)

    def kernel(chunk: Any, mask: jax.Array, diff: list[jax.Array], arrays: list[jax.Array]) -> Any:
        def chunk_loss(diff: list[jax.Array]) -> jax.Array:
            per_row = jax.vmap(loss, in_axes=(None, 0))(rebuild(diff, arrays), chunk)
            if per_row.shape != mask.shape:
                raise ShapeError(
                    f"loss(params, example) must return a scalar per example, got shape "
                    f"{per_row.shape[1:]}"
                )
            return jnp.sum(jnp.where(mask, per_row, jnp.zeros((), per_row.dtype)))

        return jax.value_and_grad(chunk_loss)(diff)

    return kernel


def real_chunks(block: jax.Array, n_slots: int, chunk_size: int, n_rows: jax.Array) -> jax.Array:
    """How many of block ``block``'s ``n_slots`` chunk slots hold at least one real row."""
    rows_before = block * (n_slots * chunk_size)
    return jnp.clip((n_rows - rows_before + chunk_size - 1) // chunk_size, 0, n_slots)


def chunk_mask(slot: jax.Array, chunk_size: int, n_rows: jax.Array) -> jax.Array:
    """The real-row mask of global chunk slot ``slot``."""
    return slot * chunk_size + jnp.arange(chunk_size, dtype=jnp.int32) < n_rows


def _geometry(chunks: Any) -> tuple[int, int]:
    first = jax.tree_util.tree_leaves(chunks)[0]
    return first.shape[0], first.shape[1]


def _take(chunks: Any, i: jax.Array) -> Any:
    return jax.tree_util.tree_map(
        lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False), chunks
    )


def block_partial(
    kernel: Callable[..., Any],
    chunks: Any,
    block: jax.Array,
    n_rows: jax.Array,
    args: tuple[Any, ...],
    *,
    vectorize: bool,
) -> Any:
    """One device's partial: its block of chunks reduced as a whole subtree of the canonical tree.

    By default a loop computes one chunk per iteration, for as many iterations as the block
    has real chunks (a count known only at run time, so padded slots cost nothing and the
    loop is never unrolled or inlined): every chunk is computed by the same loop body, whose
    HLO is that of ``kernel`` on one chunk, whatever the number of devices. ``vectorize=True``
    instead runs the kernel on all slots at once under ``vmap``; XLA may then choose other dot
    and reduction algorithms for the batched shape (measured: an MLP gradient changed bits),
    which is only safe for kernels of elementwise operations and explicit trees.
    """
    n_slots, chunk_size = _geometry(chunks)
    first_slot = block * n_slots
    if vectorize:
        slots = first_slot + jnp.arange(n_slots, dtype=jnp.int32)
        masks = jax.vmap(lambda slot: chunk_mask(slot, chunk_size, n_rows))(slots)
        partials = jax.vmap(kernel, in_axes=(0, 0, *(None for _ in args)))(chunks, masks, *args)
        real = slots * chunk_size < n_rows
        partials = jax.tree_util.tree_map(
            lambda p: jnp.where(broadcast_mask(real, p), p, additive_identity(p.dtype)), partials
        )
        return reduce_tree(partials)

    def leaf(i: jax.Array) -> Any:
        inputs = (_take(chunks, i), chunk_mask(first_slot + i, chunk_size, n_rows), args)
        # Barriers keep XLA from fusing the kernel with the loop around it, so its compiled
        # form is that of the kernel alone on one chunk.
        chunk, mask, kernel_args = jax.lax.optimization_barrier(inputs)
        return jax.lax.optimization_barrier(kernel(chunk, mask, *kernel_args))

    like = jax.eval_shape(
        lambda: kernel(_take(chunks, 0), chunk_mask(first_slot, chunk_size, n_rows), *args)
    )
    n_real = real_chunks(block, n_slots, chunk_size, n_rows)
    return reduce_tree_streaming(leaf, n_real, n_slots, like)


def block_whole(
    kernel: Callable[..., Any],
    chunks: Any,
    block: jax.Array,
    n_rows: jax.Array,
    args: tuple[Any, ...],
) -> Any:
    """``fast=True``: the kernel on the device's whole block at once (bits vary with devices)."""
    n_slots, chunk_size = _geometry(chunks)
    # Explicit sizes, not -1: a batch of rows without columns has size 0.
    rows = jax.tree_util.tree_map(
        lambda a: a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]), chunks
    )
    row_ids = block * (n_slots * chunk_size) + jnp.arange(n_slots * chunk_size, dtype=jnp.int32)
    return kernel(rows, row_ids < n_rows, *args)


def block_map(
    fn: Callable[..., Any],
    chunks: Any,
    block: jax.Array,
    n_rows: jax.Array,
    *args: Any,
    vectorize: bool,
) -> Any:
    """Apply a row-wise ``fn(rows, *args)`` to each real chunk of the block (loop) or to all
    (vectorized)."""
    n_slots, chunk_size = _geometry(chunks)
    if vectorize:
        out = jax.vmap(lambda chunk: fn(chunk, *args))(chunks)
    else:

        def one(i: jax.Array) -> Any:
            chunk = jax.lax.optimization_barrier(_take(chunks, i))
            return jax.lax.optimization_barrier(fn(chunk, *args))

        like = jax.eval_shape(one, jnp.int32(0))
        out = jax.tree_util.tree_map(lambda s: jnp.zeros((n_slots, *s.shape), s.dtype), like)

        def body(i: jax.Array, out: Any) -> Any:
            return jax.tree_util.tree_map(lambda o, v: o.at[i].set(v), out, one(i))

        n_real = real_chunks(block, n_slots, chunk_size, n_rows)
        out = jax.lax.fori_loop(0, n_real, body, out)
    for leaf in jax.tree_util.tree_leaves(out):
        if leaf.shape[:2] != (n_slots, chunk_size):
            raise ShapeError(
                f"map needs a row-wise fn: a chunk of {chunk_size} rows gave an output of "
                f"shape {leaf.shape[1:]}"
            )
    return out
