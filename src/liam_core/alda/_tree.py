"""The canonical reduction: a pairwise tree over the chunk index. Defined once, used everywhere.

Floating-point addition is not associative, so the order of a sum is part of its result.
ALDA fixes that order: the partials of chunks ``0..L-1`` are padded at the end to a power of
two with ``-0.0`` and added pairwise, level by level, ``(p0 + p1), (p2 + p3), ...``.

``-0.0`` is the exact additive identity of IEEE 754 (``x + -0.0 == x`` bit for bit for every
``x``, including ``+0.0``, ``-0.0`` and NaN), so padding never changes a result: a tree over
``2**k`` leaves equals the same tree padded to ``2**(k+1)``. Because the tree is padded at the
end and a device block of ``2**j`` chunk slots starting at a multiple of ``2**j`` is a whole
subtree, a device can reduce its own block locally and only its one partial needs to cross
devices; the top of the tree is then the same tree over the device partials.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._errors import ShapeError
from ._plan import next_power_of_two


def additive_identity(dtype: Any) -> Any:
    """The exact additive identity of ``dtype``: ``-0.0`` (``-0-0j``) for floats, else 0."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        return np.array(complex(-0.0, -0.0), dtype=dtype)
    if np.issubdtype(dtype, np.floating):
        return np.array(-0.0, dtype=dtype)
    return np.zeros((), dtype=dtype)


