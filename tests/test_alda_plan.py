"""The ALDA ``Plan`` (pure numpy): chunk boundaries, assignment to devices, padding, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liam_core import ConfigError, EmptyInputError, LiamError
from liam_core.alda import DEFAULT_CHUNK_SIZE, Plan, next_power_of_two, plan_chunks

row_counts = st.integers(min_value=1, max_value=200_000)
chunk_sizes = st.integers(min_value=1, max_value=5000)
block_counts = st.integers(min_value=1, max_value=64)


def test_the_default_chunk_size_is_the_measured_256_rows():
    assert DEFAULT_CHUNK_SIZE == 256
    assert plan_chunks(1000).chunk_size == 256


@given(n_rows=row_counts, chunk_size=chunk_sizes, n_blocks=block_counts)
@settings(max_examples=300, deadline=None)
def test_every_row_is_computed_exactly_once_in_its_original_order(n_rows, chunk_size, n_blocks):
    plan = plan_chunks(n_rows, chunk_size=chunk_size, n_blocks=n_blocks)
    mask = plan.row_mask()
    assert mask.shape == (n_blocks, plan.chunks_per_block, chunk_size)
    # Flattened in (block, slot, row) order, the real rows are exactly 0 .. n_rows - 1.
    assert np.array_equal(np.flatnonzero(mask.ravel()), np.arange(n_rows))
    # The blocks' row ranges tile [0, n_rows) in device order without gaps or overlaps.
    covered = 0
    for block in range(n_blocks):
        start, stop = plan.block_rows(block)
        assert start == covered
        assert stop - start == int(mask[block].sum())
        covered = stop
    assert covered == n_rows


@given(n_rows=row_counts, chunk_size=chunk_sizes, n_blocks=block_counts)
@settings(max_examples=300, deadline=None)
def test_only_the_assignment_of_chunks_to_devices_depends_on_the_device_count(
    n_rows, chunk_size, n_blocks
):
    plan = plan_chunks(n_rows, chunk_size=chunk_size, n_blocks=n_blocks)
    alone = plan_chunks(n_rows, chunk_size=chunk_size, n_blocks=1)
    assert plan.n_chunks == alone.n_chunks == -(-n_rows // chunk_size)
    assert plan.tree_leaves == alone.tree_leaves
    assert [plan.chunk_rows(c) for c in range(plan.n_chunks)] == [
        alone.chunk_rows(c) for c in range(alone.n_chunks)
    ]


@given(n_rows=row_counts, chunk_size=chunk_sizes, n_blocks=block_counts)
@settings(max_examples=300, deadline=None)
def test_chunks_go_to_devices_in_contiguous_blocks_in_device_order(n_rows, chunk_size, n_blocks):
    plan = plan_chunks(n_rows, chunk_size=chunk_size, n_blocks=n_blocks)
    assignment = plan.assignment()
    assert len(assignment) == plan.n_chunks
    assert np.all(np.diff(assignment) >= 0)  # non-decreasing: contiguous blocks in order
    for block in range(n_blocks):
        chunks = plan.block_chunks(block)
        assert list(chunks) == np.flatnonzero(assignment == block).tolist()
        assert len(chunks) <= plan.chunks_per_block


@given(n_rows=row_counts, chunk_size=chunk_sizes, n_blocks=block_counts)
@settings(max_examples=300, deadline=None)
def test_each_block_is_a_whole_power_of_two_subtree_of_the_canonical_tree(
    n_rows, chunk_size, n_blocks
):
    plan = plan_chunks(n_rows, chunk_size=chunk_size, n_blocks=n_blocks)
    slots = plan.chunks_per_block
    assert slots == next_power_of_two(slots)
    assert plan.n_slots >= plan.n_chunks
    assert plan.tree_leaves == next_power_of_two(plan.n_chunks)
    # Block b starts at chunk b * slots, a multiple of its power-of-two size: a subtree.
    for block in range(n_blocks):
        chunks = plan.block_chunks(block)
        if chunks:
            assert chunks.start == block * slots


def test_ragged_batches_fall_into_few_shape_buckets():
    buckets = {plan_chunks(n, n_blocks=8).chunks_per_block for n in range(1, 100_001, 37)}
    # 1 .. 100_000 rows on 8 devices: ceil(n / 2048) chunks per block, rounded to 2**k.
    assert buckets == {1, 2, 4, 8, 16, 32, 64}


@pytest.mark.parametrize(
    ("n_rows", "n_chunks", "last_chunk_rows"),
    [(1, 1, 1), (255, 1, 255), (256, 1, 256), (257, 2, 1), (4097, 17, 1), (7919, 31, 239)],
)
def test_ragged_sizes_pad_only_the_last_chunk(n_rows, n_chunks, last_chunk_rows):
    plan = plan_chunks(n_rows, chunk_size=256, n_blocks=4)
    assert plan.n_chunks == n_chunks
    start, stop = plan.chunk_rows(n_chunks - 1)
    assert stop - start == last_chunk_rows
    assert all(stop - start == 256 for start, stop in map(plan.chunk_rows, range(n_chunks - 1)))


def test_a_plan_prints_as_a_table_of_who_runs_what():
    text = str(plan_chunks(5000, chunk_size=256, n_blocks=4))
    assert text.splitlines() == [
        "Plan: 5000 rows in chunks of 256 -> 20 chunks (last chunk 136 rows), "
        "4 device block(s) x 8 chunk slot(s)",
        "block         chunks               rows  real rows  padded slots",
        "    0            0-7             0-2047       2048             0",
        "    1           8-15          2048-4095       2048             0",
        "    2          16-19          4096-4999        904             4",
        "    3              -                  -          0             8",
        "reduction: pairwise tree over 32 leaves in chunk order; padding contributes -0.0 "
        "at the end",
    ]


def test_the_empty_batch_is_a_typed_error():
    with pytest.raises(EmptyInputError, match="0 rows"):
        plan_chunks(0)


@pytest.mark.parametrize("chunk_size", [0, -256, 2.5, "256", True, None, np.float32(256)])
def test_a_chunk_size_that_is_not_a_positive_int_names_the_setting(chunk_size):
    with pytest.raises(ConfigError, match=r"`chunk_size` must be an int >= 1, got") as error:
        plan_chunks(100, chunk_size=chunk_size)
    assert isinstance(error.value, LiamError)
    assert isinstance(error.value, ValueError)


def test_numpy_integers_are_accepted_as_settings():
    plan = plan_chunks(np.int64(1000), chunk_size=np.int32(128), n_blocks=np.int8(2))
    assert (plan.n_rows, plan.chunk_size, plan.n_blocks) == (1000, 128, 2)


@pytest.mark.parametrize("n_rows", [-1, 2.0, "10", None, True])
def test_a_row_count_that_is_not_a_non_negative_int_is_refused(n_rows):
    with pytest.raises(ConfigError, match=r"`n_rows` must be an int >= 0, got"):
        plan_chunks(n_rows)


def test_block_and_chunk_indices_are_checked():
    plan = plan_chunks(1000, n_blocks=2)
    with pytest.raises(ConfigError, match=r"Plan: `block` must be an int in \[0, 1\], got 2"):
        plan.block_rows(2)
    with pytest.raises(ConfigError, match=r"Plan: `chunk` must be an int in \[0, 3\], got 4"):
        plan.chunk_rows(4)


def test_a_plan_is_a_frozen_value():
    plan = plan_chunks(1000, n_blocks=2)
    assert plan == Plan(n_rows=1000, chunk_size=256, n_blocks=2)
    with pytest.raises(AttributeError):
        plan.n_rows = 5  # type: ignore[misc]
