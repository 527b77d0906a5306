"""Per-entity baselines and the anomaly detector of the analysis (see :mod:`liam_core.analysis`).

Rows are time-major, one per entity and step, so a stream of rows is a stream of whole
steps: :func:`step_blocks` regroups batches into :class:`StepBlock` s ``[steps, entities,
metrics]``. On those blocks:

* :func:`fleet_center` (ALDA ``map`` over steps): the median of each metric over the
  entities at each step (needs at least :data:`MIN_FLEET` entities, else 0), which carries
  what every entity shares (daily and weekly cycles, load, drift);
* :func:`entity_moments` (ALDA ``reduce``, sums keyed by entity through a one-hot matrix of
  a static number of entities): per-entity counts, sums and cross-products of the values
  and of the fleet center, from which :meth:`Baselines.from_moments` gets each entity's mean
  and scale (its own z-score) and its regression on the fleet center (the residual's scale);
* :func:`standardizer` (ALDA ``map`` over rows): each row's z-score against its entity's
  own mean and scale, and its residual against its entity's fleet-relative baseline;
* :func:`~liam_core.algebra.track_changes` (one ``lax.scan`` over steps on the home device,
  a sequential recursion that no device split can change): the residual against a rolling
  baseline of the entity's own recent steps, and a CUSUM change score.

Every reduction is ALDA's canonical tree and the rest is row-wise or elementwise, so the
scores are the same bits on every mesh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from ._errors import ShapeError
from .data import ANOMALY_KINDS, Batch

MIN_FLEET = 3
"""Entities needed for a fleet center (a median of fewer is not robust to one outlier)."""

NETWORK_MAX_ENTITIES = 32
"""Up to this many entities the fleet median comes from a sorting network (elementwise min and
max, 6-9x faster than ``jnp.nanmedian``'s sort on CPU); beyond it, from ``jnp.nanmedian``."""


@dataclasses.dataclass(frozen=True)
class StepBlock:
    """Whole time steps of a stream: ``[steps, entities, ...]`` arrays.

    Attributes:
        first_step: the index of the first step in the stream.
        values: ``float32 [steps, entities, metrics]``, 0 where a row is not valid.
        valid: ``bool [steps, entities]``: the row exists and every cell of it is valid.
        row: ``int64 [steps, entities]`` row index in the stream.
        kinds: ``bool [steps, entities, kinds]`` the labelled kinds of each row (codes 1..),
            or ``None`` without labels.
        timestamps: ``datetime64 [steps]`` or ``None``.
    """

    first_step: int
    values: np.ndarray
    valid: np.ndarray
    row: np.ndarray
    kinds: np.ndarray | None
    timestamps: np.ndarray | None

    @property
    def n_steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_rows(self) -> int:
        """Rows of the stream in the block (a last partial step's padding left out)."""
        return int(np.count_nonzero(self.row >= 0))

    @property
    def nbytes(self) -> int:
        """Bytes of the block's arrays."""
        arrays = (self.values, self.valid, self.row, self.kinds, self.timestamps)
        return sum(a.nbytes for a in arrays if a is not None)


def anomaly_names_of(batch: Batch) -> tuple[str, ...]:
    """The names of a batch's anomaly codes (``"none"`` first)."""
    return batch.anomaly_names or ANOMALY_KINDS


def step_blocks(
    batches: Iterable[Batch],
    validate: Callable[[Batch], tuple[np.ndarray, np.ndarray]],
    n_entities: int,
    n_kinds: int,
) -> Iterator[tuple[StepBlock, int]]:
    """Regroup a stream of batches into whole steps; yield ``(block, masked_rows)``.

    ``validate(batch)`` returns the validated values of the rows it keeps and the bool mask
    of those rows. Rows must be time-major: row ``i`` is entity ``i % n_entities`` at step
    ``i // n_entities``; a batch whose ``entity`` codes say otherwise is refused.
    """
    pending: list[dict[str, np.ndarray]] = []
    next_row = 0
    for batch in batches:
        values, keep = validate(batch)
        rows = batch.start + np.arange(batch.n_rows, dtype=np.int64)
        if batch.start != next_row:
            raise ShapeError(
                f"batches must follow each other: expected a batch starting at row {next_row}, "
                f"got one starting at row {batch.start}"
            )
        next_row = batch.stop
        if batch.entity is not None and np.any(batch.entity != rows % n_entities):
            bad = int(np.flatnonzero(batch.entity != rows % n_entities)[0])
            raise ShapeError(
                f"rows must be time-major with one row per entity and step ({n_entities} "
                f"entities), but row {rows[bad]} is entity {int(batch.entity[bad])}, not "
                f"{int(rows[bad] % n_entities)}"
            )
        if values.shape[0] == batch.n_rows and values.dtype == np.float32:
            full = values  # every row kept
        else:
            full = np.zeros((batch.n_rows, values.shape[1]), np.float32)
            full[keep] = values
        part = {"row": rows, "values": full, "valid": keep}
        if n_kinds:
            codes = np.zeros((batch.n_rows, 1), np.int8) if batch.anomaly is None else batch.anomaly
            kinds = part["kinds"] = np.empty((batch.n_rows, n_kinds), bool)
            for code in range(1, n_kinds + 1):  # 4x faster than one [rows, cells, kinds] compare
                np.any(codes == code, axis=1, out=kinds[:, code - 1])
        if batch.timestamps is not None:
            part["timestamps"] = batch.timestamps
        pending.append(part)
        n_pending = sum(p["row"].shape[0] for p in pending)
        whole = (n_pending // n_entities) * n_entities  # pending always starts at a step
        if whole:
            joined = _joined(pending)
            pending = [{key: value[whole:] for key, value in joined.items()}]
            if pending[0]["row"].shape[0] == 0:
                pending = []
            yield (
                _block({k: v[:whole] for k, v in joined.items()}, n_entities),
                int((~joined["valid"][:whole]).sum()),
            )
    if pending:
        joined = _joined(pending)
        yield _block(joined, n_entities), int((~joined["valid"]).sum())


def _joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The rows of ``parts`` concatenated, key by key (one part: itself, no copy)."""
    if len(parts) == 1:
        return parts[0]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _block(part: dict[str, np.ndarray], n_entities: int) -> StepBlock:
    """A block of whole steps from rows (a last partial step is padded with invalid rows)."""
    first_row = int(part["row"][0])
    if first_row % n_entities:
        raise ShapeError(f"a block of steps must start at a step, got row {first_row}")
    n = part["row"].shape[0]
    padded = -(-n // n_entities) * n_entities

    def grid(array: np.ndarray, fill: object) -> np.ndarray:
        if n < padded:
            out = np.full((padded, *array.shape[1:]), fill, array.dtype)
            out[:n] = array
            array = out
        return array.reshape(padded // n_entities, n_entities, *array.shape[1:])

    row = grid(part["row"], -1)
    timestamps = part.get("timestamps")
    if timestamps is not None:
        stamps = grid(timestamps, np.datetime64("NaT"))
        timestamps = stamps[:, 0].copy()  # not a view of the source's buffer: blocks are kept
    return StepBlock(
        first_step=first_row // n_entities,
        values=grid(part["values"], 0),
        valid=grid(part["valid"], False),
        row=row,
        kinds=grid(part["kinds"], False) if "kinds" in part else None,
        timestamps=timestamps,
    )


# --------------------------------------------------------------------------- ALDA kernels


def fleet_units(shift: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The provisional z units of the fleet center: ``float32 (shift, scale)``, each
    ``[entities, metrics]``; pass them to :func:`fleet_center`.

    The center of a step is the median over its valid entities of their values in these
    units, ``(x - shift) / scale`` per entity (any fixed values will do, the analysis takes
    them from the first batch), so the median's members are exchangeable and one entity
    leaving the pack moves the median by a fraction of the noise, not by the gap between two
    entities' levels. A step without a valid entity gets 0.
    """
    return np.asarray(shift, np.float32), np.asarray(scale, np.float32)


def _fleet_center(
    block: tuple[jax.Array, jax.Array], shift: jax.Array, scale: jax.Array
) -> jax.Array:
    """The ALDA map kernel of :func:`fleet_center`: steps ``(values, valid)`` -> centers."""
    values, valid = block
    z = (values - shift) / scale
    if z.shape[1] <= NETWORK_MAX_ENTITIES:
        return masked_median(z, valid)
    median = jnp.nanmedian(jnp.where(valid[..., None], z, jnp.nan), axis=1)
    return jnp.where(jnp.isnan(median), jnp.zeros((), values.dtype), median)


def masked_median(z: jax.Array, valid: jax.Array) -> jax.Array:
    """``[steps, metrics]``: the median over axis 1 of ``z [steps, entities, metrics]`` where
    ``valid [steps, entities]``, 0 where no entity is valid.

    The same bits as ``jnp.nanmedian`` of ``z`` with invalid entries NaN (its order
    statistics and its interpolation ``low * (1 - w) + high * w``, in the same float32
    operations), but for the sign of a zero where ``-0.0`` and ``+0.0`` tie (its stable sort
    keeps them in input order). The entities are sorted by Batcher's odd-even merge network:
    elementwise ``minimum``/``maximum`` that XLA fuses into one loop, instead of a sort along
    a short axis. Invalid entries sort last as ``+inf``; valid ones are finite.
    """
    columns = [jnp.where(valid[:, e, None], z[:, e], jnp.inf) for e in range(z.shape[1])]
    for a, b in sorting_network(len(columns)):
        columns[a], columns[b] = (
            jnp.minimum(columns[a], columns[b]),
            jnp.maximum(columns[a], columns[b]),
        )
    ordered = jnp.stack(columns, axis=1)
    counts = jnp.sum(valid, axis=1, dtype=z.dtype)[:, None]
    q = 0.5 * (counts - 1)
    low, high = jnp.floor(q), jnp.ceil(q)
    high_weight = q - low
    low_weight = 1 - high_weight

    def order_statistic(index: jax.Array) -> jax.Array:
        index = jnp.maximum(0, jnp.minimum(index, counts - 1)).astype(jnp.int32)
        return jnp.take_along_axis(ordered, index[:, None].repeat(z.shape[2], axis=2), axis=1)[:, 0]

    median = order_statistic(low) * low_weight + order_statistic(high) * high_weight
    return jnp.where(counts > 0, median, jnp.zeros((), z.dtype))


def sorting_network(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort of ``n`` elements: compare-exchanges ``(a, b)``, ``a < b``.

    Built for the next power of two; a pair that reaches past ``n`` is left out, which is exact
    when the missing elements are the largest (they would never move).

    Example:
        >>> sorting_network(4)
        [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]
    """
    width = 1 << max(n - 1, 0).bit_length()
    pairs = []
    merge = 1
    while merge < width:
        step = merge
        while step >= 1:
            for j in range(step % merge, width - step, 2 * step):
                for i in range(min(step, width - j - step)):
                    a, b = i + j, i + j + step
                    if a // (2 * merge) == b // (2 * merge) and b < n:
                        pairs.append((a, b))
            step //= 2
        merge *= 2
    return pairs


def fleet_center(
    labor, block: StepBlock, units: tuple[np.ndarray, np.ndarray] | None
) -> np.ndarray:
    """``float32 [steps, metrics]``: the fleet center of each step through ALDA ``map``.

    ``units`` are :func:`fleet_units`; ``None`` (fewer than :data:`MIN_FLEET` entities)
    gives 0 everywhere. One program serves every block and every analysis of a process.
    """
    steps, _, metrics = block.values.shape
    if units is None:
        return np.zeros((steps, metrics), np.float32)
    return np.asarray(labor.map(_fleet_center, (block.values, block.valid), *units))


def _entity_moments(
    chunk: tuple[jax.Array, ...],
    mask: jax.Array,
    x_shift: jax.Array,
    c_shift: jax.Array,
    entities: jax.Array,
) -> dict[str, jax.Array]:
    """Per-entity count, shifted sums and cross-products of a chunk of rows (one-hot keyed)."""
    x, c, valid, entity = chunk
    use = mask & valid
    onehot = (use[:, None] & (entity[:, None] == entities[None, :])).astype(x.dtype)
    dx = jnp.where(use[:, None], x - x_shift[entity], 0)
    dc = jnp.where(use[:, None], c - c_shift, 0)
    by_entity = onehot.T
    return {
        "count": jnp.sum(onehot, axis=0),
        "x": by_entity @ dx,
        "xx": by_entity @ (dx * dx),
        "c": by_entity @ dc,
        "cc": by_entity @ (dc * dc),
        "xc": by_entity @ (dx * dc),
    }


def entity_moments(
    labor, block: StepBlock, center: np.ndarray, x_shift: np.ndarray, c_shift: np.ndarray
) -> dict[str, np.ndarray]:
    """The per-entity moments of a block through ALDA ``reduce`` (float64 on the host)."""
    steps, entities, metrics = block.values.shape
    rows = (
        block.values.reshape(-1, metrics),
        np.repeat(center, entities, axis=0),
        block.valid.reshape(-1),
        np.tile(np.arange(entities, dtype=np.int32), steps),
    )
    partial = labor.reduce(
        _entity_moments, rows, x_shift, c_shift, np.arange(entities, dtype=np.int32)
    )
    return {key: np.asarray(jax.device_get(value), np.float64) for key, value in partial.items()}


@dataclasses.dataclass(frozen=True)
class Baselines:
    """Each entity's own baseline, ``[entities, metrics]`` each (float64).

    Attributes:
        count: valid rows of each entity.
        mean, scale: the entity's own mean and standard deviation of each metric.
        slope: the regression slope of the entity's values on the fleet center.
        center_mean: the mean of the fleet center over the entity's rows.
        residual_scale: the standard deviation of the residual
            ``x - mean - slope * (center - center_mean)``.
    """

    count: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    slope: np.ndarray
    center_mean: np.ndarray
    residual_scale: np.ndarray

    @classmethod
    def from_moments(
        cls, moments: dict[str, np.ndarray], x_shift: np.ndarray, c_shift: np.ndarray
    ) -> Baselines:
        n = moments["count"][:, None]
        safe = np.maximum(n, 1)
        dof = np.maximum(n - 1, 1)
        mean_dx, mean_dc = moments["x"] / safe, moments["c"] / safe
        var_x = np.maximum((moments["xx"] - moments["x"] * mean_dx) / dof, 0)
        var_c = np.maximum((moments["cc"] - moments["c"] * mean_dc) / dof, 0)
        cov = (moments["xc"] - moments["x"] * mean_dc) / dof
        slope = np.where(var_c > 1e-12 * (1 + var_x), cov / np.where(var_c > 0, var_c, 1), 0.0)
        var_r = np.maximum(var_x - slope * cov, 0)
        mean = x_shift.astype(np.float64) + mean_dx
        floor = 1e-6 * np.maximum(1.0, np.abs(mean))
        return cls(
            count=moments["count"],
            mean=mean,
            scale=np.maximum(np.sqrt(var_x), floor),
            slope=slope,
            center_mean=c_shift.astype(np.float64)[None] + mean_dc,
            residual_scale=np.maximum(np.sqrt(var_r), floor),
        )


def standardized(labor, rows: tuple[np.ndarray, ...], baselines: Baselines) -> np.ndarray:
    """``[rows, 2, metrics]``: each row's own z and residual z (ALDA ``map`` of
    ``(x, center, entity)`` rows), one program for every batch and every analysis."""
    parameters = tuple(
        np.float32(getattr(baselines, name))
        for name in ("mean", "scale", "slope", "center_mean", "residual_scale")
    )
    return labor.map(_standardize, rows, parameters)


def _standardize(rows: tuple[jax.Array, ...], parameters: tuple[jax.Array, ...]) -> jax.Array:
    x, center, entity = rows
    mean, scale, slope, center_mean, residual_scale = (p[entity] for p in parameters)
    own = (x - mean) / scale
    residual = x - mean - slope * (center - center_mean)
    return jnp.stack([own, residual / residual_scale], axis=1)


def row_scores(
    own: np.ndarray, residual: np.ndarray, change: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's score, driving metric and that metric's share, from cell scores.

    A cell's score is the largest of ``|own z|``, ``|residual against the rolling baseline|``
    and ``threshold * change`` (the CUSUM change score reaches ``threshold`` exactly when a
    run is alarmed), so a cell is flagged when its score reaches ``threshold``. The row's
    score is its largest cell's; the share is that cell's squared score over the row's sum.
    """
    cells = np.maximum(np.maximum(np.abs(own), np.abs(residual)), np.float32(threshold) * change)
    metric = np.argmax(cells, axis=-1)
    score = np.take_along_axis(cells, metric[..., None], axis=-1)[..., 0]
    squares = np.square(cells.astype(np.float64))
    total = squares.sum(axis=-1)
    share = np.where(
        total > 0, np.square(score.astype(np.float64)) / np.where(total > 0, total, 1), 0
    )
    return score, metric, share
