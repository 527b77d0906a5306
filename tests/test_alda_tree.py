"""The canonical reduction: a pairwise tree over the chunk index, padded at the end with -0.0."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liam_core import ShapeError
from liam_core.alda import reduce_tree, reduce_tree_streaming

SPECIALS = np.array([0.0, -0.0, 1e-30, -1e30, 3.0, np.inf, -1.5, 1e8], np.float32)


def bits(x) -> bytes:
    return np.ascontiguousarray(np.asarray(x)).tobytes()


def pairwise(values):
    """The definition, spelled out in plain Python."""
    level = list(values)
    while len(level) & (len(level) - 1):
        level.append(np.float32(-0.0))
    while len(level) > 1:
        level = [np.float32(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def numpy_tree(partials: np.ndarray) -> np.ndarray:
    """The definition again, vectorized in numpy: pad with -0.0 to 2**k rows, add pairs."""
    level = np.asarray(partials)
    width = 1 << max(0, (len(level) - 1).bit_length())
    pad = np.full((width - len(level), *level.shape[1:]), -0.0 if level.dtype.kind == "f" else 0)
    level = np.concatenate([level, pad.astype(level.dtype)])
    while len(level) > 1:
        level = level[0::2] + level[1::2]
    return level[0]


@functools.cache
def streaming_sum(width: int):
    like = (jax.ShapeDtypeStruct((5,), jnp.float32), jax.ShapeDtypeStruct((2,), jnp.int32))
    return jax.jit(lambda f, i, n: reduce_tree_streaming(lambda k: (f[k], i[k]), n, width, like))


def random_partials(rng: np.random.Generator, n: int, width: int = 5) -> np.ndarray:
    magnitudes = 10.0 ** rng.integers(-8, 9, (n, width))
    values = rng.standard_normal((n, width)) * magnitudes
    values[rng.random((n, width)) < 0.1] = -0.0
    values[rng.random((n, width)) < 0.1] = 0.0
    return values.astype(np.float32)


def test_the_tree_adds_neighbours_first():
    partials = np.array([1e8, 1.0, -1e8, 1.0], np.float32)
    # (1e8 + 1) + (-1e8 + 1) = 1e8 + -1e8 = 0 in float32; a left-to-right sum gives 1.
    assert float(reduce_tree(partials)) == 0.0
    assert float(np.cumsum(partials)[-1]) == 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13])
def test_reduce_tree_is_the_pairwise_definition(n):
    values = random_partials(np.random.default_rng(n), n, width=1)[:, 0]
    assert bits(reduce_tree(values)) == bits(pairwise(values))


def test_negative_zero_is_the_exact_identity_and_positive_zero_is_not():
    for x in SPECIALS:
        assert bits(np.float32(x) + np.float32(-0.0)) == bits(np.float32(x))
    # Padding with +0.0 would turn a -0.0 result into +0.0.
    assert bits(np.float32(-0.0) + np.float32(0.0)) != bits(np.float32(-0.0))


@given(n=st.integers(1, 40), extra=st.integers(0, 100), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_padding_at_the_end_with_negative_zero_never_changes_the_result(n, extra, seed):
    partials = random_partials(np.random.default_rng(seed), n)
    padded = np.concatenate([partials, np.full((extra, partials.shape[1]), -0.0, np.float32)])
    assert bits(numpy_tree(padded)) == bits(numpy_tree(partials))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 33])
def test_reduce_tree_matches_the_numpy_definition_on_hard_values(n):
    partials = random_partials(np.random.default_rng(100 + n), n)
    assert bits(reduce_tree(partials)) == bits(numpy_tree(partials))


@given(
    log_block=st.integers(0, 4),
    n_blocks=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
@settings(max_examples=200, deadline=None)
def test_device_blocks_of_power_of_two_size_are_whole_subtrees(log_block, n_blocks, seed, data):
    block = 2**log_block
    n = data.draw(st.integers(1, block * n_blocks))
    partials = random_partials(np.random.default_rng(seed), n)
    padded = np.concatenate([partials, np.full((block * n_blocks - n, 5), -0.0, np.float32)])
    roots = [numpy_tree(padded[b * block : (b + 1) * block]) for b in range(n_blocks)]
    assert bits(numpy_tree(np.stack(roots))) == bits(numpy_tree(partials))


@pytest.mark.slow
@given(log_width=st.integers(0, 6), seed=st.integers(0, 2**32 - 1), data=st.data())
@settings(max_examples=60, deadline=None)
def test_the_streaming_tree_gives_the_bits_of_the_stacked_tree(log_width, seed, data):
    width = 2**log_width
    n = data.draw(st.integers(0, width))
    rng = np.random.default_rng(seed)
    floats = jnp.asarray(random_partials(rng, width))
    ints = jnp.asarray(rng.integers(-1000, 1000, (width, 2)), jnp.int32)
    root = streaming_sum(width)(floats, ints, jnp.int32(n))
    if n == 0:
        assert bits(root[0]) == bits(np.full(5, -0.0, np.float32))
        assert bits(root[1]) == bits(np.zeros(2, np.int32))
    else:
        assert bits(root[0]) == bits(numpy_tree(np.asarray(floats[:n])))
        assert bits(root[1]) == bits(numpy_tree(np.asarray(ints[:n])))


def test_reduce_tree_works_on_pytrees_of_mixed_dtypes():
    total = reduce_tree({"n": np.array([1, 2, 3], np.int32), "x": np.ones((3, 2), np.float32)})
    assert int(total["n"]) == 6
    assert np.asarray(total["x"]).tolist() == [3.0, 3.0]


def test_an_empty_chunk_axis_is_a_shape_error():
    with pytest.raises(ShapeError, match="leading chunk axis"):
        reduce_tree(np.zeros((0, 3), np.float32))


def test_the_streaming_tree_needs_a_power_of_two_width():
    with pytest.raises(ShapeError, match="power of two"):
        reduce_tree_streaming(lambda i: i, jnp.int32(1), 3, jax.ShapeDtypeStruct((), jnp.int32))
