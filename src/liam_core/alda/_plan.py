"""``Plan``: which rows form which chunk, and which device runs which chunk. Pure numpy.

The plan is the one place where ALDA decides how a batch is cut. Only the global row count
and the chunk size fix the chunks; the device count only decides where each chunk runs.
Every executor (pmap, shard_map, fast or deterministic) and the multi-process loader read
the same plan, so they cannot disagree about chunk boundaries or padding.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._checks import check_int
from .._errors import EmptyInputError

DEFAULT_CHUNK_SIZE = 256
"""Rows per chunk by default: measured to keep its bits between 1 and 2 XLA CPU threads.

A dot over 256 or 512 rows gave the same bits with 1 and 2 cores; over 1024 rows and more,
XLA split the contraction across threads and the bits changed.
"""


def next_power_of_two(n: int) -> int:
    """Return the smallest power of two that is ``>= n`` (1 for ``n <= 1``).

    Example:
        >>> from liam_core.alda import next_power_of_two
        >>> [next_power_of_two(n) for n in (0, 1, 2, 3, 5, 8)]
        [1, 1, 2, 4, 8, 8]
    """
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def _check_index(index: object, name: str, size: int) -> None:
    # Plain ints in range skip building a message: plans are asked about every chunk.
    if type(index) is not int or not 0 <= index < size:
        check_int(index, name, minimum=0, maximum=size - 1, owner="Plan")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How ``n_rows`` rows are cut into chunks and spread over ``n_blocks`` devices.

    Chunk ``c`` holds rows ``[c * chunk_size, (c + 1) * chunk_size)``; the last chunk is padded
    with masked rows. Device block ``d`` runs the ``chunks_per_block`` consecutive chunk slots
    starting at ``d * chunks_per_block``; slots past the last chunk are padding. The number
    of slots per block is a power of two, which (a) buckets ragged batch sizes into few
    shapes, so a stream compiles a bounded number of times, and (b) makes each block a whole
    subtree of the canonical reduction tree (see :func:`liam_core.alda.reduce_tree`).

    Build plans with :func:`plan_chunks`; the fields are plain ints.

    Attributes:
        n_rows: global number of real rows.
        chunk_size: rows per chunk.
        n_blocks: number of device blocks the rows are spread over (devices on the data axis).
    """

    n_rows: int
    chunk_size: int
    n_blocks: int

    @property
    def n_chunks(self) -> int:
        """Number of real chunks: ``ceil(n_rows / chunk_size)``; never depends on devices."""
        return -(-self.n_rows // self.chunk_size)

    @property
    def chunks_per_block(self) -> int:
        """Chunk slots per device block: ``ceil(n_chunks / n_blocks)`` rounded up to a power of 2."""
        return next_power_of_two(-(-self.n_chunks // self.n_blocks))

    @property
    def n_slots(self) -> int:
        """Chunk slots over all blocks (real chunks first, then padding slots)."""
        return self.n_blocks * self.chunks_per_block

    @property
    def padded_rows(self) -> int:
        """Rows over all slots, real and padded: ``n_slots * chunk_size``."""
        return self.n_slots * self.chunk_size

    @property
    def tree_leaves(self) -> int:
        """Leaves of the canonical reduction tree: ``n_chunks`` rounded up to a power of 2."""
        return next_power_of_two(self.n_chunks)

    def block_chunks(self, block: int) -> range:
        """The real chunk indices device block ``block`` runs (may be empty)."""
        self._check_block(block)
        start = block * self.chunks_per_block
        return range(min(start, self.n_chunks), min(start + self.chunks_per_block, self.n_chunks))

    def block_rows(self, block: int) -> tuple[int, int]:
        """The real rows ``(start, stop)`` of device block ``block``; ``start == stop`` if none."""
        self._check_block(block)
        rows_per_block = self.chunks_per_block * self.chunk_size
        start = min(block * rows_per_block, self.n_rows)
        return start, min(start + rows_per_block, self.n_rows)

    def chunk_rows(self, chunk: int) -> tuple[int, int]:
        """The real rows ``(start, stop)`` of chunk ``chunk``."""
        _check_index(chunk, "chunk", self.n_chunks)
        start = chunk * self.chunk_size
        return start, min(start + self.chunk_size, self.n_rows)

    def assignment(self) -> np.ndarray:
        """The device block of every real chunk, as an int array of length ``n_chunks``."""
        return np.arange(self.n_chunks) // self.chunks_per_block

    def row_mask(self) -> np.ndarray:
        """Which row positions hold real rows: bool ``[n_blocks, chunks_per_block, chunk_size]``."""
        positions = np.arange(self.padded_rows).reshape(
            self.n_blocks, self.chunks_per_block, self.chunk_size
        )
        return positions < self.n_rows

    def _check_block(self, block: int) -> None:
        _check_index(block, "block", self.n_blocks)

    def __str__(self) -> str:
        """A readable table of which device block runs which chunks and rows."""
        last = self.n_rows - (self.n_chunks - 1) * self.chunk_size
        lines = [
            f"Plan: {self.n_rows} rows in chunks of {self.chunk_size} -> {self.n_chunks} chunks "
            f"(last chunk {last} rows), {self.n_blocks} device block(s) x "
            f"{self.chunks_per_block} chunk slot(s)",
            f"{'block':>5}  {'chunks':>13}  {'rows':>17}  {'real rows':>9}  {'padded slots':>12}",
        ]
        for block in range(self.n_blocks):
            chunks = self.block_chunks(block)
            start, stop = self.block_rows(block)
            chunk_text = f"{chunks.start}-{chunks.stop - 1}" if chunks else "-"
            row_text = f"{start}-{stop - 1}" if stop > start else "-"
            lines.append(
                f"{block:>5}  {chunk_text:>13}  {row_text:>17}  {stop - start:>9}  "
                f"{self.chunks_per_block - len(chunks):>12}"
            )
        lines.append(
            f"reduction: pairwise tree over {self.tree_leaves} leaves in chunk order; "
            "padding contributes -0.0 at the end"
        )
        return "\n".join(lines)


def plan_chunks(n_rows: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE, n_blocks: int = 1) -> Plan:
    """Cut ``n_rows`` rows into chunks of ``chunk_size`` and spread them over ``n_blocks`` devices.

    Args:
        n_rows: global number of rows, at least 1.
        chunk_size: rows per chunk, a positive int (default 256, chosen by measurement).
        n_blocks: number of device blocks (devices along the data axis), a positive int.

    Returns:
        The :class:`Plan`. Chunk boundaries depend only on ``n_rows`` and ``chunk_size``.

    Raises:
        EmptyInputError: ``n_rows`` is 0.
        ConfigError: a setting is not a positive int.

    Example:
        >>> from liam_core.alda import plan_chunks
        >>> plan = plan_chunks(1000, chunk_size=256, n_blocks=2)
        >>> plan.n_chunks, plan.chunks_per_block, plan.assignment().tolist()
        (4, 2, [0, 0, 1, 1])
        >>> print(plan)
        Plan: 1000 rows in chunks of 256 -> 4 chunks (last chunk 232 rows), 2 device block(s) x 2 chunk slot(s)
        block         chunks               rows  real rows  padded slots
            0            0-1              0-511        512             0
            1            2-3            512-999        488             0
        reduction: pairwise tree over 4 leaves in chunk order; padding contributes -0.0 at the end
    """
    n_rows = check_int(n_rows, "n_rows", minimum=0)
    if n_rows == 0:
        raise EmptyInputError("the batch has 0 rows; ALDA needs at least 1 row to plan chunks")
    chunk_size = check_int(chunk_size, "chunk_size")
    n_blocks = check_int(n_blocks, "n_blocks")
    return Plan(n_rows=n_rows, chunk_size=chunk_size, n_blocks=n_blocks)
