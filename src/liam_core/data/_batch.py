"""``Batch``: the one container every data source yields (values, names, mask, entities, labels)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._checks import check_int, check_names, quote
from .._errors import EmptyInputError, InvalidTypeError, ShapeError

__all__ = ["Batch", "concat_batches"]

# Arrays of a Batch that have one entry per row (and are concatenated along rows).
_ROW_FIELDS = ("values", "mask", "timestamps", "entity", "shift", "anomaly", "target")


@dataclass(frozen=True, eq=False)
class Batch:
    """Rows of named metrics: a ``float32 [rows, metrics]`` block plus what is known per row.

    Every reader, bundled dataset and the synthetic generator yields this type, so a
    pipeline does not care where the rows came from. Only ``values`` and ``metric_names``
    are always present; the other arrays are ``None`` when a source has no such thing.

    Args:
        values: ``float32 [rows, metrics]``; a masked cell holds NaN (see :meth:`filled`).
        metric_names: one name per column of ``values``.
        start: index (0-based) of the first row within its whole stream or file, so a
            batch knows where it sits; ``stop = start + rows``.
        mask: ``bool [rows, metrics]``, True where a value is valid; ``None`` when every
            value is valid by construction.
        timestamps: ``datetime64[s] [rows]`` (UTC; ``datetime64[ns]`` for sub-second steps).
        entity: ``int32 [rows]`` entity code of each row (a host, a service, a team), an
            index into ``entity_names``.
        shift: ``int8 [rows]`` work shift, an index into ``liam_core.data.SHIFTS``.
        anomaly: ``int8 [rows, metrics]`` ground-truth (labelled) anomaly kind of each
            cell, an index into ``anomaly_names`` (0 is "none").
        target: ``[rows]`` supervised target (scikit-learn datasets).
        source: where the rows came from, for messages.
        entity_names: the name of each entity code, in code order (required with
            ``entity``); time series order them sorted, synthetic telemetry names them
            ``team-0``, ``team-1``, ...
        anomaly_names: the name of each anomaly code, ``"none"`` first (``None``: the
            synthetic kinds ``liam_core.data.ANOMALY_KINDS``).

    Example:
        >>> import numpy as np
        >>> from liam_core.data import Batch
        >>> batch = Batch(np.ones((2, 1), np.float32), ("quality",))
        >>> batch.n_rows, batch.n_metrics, batch.stop
        (2, 1, 2)
    """

    values: np.ndarray
    metric_names: tuple[str, ...]
    start: int = 0
    mask: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    entity: np.ndarray | None = None
    shift: np.ndarray | None = None
    anomaly: np.ndarray | None = None
    target: np.ndarray | None = None
    source: str = ""
    entity_names: tuple[str, ...] | None = None
    anomaly_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        names = check_names(self.metric_names, "metric_names", owner="Batch")
        object.__setattr__(self, "metric_names", names)
        values = self.values
        if not isinstance(values, np.ndarray) or values.dtype != np.float32 or values.ndim != 2:
            raise ShapeError(
                "Batch: `values` must be a float32 numpy array [rows, metrics], got "
                f"{type(values).__name__} {getattr(values, 'dtype', '')} "
                f"{getattr(values, 'shape', '')}"
            )
        rows, metrics = values.shape
        if len(names) != metrics:
            raise ShapeError(
                f"Batch: `metric_names` must name the {metrics} value columns, got "
                f"{len(names)} metric names {list(names)}"
            )
        for name in ("mask", "anomaly"):
            array = getattr(self, name)
            if array is not None and np.shape(array) != values.shape:
                raise ShapeError(
                    f"Batch: `{name}` must have the shape {values.shape} of `values`, "
                    f"got {np.shape(array)}"
                )
        for name in ("timestamps", "entity", "shift", "target"):
            array = getattr(self, name)
            if array is not None and np.shape(array) != (rows,):
                raise ShapeError(
                    f"Batch: `{name}` must have the shape ({rows},), one entry per row, "
                    f"got {np.shape(array)}"
                )
        object.__setattr__(self, "start", check_int(self.start, "start", minimum=0, owner="Batch"))
        if (self.entity is None) != (self.entity_names is None):
            raise ShapeError(
                "Batch: `entity` and `entity_names` must be given together, got "
                f"entity={'an array' if self.entity is not None else None}, "
                f"entity_names={quote(self.entity_names)}"
            )
        if self.entity_names is not None:
            entity_names = check_names(self.entity_names, "entity_names", owner="Batch")
            object.__setattr__(self, "entity_names", entity_names)
        if self.anomaly_names is not None:
            anomaly_names = check_names(self.anomaly_names, "anomaly_names", owner="Batch")
            object.__setattr__(self, "anomaly_names", anomaly_names)

    def __repr__(self) -> str:
        extras = [name for name in _ROW_FIELDS[1:] if getattr(self, name) is not None]
        return (
            f"Batch(rows {self.start}:{self.stop}, metrics={list(self.metric_names)}, "
            f"with={extras}, source={self.source!r})"
        )

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return int(self.values.shape[0])

    @property
    def n_metrics(self) -> int:
        """Number of metrics (columns of ``values``)."""
        return int(self.values.shape[1])

    @property
    def stop(self) -> int:
        """Index one past the last row within the whole stream."""
        return self.start + self.n_rows

    @property
    def valid(self) -> np.ndarray:
        """``bool [rows, metrics]``: the mask, or all True when there is none."""
        if self.mask is None:
            return np.ones(self.values.shape, dtype=bool)
        return self.mask

    def filled(self, fill_value: float = 0.0) -> np.ndarray:
        """``values`` with every masked cell replaced by ``fill_value`` (a new array).

        Example:
            >>> import numpy as np
            >>> from liam_core.data import Batch
            >>> values = np.array([[1.0], [np.nan]], np.float32)
            >>> Batch(values, ("co2",), mask=np.array([[True], [False]])).filled().ravel().tolist()
            [1.0, 0.0]
        """
        if self.mask is None:
            return self.values.copy()
        return np.where(self.mask, self.values, np.float32(fill_value)).astype(np.float32)

    def columns(self) -> dict[str, np.ndarray]:
        """Metric name -> column of ``values``, the input of ``engine.ingest_columns``."""
        return {name: self.values[:, j] for j, name in enumerate(self.metric_names)}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every per-row array that is present, by field name (for ``liam_core.digest``).

        Example:
            >>> import numpy as np
            >>> from liam_core.data import Batch
            >>> sorted(Batch(np.zeros((1, 1), np.float32), ("x",)).arrays())
            ['values']
        """
        return {
            name: getattr(self, name) for name in _ROW_FIELDS if getattr(self, name) is not None
        }

    def take(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` of this batch (positions within it) as a new ``Batch``."""
        start, stop, _ = slice(start, stop).indices(self.n_rows)
        stop = max(start, stop)
        sliced = {name: getattr(self, name)[start:stop] for name in self.arrays()}
        return replace(self, start=self.start + start, **sliced)


def concat_batches(batches: Iterable[Batch]) -> Batch:
    """Join consecutive batches of one stream into one ``Batch``.

    Args:
        batches: batches with the same metric names and the same optional arrays, in order.

    Returns:
        One ``Batch`` starting at the first batch's ``start``.

    Example:
        >>> import numpy as np
        >>> from liam_core.data import Batch, concat_batches
        >>> parts = [Batch(np.full((n, 1), n, np.float32), ("x",)) for n in (1, 2)]
        >>> concat_batches(parts).values.ravel().tolist()
        [1.0, 2.0, 2.0]
    """
    parts: Sequence[Batch] = list(batches)
    if not parts:
        raise EmptyInputError("concat_batches() got no batches; expected at least one")
    first = parts[0]
    for index, part in enumerate(parts):
        if not isinstance(part, Batch):
            raise InvalidTypeError(
                f"concat_batches: `batches[{index}]` must be a Batch, "
                f"got {type(part).__name__}: {quote(part)}"
            )
        if part.metric_names != first.metric_names:
            raise ShapeError(
                f"batch {index} has metrics {list(part.metric_names)}; batch 0 has "
                f"{list(first.metric_names)}"
            )
        if part.arrays().keys() != first.arrays().keys():
            raise ShapeError(
                f"batch {index} holds {sorted(part.arrays())}; batch 0 holds {sorted(first.arrays())}"
            )
        if part.entity_names != first.entity_names:
            raise ShapeError(
                f"batch {index} has the entities {quote(part.entity_names)}; batch 0 has "
                f"{quote(first.entity_names)}"
            )
    if len(parts) == 1:
        return first
    joined: dict[str, Any] = {
        name: np.concatenate([getattr(part, name) for part in parts]) for name in first.arrays()
    }
    return replace(first, **joined)