def _reduce_leaf(leaf: jax.Array) -> jax.Array:
    leaf = jnp.asarray(leaf)
    if leaf.ndim == 0 or leaf.shape[0] == 0:
        raise ShapeError(
            f"reduce_tree needs partials with a leading chunk axis of length >= 1, "
            f"got shape {leaf.shape}"
        )
    width = next_power_of_two(leaf.shape[0])
    if width != leaf.shape[0]:
        padding = jnp.full(
            (width - leaf.shape[0], *leaf.shape[1:]), additive_identity(leaf.dtype), leaf.dtype
        )
        leaf = jnp.concatenate([leaf, padding])
    while leaf.shape[0] > 1:
        # Up to four levels per pass, written out as one expression over 16 neighbours:
        # XLA fuses it into a single loop that reads each element once, where a level at a
        # time would write and re-read every intermediate level. The additions, and so the
        # bits, are exactly those of one level at a time.
        group = min(leaf.shape[0], _LEVELS_PER_PASS)
        grouped = leaf.reshape(leaf.shape[0] // group, group, *leaf.shape[1:])
        level = [grouped[:, i] for i in range(group)]
        while len(level) > 1:
            level = [level[i] + level[i + 1] for i in range(0, len(level), 2)]
        leaf = level[0]
    return leaf[0]


_LEVELS_PER_PASS = 16  # leaves combined per pass: four levels of the tree


def reduce_tree(partials: Any) -> Any:
    """Sum a pytree of stacked partials over their leading (chunk) axis in the canonical order.

    The leading axis is padded at the end to a power of two with ``-0.0`` (0 for integers),
    then added pairwise level by level. The result does not depend on how much padding there
    is, so a device's whole subtree can be reduced locally and the device partials reduced by
    this same function.

    Args:
        partials: a pytree whose leaves all have a leading axis of length ``L >= 1``.

    Returns:
        The pytree of sums, each leaf without its leading axis.

    Example:
        >>> import numpy as np
        >>> from liam_core.alda import reduce_tree
        >>> partials = np.array([1e8, 1.0, -1e8, 1.0], np.float32)
        >>> float(reduce_tree(partials))      # (1e8 + 1) + (-1e8 + 1): the canonical order
        0.0
        >>> float(reduce_tree(partials[:3])) == float(reduce_tree(np.append(partials[:3], -0.0)))
        True
    """
    return jax.tree_util.tree_map(_reduce_leaf, partials)


def _trailing_ones(i: jax.Array) -> jax.Array:
    return jax.lax.population_count(i ^ (i + 1)) - 1


def reduce_tree_streaming(leaf: Any, n_leaves: jax.Array, width: int, like: Any) -> Any:
    """The canonical tree over ``leaf(0), ..., leaf(n_leaves - 1)``, one leaf at a time.

    Gives the same bits as :func:`reduce_tree` over the ``n_leaves`` stacked leaves padded
    with ``-0.0`` to ``width``, but computes one leaf per iteration of a loop whose trip count
    ``n_leaves`` is only known at run time, keeping a binary-counter stack of ``log2(width) + 1``
    complete subtrees instead of all leaves: memory stays small for large partials (model
    gradients), padded slots cost nothing, and every leaf is computed by the same loop body
    whatever the number of leaves, so its bits never depend on the device count.

    Args:
        leaf: ``leaf(i) -> pytree`` for an int32 index ``i``, traced once as a loop body.
        n_leaves: int32 scalar, ``0 <= n_leaves <= width``; may be traced.
        width: the static power-of-two number of slots.
        like: pytree of ``jax.ShapeDtypeStruct`` describing one leaf.

    Returns:
        The pytree root of the tree (``-0.0`` everywhere if ``n_leaves`` is 0).

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from liam_core.alda import reduce_tree, reduce_tree_streaming
        >>> leaves = jnp.asarray(np.random.default_rng(0).standard_normal((5, 3)), jnp.float32)
        >>> like = jax.ShapeDtypeStruct((3,), jnp.float32)
        >>> root = reduce_tree_streaming(lambda i: leaves[i], jnp.int32(5), 8, like)
        >>> bool((root == reduce_tree(leaves)).all())
        True
    """
    if width < 1 or width & (width - 1):
        raise ShapeError(f"width must be a power of two, got {width}")
    levels = width.bit_length()  # log2(width) + 1 slots: level log2(width) holds a full tree
    pack, unpack, sizes = _packing(like)
    # One flat vector per dtype keeps the loop small however many leaves the partial has
    # (ravel and concatenate are exact copies, so packing never changes a bit).
    stack = {
        dtype: jnp.full((levels, size), additive_identity(dtype), dtype)
        for dtype, size in sizes.items()
    }

    def add_leaf(i: jax.Array, stack: dict[Any, jax.Array]) -> dict[Any, jax.Array]:
        value = pack(leaf(i))
        merges = _trailing_ones(i)

        def merge(level: jax.Array, value: dict[Any, jax.Array]) -> dict[Any, jax.Array]:
            # The left sibling (a complete subtree waiting on the stack) + the right one.
            return {dtype: stack[dtype][level] + value[dtype] for dtype in value}

        value = jax.lax.fori_loop(0, merges, merge, value)
        return {dtype: stack[dtype].at[merges].set(value[dtype]) for dtype in value}

    stack = jax.lax.fori_loop(0, n_leaves, add_leaf, stack)
    # Close the tree: the missing leaves are -0.0, so each pending subtree is added on the
    # left of everything after it, exactly as the padded pairwise tree does.
    root = {
        dtype: jnp.full((size,), additive_identity(dtype), dtype) for dtype, size in sizes.items()
    }
    for level in range(levels):
        present = (n_leaves >> level) & 1 == 1
        root = {
            dtype: jnp.where(present, stack[dtype][level] + root[dtype], root[dtype])
            for dtype in root
        }
    return unpack(root)


def _packing(like: Any) -> tuple[Any, Any, dict[Any, int]]:
    """Functions that pack a pytree like ``like`` into one flat vector per dtype, and back."""
    leaves, treedef = jax.tree_util.tree_flatten(like)
    sizes: dict[Any, int] = {}
    places = []
    for leaf in leaves:
        dtype = np.dtype(leaf.dtype)
        size = int(np.prod(leaf.shape, dtype=np.int64))
        places.append((dtype, sizes.get(dtype, 0), size, tuple(leaf.shape)))
        sizes[dtype] = sizes.get(dtype, 0) + size

    def pack(tree: Any) -> dict[Any, jax.Array]:
        parts: dict[Any, list[jax.Array]] = {dtype: [] for dtype in sizes}
        for (dtype, _, _, _), value in zip(places, jax.tree_util.tree_leaves(tree), strict=True):
            parts[dtype].append(jnp.ravel(value))
        return {dtype: jnp.concatenate(chunks) for dtype, chunks in parts.items()}

    def unpack(flat: dict[Any, jax.Array]) -> Any:
        values = [
            flat[dtype][start : start + size].reshape(shape) for dtype, start, size, shape in places
        ]
        return jax.tree_util.tree_unflatten(treedef, values)

    return pack, unpack, sizes
