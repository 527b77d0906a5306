"""``TrainData``: rows held in memory, served as fixed-size batches in a reproducible order.

The data position of a run is the index of its next batch in an endless sequence of epochs:
batch ``p`` is batch ``p % batches_per_epoch`` of epoch ``p // batches_per_epoch``. With
``shuffle``, each epoch visits the rows in the order of a permutation drawn from a
counter-based generator (numpy's Philox) keyed by the run's RNG key and the epoch, so a
resumed run needs nothing but the key and the position to see the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np

from .._checks import check_bool, check_int
from .._errors import ConfigError, EmptyInputError, ShapeError


def _host_leaves(examples: Any, owner: str) -> tuple[list[np.ndarray], Any, int]:
    leaves, treedef = jax.tree_util.tree_flatten(examples)
    if not leaves:
        raise EmptyInputError(f"{owner}: the examples are an empty pytree; expected arrays")
    host = [np.asarray(leaf) for leaf in leaves]
    lengths = {leaf.shape[0] if leaf.ndim else None for leaf in host}
    if None in lengths or len(lengths) != 1:
        raise ShapeError(
            f"{owner}: every array of the examples needs the same leading row axis; got shapes "
            f"{[leaf.shape for leaf in host]}"
        )
    return host, treedef, lengths.pop()


def _philox_permutation(key_data: np.ndarray, epoch: int, n_rows: int) -> np.ndarray:
    words = np.asarray(key_data, dtype=np.uint64).ravel()
    high = int(words[0]) << 32 | (int(words[1]) if words.size > 1 else 0)
    generator = np.random.Generator(np.random.Philox(key=np.array([high, epoch], dtype=np.uint64)))
    return generator.permutation(n_rows)


class TrainData:
    """Training rows in memory, cut into batches of exactly ``batch_size`` rows.

    The rows left over at the end of an epoch (fewer than a batch) are skipped in that epoch;
    with ``shuffle`` they are other rows in every epoch.

    Args:
        examples: an array or a pytree of arrays sharing a leading row axis: ``x`` for an
            autoencoder, ``(x, y)`` for supervised models.
        batch_size: rows per batch, between 1 and the number of rows.
        shuffle: a new row order each epoch (from ``rng`` and the epoch) or the stored order.

    Example:
        >>> import numpy as np
        >>> from liam_core.train import TrainData
        >>> data = TrainData(np.arange(10.0)[:, None], batch_size=4, shuffle=False)
        >>> data.batches_per_epoch, data.batch(2, rng=None).ravel().tolist()
        (2, [0.0, 1.0, 2.0, 3.0])
    """

    def __init__(self, examples: Any, *, batch_size: int, shuffle: bool = True) -> None:
        self._leaves, self._treedef, self.n_rows = _host_leaves(examples, "TrainData")
        self.batch_size = check_int(
            batch_size, "train.batch_size", maximum=self.n_rows, why=" (the training rows)"
        )
        self.shuffle = check_bool(shuffle, "train.shuffle")
        self._epoch: tuple[int, bytes] | None = None
        self._order: np.ndarray | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Whole batches in one pass over the rows."""
        return self.n_rows // self.batch_size

    def epoch_of(self, position: int) -> int:
        """The epoch that batch ``position`` belongs to."""
        return position // self.batches_per_epoch

    def batch(self, position: int, *, rng: np.ndarray | None) -> Any:
        """The examples of batch ``position`` (numpy arrays of ``batch_size`` rows).

        Args:
            position: index of the batch in the endless sequence of epochs, >= 0.
            rng: the run's raw ``uint32`` key data (``jax.random.key_data``); needed with
                ``shuffle``.
        """
        check_int(position, "position", minimum=0, owner="TrainData.batch")
        epoch, index = divmod(position, self.batches_per_epoch)
        start = index * self.batch_size
        if self.shuffle:
            if rng is None:
                raise ConfigError("TrainData(shuffle=True).batch needs the run's rng key data")
            rows = self._permutation(rng, epoch)[start : start + self.batch_size]
            leaves = [leaf[rows] for leaf in self._leaves]
        else:
            leaves = [leaf[start : start + self.batch_size] for leaf in self._leaves]
        return jax.tree_util.tree_unflatten(self._treedef, leaves)

    def _permutation(self, rng: np.ndarray, epoch: int) -> np.ndarray:
        tag = (epoch, np.asarray(rng).tobytes())
        if self._epoch != tag or self._order is None:
            self._order = _philox_permutation(np.asarray(rng), epoch, self.n_rows)
            self._epoch = tag
        return self._order


def fixed_batches(examples: Any, batch_size: int) -> Iterator[tuple[Any, int]]:
    """Consecutive batches of at most ``batch_size`` rows and their row counts, in order."""
    leaves, treedef, n_rows = _host_leaves(examples, "eval data")
    for start in range(0, n_rows, batch_size):
        stop = min(start + batch_size, n_rows)
        yield (
            jax.tree_util.tree_unflatten(treedef, [leaf[start:stop] for leaf in leaves]),
            stop - start,
        )
