"""``liam_core.digest``: a sha256 of every leaf's path, dtype, shape and bytes, in a fixed order."""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from liam_core import digest


def test_digest_is_the_sha256_hex_string_of_the_header_and_the_bytes():
    x = np.zeros(3, np.float32)
    expected = hashlib.sha256(b"|<f4|(3,);" + x.tobytes()).hexdigest()
    assert digest(x) == expected  # a bare array has the empty path


def test_equal_pytrees_give_equal_digests():
    a = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}
    b = {"b": np.ones(3, np.float32), "w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert digest(a) == digest(b)  # dict keys are visited sorted, not in insertion order


def test_a_jax_array_and_its_numpy_copy_give_the_same_digest():
    x = jnp.linspace(0.0, 1.0, 7, dtype=jnp.float32)
    assert digest(x) == digest(np.asarray(x))


def test_one_flipped_bit_changes_the_digest():
    x = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
    flipped = x.copy()
    flipped.view(np.uint32)[3] ^= 1  # the last bit of the mantissa
    assert not np.array_equal(x, flipped)
    assert digest(x) != digest(flipped)


def test_negative_zero_and_positive_zero_differ():
    assert digest(np.array([0.0], np.float32)) != digest(np.array([-0.0], np.float32))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (np.zeros(2, np.float32), np.zeros(2, np.float64)),  # dtype
        (np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32)),  # shape, same bytes
        (np.zeros(6, np.float32), np.zeros((1, 6), np.float32)),  # rank
        ({"a": np.zeros(2)}, {"b": np.zeros(2)}),  # path
        ([np.zeros(2), np.ones(2)], [np.ones(2), np.zeros(2)]),  # order of leaves
        (np.zeros(0, np.float32), np.zeros(0, np.int32)),  # empty arrays still carry a dtype
    ],
)
def test_dtype_shape_path_and_order_all_change_the_digest(left, right):
    assert digest(left) != digest(right)


def test_digest_matches_its_definition():
    tree = {"a": np.array([1.5, -2.0], np.float32), "b": (np.arange(3, dtype=np.int32),)}
    hasher = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = np.ascontiguousarray(leaf)
        header = f"{jax.tree_util.keystr(path)}|{array.dtype.str}|{array.shape};"
        hasher.update(header.encode())
        hasher.update(array.tobytes())
    assert digest(tree) == hasher.hexdigest()


def test_python_scalars_hash_as_the_numpy_scalar_they_convert_to():
    assert digest(1.5) == digest(np.asarray(1.5))
    assert digest(3) == digest(np.asarray(3))


def test_none_leaves_are_skipped_like_in_jax():
    # None is an empty subtree in JAX: it contributes nothing, so trees that differ only in
    # where a None sits hash alike (filtered Equinox models and their gradients rely on it).
    assert digest({"a": np.ones(2), "b": None}) == digest({"a": np.ones(2)})
    assert digest([np.ones(2), None]) == digest([np.ones(2)])


def test_non_contiguous_views_hash_their_values():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert digest(x[:, ::2]) == digest(np.ascontiguousarray(x[:, ::2]))
    assert digest(x.T) == digest(np.ascontiguousarray(x.T))


def test_sharded_arrays_digest_like_their_host_values():
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("d",))
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    sharded = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("d")))
    assert len(sharded.sharding.device_set) == len(devices)
    assert digest(sharded) == digest(x)
