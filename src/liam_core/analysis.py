"""The main job's logic: stream metric batches through ALDA and report their patterns.

:func:`analyze` takes typed arguments only (Hydra stays in ``config.py`` and
``experiments/``). Rows are time-major, one per entity and step. It makes two passes over a
re-iterable source of :class:`Batch` es, so data larger than memory streams through in
batches of whole steps (:mod:`liam_core._detect`):

1. ALDA ``reduce`` of shifted moments (count, sum, cross-products) gives means and the
   covariance; ALDA ``reduce`` of sums keyed by entity gives each entity's own baseline
   (mean, scale, and its regression on the fleet center, the median over entities per
   step); per-step fleet means are kept for spectra.
2. ALDA ``map`` standardizes every row against its entity's baselines; a ``lax.scan`` over
   the steps (on the home device) tracks a rolling baseline of each entity's own recent
   steps and a CUSUM change score; the first and last parts of the time span are kept
   for drift (``pipeline.drift``).

A row is flagged when its largest score reaches ``pipeline.anomaly_threshold``; the report
names the top rows (time, entity, the metric that drives the score and its share), and with
labels, precision and recall overall and per kind of incident. Every reduction goes through
the canonical ALDA tree and batch partials are added on the host in float64 in batch order,
so every figure is the same bytes on any mesh.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import algebra
from ._checks import check_int, check_number, quote
from ._detect import (
    MIN_FLEET,
    Baselines,
    StepBlock,
    anomaly_names_of,
    entity_moments,
    fleet_center,
    fleet_units,
    row_scores,
    standardized,
    step_blocks,
)
from ._digest import digest
from ._errors import ConfigError, ConfigTypeError, EmptyInputError, ShapeError
from ._evidence import (
    mesh_summary,
    plot_score_points,
    plot_scree,
    plot_spectra,
    progress_bar,
    quality_from_counts,
    start_backend,
    write_json,
)
from .alda import LaborArray, SchedulerSpec
from .data import Batch, DataSpec, open_source
from .engine import LaborIntelligenceEngine, Schema
from .mesh import MeshSpec

BatchSource = Callable[[], Iterable[Batch]]

_UNIT_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|min|h|d|w)\s*$")
_SPAN_TEXT = "a fraction of the time span in (0, 1) or a duration such as '2d', '36h', '90min'"


def _physical_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits_memory(n_bytes: float, name: str, value: Any, what: str) -> None:
    """Raise ``ConfigError`` naming ``name`` if ``what`` (``n_bytes``) exceeds physical memory.

    Example:
        >>> from liam_core import ConfigError
        >>> try:
        ...     check_fits_memory(2**80, "pipeline.batch_size", 2**70, "the rows of a batch")
        ... except ConfigError as error:
        ...     print(str(error)[:74])
        `pipeline.batch_size` must be small enough that the rows of a batch fit in
    """
    total = _physical_memory()
    if n_bytes > total:
        raise ConfigError(
            f"`{name}` must be small enough that {what} fit in memory "
            f"({n_bytes / 2**30:.3g} GiB needed, the machine has {total / 2**30:.1f} GiB), "
            f"got {quote(value)}"
        )


def check_span(value: Any, name: str) -> float | str:
    """A window size: a fraction in ``(0, 1)`` or a duration text (``"2d"``), else ``ConfigError``.

    Example:
        >>> check_span(0.2, "pipeline.drift.reference"), check_span("36h", "x")
        (0.2, '36h')
        >>> check_span(0, "pipeline.drift.current")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `pipeline.drift.current` must be a fraction of the time span in (0, 1) or a duration such as '2d', '36h', '90min', got 0
    """
    if isinstance(value, str):
        match = _SPAN.match(value)
        if match and float(match.group(1)) > 0:
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1:
        return float(value)
    raise ConfigError(f"`{name}` must be {_SPAN_TEXT}, got {quote(value)}")


def span_steps(value: float | str, n_steps: int, period_s: float) -> int:
    """The number of time steps a window size covers (at least 1).

    Example:
        >>> span_steps(0.2, 1000, 900.0), span_steps("2d", 1000, 900.0)
        (200, 192)
    """
    if isinstance(value, str):
        match = _SPAN.match(value)
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return max(1, round(seconds / period_s))
    return max(1, round(value * n_steps))


def format_period(seconds: float) -> str:
    """A period as text in the largest unit that reads well: ``"7d"``, ``"24h"``, ``"90min"``.

    Example:
        >>> [format_period(s) for s in (604_800, 86_400, 43_200, 5_400, 30, 89_600)]
        ['7d', '24h', '12h', '90min', '30s', '24.9h']
    """
    for unit, size, at_least in (("d", 86_400.0, 2), ("h", 3600.0, 2), ("min", 60.0, 2)):
        if seconds >= at_least * size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def _sub_spec(cls: type, value: Any, name: str) -> Any:
    """``value`` as ``cls``: itself, or a mapping of its fields (unknown fields refused)."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ConfigTypeError(
            f"`{name}` must be a mapping of {sorted(f.name for f in dataclasses.fields(cls))}, "
            f"got {type(value).__name__}: {quote(value)}"
        )
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(value) - fields)
    if unknown:
        raise ConfigError(f"{name} has unknown fields {unknown}; allowed: {sorted(fields)}")
    return cls(**value)


@dataclasses.dataclass(frozen=True)
class DriftSpec:
    """Drift between a reference window (the start of the data) and a current one (its end).

    Args:
        reference: the first part of the time span: a fraction in ``(0, 1)`` or a duration
            (``"2d"``, ``"36h"``, ``"90min"``, ``"600s"``, ``"1w"``).
        current: the last part of the time span, in the same forms.
        bins: quantile bins of the population stability index, ``>= 2``.
        max_rows: the most rows of a window the statistics see, so memory stays bounded
            however long the data: a window of more ``(step, entity)`` rows keeps one in
            ``k = ceil(rows / max_rows)``, every entity's every ``k``-th step (the
            entities taking turns), the same rows on every mesh and batch size;
            ``None``: every row.

    The two windows must not overlap; each must hold at least ``bins`` valid rows. The
    report gives each window's ``rows`` (valid rows used) and ``every`` (``k``).
    """

    reference: float | str = 0.2
    current: float | str = 0.2
    bins: int = 10
    max_rows: int | None = 262_144

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "reference", check_span(self.reference, "pipeline.drift.reference")
        )
        object.__setattr__(self, "current", check_span(self.current, "pipeline.drift.current"))
        check_int(self.bins, "pipeline.drift.bins", minimum=2)
        check_fits_memory(8.0 * self.bins, "pipeline.drift.bins", self.bins, "the bins")
        if self.max_rows is not None:
            check_int(self.max_rows, "pipeline.drift.max_rows", minimum=self.bins)


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
    """The anomaly detector: per-entity z-scores, a rolling baseline and a CUSUM change score.

    Args:
        baseline: the span of the rolling baseline of each entity's own recent steps, a
            duration (``"1d"``); its weight of a new step is ``1 / steps``.
        clip: the largest step (in residual scales) the baseline moves towards a new value,
            so outliers and level shifts barely move it.
        cusum_drift: the CUSUM allowance ``k``: residuals below it do not accumulate.
        cusum_threshold: the CUSUM decision level ``h``: a run alarms once its excess reaches it.
    """

    baseline: str = "1d"
    clip: float = 1.0
    cusum_drift: float = 1.5
    cusum_threshold: float = 12.0

    def __post_init__(self) -> None:
        baseline = self.baseline
        if (
            not (isinstance(baseline, str) and _SPAN.match(baseline))
            or float(_SPAN.match(baseline).group(1)) <= 0
        ):
            raise ConfigError(
                "`pipeline.detector.baseline` must be a duration such as '1d', '12h', "
                f"'90min', got {quote(baseline)}"
            )
        check_number(self.clip, "pipeline.detector.clip", positive=True)
        check_number(self.cusum_drift, "pipeline.detector.cusum_drift", minimum=0.0)
        check_number(self.cusum_threshold, "pipeline.detector.cusum_threshold", positive=True)


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """Settings of the analysis pipeline (``conf/pipeline/*.yaml``); every one is validated.

    Args:
        batch_size: rows per streamed batch.
        n_components: principal components to report, at most the number of metrics;
            ``None``: 3, or every metric when there are fewer.
        segment_steps: Welch segment length, in time steps, for the spectra.
        top_peaks: spectral peaks to report per metric.
        anomaly_threshold: a row whose score (its largest z-score, residual or scaled
            change score) reaches it is flagged.
        top_anomalies: rows listed in the report's ``anomalies.top``.
        score_points: the most unflagged points of the score scatter plot (every flagged
            point is drawn).
        drift: a :class:`DriftSpec` or a mapping of its fields.
        detector: a :class:`DetectorSpec` or a mapping of its fields.
        keep_mib: pass 1 keeps its blocks of steps (and their fleet centers) in memory for
            pass 2 while they take at most this many MiB, so the data is read and validated
            once; beyond it (or with 0) pass 2 reads the source again.
    """

    batch_size: int = 131_072
    n_components: int | None = None
    segment_steps: int = 2688
    top_peaks: int = 3
    anomaly_threshold: float = 6.0
    top_anomalies: int = 10
    score_points: int = 20_000
    drift: DriftSpec = dataclasses.field(default_factory=DriftSpec)
    detector: DetectorSpec = dataclasses.field(default_factory=DetectorSpec)
    keep_mib: int = 256

    def __post_init__(self) -> None:
        if self.n_components is not None:
            check_int(self.n_components, "pipeline.n_components")
        keep_mib = check_int(self.keep_mib, "pipeline.keep_mib", minimum=0)
        check_fits_memory(keep_mib * 2.0**20, "pipeline.keep_mib", keep_mib, f"{keep_mib} MiB")
        for name, bytes_each in (
            ("batch_size", 64.0),
            ("segment_steps", 16.0),
            ("top_peaks", 8.0),
            ("top_anomalies", 64.0),
            ("score_points", 24.0),
        ):
            value = check_int(getattr(self, name), f"pipeline.{name}")
            check_fits_memory(bytes_each * value, f"pipeline.{name}", value, f"{value} of them")
        check_number(self.anomaly_threshold, "pipeline.anomaly_threshold", positive=True)
        object.__setattr__(self, "drift", _sub_spec(DriftSpec, self.drift, "pipeline.drift"))
        detector = _sub_spec(DetectorSpec, self.detector, "pipeline.detector")
        object.__setattr__(self, "detector", detector)


def _moments(chunk: jax.Array, mask: jax.Array, shift: jax.Array) -> dict[str, jax.Array]:
    """Per-chunk count, shifted sum and shifted cross-products (padding masked out)."""
    centered = jnp.where(mask[:, None], chunk - shift, 0)
    return {
        "count": jnp.sum(mask.astype(jnp.float32)),
        "sum": jnp.sum(centered, axis=0),
        "cross": centered.T @ centered,
    }


def _validated(engine: LaborIntelligenceEngine, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Validated float32 rows in schema order, and which rows were kept.

    Rows with a masked cell (``nan_policy="mask"`` in the readers) are left out whole, so
    no statistic sees a made-up value; every other row goes through the engine's checks
    (finite numbers, schema names and ranges).
    """
    keep = np.ones(batch.n_rows, dtype=bool) if batch.mask is None else batch.mask.all(axis=1)
    values = batch.values if keep.all() else batch.values[keep]
    if values.shape[0] == 0:
        return np.zeros((0, len(engine.schema.names)), np.float32), keep
    columns = dict(zip(batch.metric_names, values.T, strict=True))
    return engine.validate_columns(columns, source=batch.source or "batch"), keep


def _first_batch_names(source: BatchSource) -> tuple[tuple | None, tuple | None]:
    """The anomaly names (``None``: no labels) and entity names of the first batch."""
    for batch in source():
        labels = anomaly_names_of(batch) if batch.anomaly is not None else None
        return labels, batch.entity_names
    return None, None


@dataclasses.dataclass
class _KindCounts:
    """Streaming confusion counts, overall and per labelled kind."""

    names: tuple[str, ...]
    n: np.ndarray
    hits: np.ndarray
    false_alarms: int = 0

    def add(self, flagged: np.ndarray, kinds: np.ndarray) -> None:
        self.n += kinds.sum(axis=0)
        self.hits += (kinds & flagged[:, None]).sum(axis=0)
        self.false_alarms += int((flagged & ~kinds.any(axis=1)).sum())

    def report(self) -> dict[str, dict[str, float | int | None]]:
        out = {}
        for name, n, hits in zip(self.names, self.n, self.hits, strict=True):
            alarms = int(hits) + self.false_alarms
            out[name] = {  # None: no labelled row of this kind, nothing to measure
                "precision": (float(hits / alarms) if alarms else 0.0) if n else None,
                "recall": float(hits / n) if n else None,
                "n": int(n),
                "detected": int(hits),
            }
        return out


def detection_by_kind(
    flagged: Any, kinds: Any, names: Iterable[str]
) -> dict[str, dict[str, float | int | None]]:
    """Precision and recall of flagged rows for each labelled kind of incident.

    For kind ``k``: recall is the share of rows of kind ``k`` that are flagged; precision is
    ``hits / (hits + false alarms)``, where false alarms are flagged rows with no label at
    all: the precision the detector would have on data holding only incidents of kind ``k``
    (rows of other kinds count for neither). Both are ``None`` for a kind without rows.

    Args:
        flagged: ``bool [rows]``.
        kinds: ``bool [rows, kinds]``, True where a row has a label of that kind.
        names: the name of each kind.

    Example:
        >>> import numpy as np
        >>> flagged = np.array([1, 1, 0, 1, 0], bool)
        >>> kinds = np.array([[1, 0], [0, 1], [0, 1], [0, 0], [0, 0]], bool)
        >>> detection_by_kind(flagged, kinds, ["spike", "dropout"])["dropout"]
        {'precision': 0.5, 'recall': 0.5, 'n': 2, 'detected': 1}
    """
    names = tuple(names)
    counts = _KindCounts(names, np.zeros(len(names), np.int64), np.zeros(len(names), np.int64))
    counts.add(np.asarray(flagged, bool), np.asarray(kinds, bool).reshape(-1, len(names)))
    return counts.report()


def _iso(timestamp: np.datetime64) -> str:
    return str(np.datetime_as_string(timestamp, timezone="UTC"))


def analyze(
    source: BatchSource,
    *,
    labor: LaborArray,
    pipeline: PipelineSpec,
    schema: Schema,
    n_entities: int = 1,
    entity_names: tuple[str, ...] | None = None,
    period_s: float = 1.0,
    progress: Callable[[Iterable[Batch], str], Iterator[Batch]] | None = None,
) -> dict[str, Any]:
    """Analyze a stream of metric batches on ``labor``'s devices.

    Args:
        source: a function returning a fresh iterable of batches (called once when pass 1's
            blocks fit in ``pipeline.keep_mib``, else twice: two passes).
        labor: the :class:`LaborArray` that runs every reduction and map.
        pipeline: the :class:`PipelineSpec`.
        schema: the metrics, in column order; values are validated against it.
        n_entities: rows are time-major with ``n_entities`` rows per time step (1 for one
            series).
        entity_names: the entities' names, in code order (default: the batches' own, else
            ``entity-0``, ...).
        period_s: seconds between time steps, so periods and windows come out in time units.
        progress: optional ``wrap(items, label)`` of each pass's batches (a progress bar
            labelled ``pass 1/2: ...``; it reads each item's ``n_rows``). When pass 2 reuses
            pass 1's blocks, it wraps those.

    Returns:
        A dict of results: ``patterns``, ``spectrum``, ``drift``, ``anomalies``, ``curves``
        (for plots), ``throughput`` and ``digests`` (sha256 of every numeric result).
    """
    n_entities = check_int(n_entities, "n_entities")
    period_s = check_number(period_s, "period_s", positive=True)
    metrics = len(schema.names)
    n_components = min(3, metrics) if pipeline.n_components is None else pipeline.n_components
    if n_components > metrics:
        raise ConfigError(
            f"`pipeline.n_components` must be an int in [1, {metrics}] (the number of "
            f"metrics), got {n_components}"
        )
    check_fits_memory(
        24.0 * pipeline.batch_size * max(metrics, 1),
        "pipeline.batch_size",
        pipeline.batch_size,
        f"the working copies of a batch of {metrics} metrics",
    )
    engine = LaborIntelligenceEngine(dimensions=metrics, schema=schema)
    wrap = progress or (lambda batches, label: iter(batches))
    detector = pipeline.detector
    started = time.perf_counter()
    anomaly_names, batch_entity_names = _first_batch_names(source)
    entity_names = entity_names or batch_entity_names
    kind_names = anomaly_names[1:] if anomaly_names else ()

    def blocks(label: str) -> Iterator[tuple[StepBlock, int]]:
        return step_blocks(
            wrap(source(), label), lambda b: _validated(engine, b), n_entities, len(kind_names)
        )

    # Pass 1: moments, per-entity moments against the fleet center, per-step fleet means.
    shift = x_shift = c_shift = None
    count, total, cross = 0.0, None, None
    entity_sums: dict[str, np.ndarray] | None = None
    series_parts: list[np.ndarray] = []
    n_rows = masked_rows = n_steps = n_valid = 0
    first_time = None
    pass_seconds: dict[str, float] = {}
    # Pass 1's blocks and fleet centers, for pass 2 (None: they outgrew pipeline.keep_mib).
    reused: collections.deque[tuple[StepBlock, np.ndarray | None]] | None = (
        collections.deque() if pipeline.keep_mib else None
    )
    reused_bytes = 0

    def keep(block: StepBlock, center: np.ndarray | None) -> None:
        nonlocal reused, reused_bytes
        if reused is not None:
            reused_bytes += block.nbytes + (0 if center is None else center.nbytes)
            if reused_bytes > pipeline.keep_mib * 2**20:
                reused = None
            else:
                reused.append((block, center))

    pass_started = time.perf_counter()
    for block, masked in blocks("pass 1/2: moments, baselines, spectra"):
        masked_rows += masked
        n_steps = block.first_step + block.n_steps
        if first_time is None and block.timestamps is not None:
            first_time = block.timestamps[0]
        kept = block.values[block.valid]
        n_valid += kept.shape[0]
        present = block.valid.sum(axis=1)
        series_parts.append(
            block.values.astype(np.float64).sum(axis=1) / np.maximum(present, 1)[:, None]
        )
        if kept.shape[0] == 0:
            keep(block, None)
            continue
        if shift is None:
            shift = kept.mean(axis=0, dtype=np.float64).astype(np.float32)
            x_shift = np.tile(shift, (n_entities, 1))
            seen = block.valid.any(axis=0)
            x_shift[seen] = (
                block.values.sum(axis=0, dtype=np.float64)[seen]
                / block.valid.sum(axis=0)[seen][:, None]
            ).astype(np.float32)
            c_shift = np.zeros_like(shift)
            spread = np.sqrt(
                np.maximum(
                    np.square(block.values - x_shift).sum(axis=0, where=block.valid[..., None])
                    / np.maximum(block.valid.sum(axis=0), 1)[:, None],
                    0,
                )
            ).astype(np.float32)
            spread = np.where(spread > 0, spread, np.float32(1))
            units = fleet_units(x_shift, spread) if n_entities >= MIN_FLEET else None
        partial = jax.device_get(labor.reduce(_moments, kept, shift))
        count += float(partial["count"])
        total = partial["sum"].astype(np.float64) + (0 if total is None else total)
        cross = partial["cross"].astype(np.float64) + (0 if cross is None else cross)
        center = fleet_center(labor, block, units)
        keep(block, center)
        sums = entity_moments(labor, block, center, x_shift, c_shift)
        entity_sums = (
            sums if entity_sums is None else {k: entity_sums[k] + v for k, v in sums.items()}
        )
        n_rows += kept.shape[0]
    if n_rows == 0 or shift is None or entity_sums is None:
        raise EmptyInputError("the data source yielded no rows; nothing to analyze")
    pass_seconds["moments, baselines, spectra"] = time.perf_counter() - pass_started
    if n_rows < 2:
        raise ShapeError(f"the analysis needs at least 2 rows, got {n_rows}")
    mean = shift.astype(np.float64) + total / count
    covariance = (cross - np.outer(total, total) / count) / (count - 1)
    baselines = Baselines.from_moments(entity_sums, x_shift, c_shift)

    # Patterns of the correlation matrix (scale-free) and PCA of the covariance.
    std = np.sqrt(np.diag(covariance))
    safe_std = np.where(std > 0, std, 1.0)
    correlation = covariance / np.outer(safe_std, safe_std)
    patterns = jax.device_get(algebra.svd_patterns(np.float32(correlation)))
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance)[::-1], 0, None)
    explained = eigenvalues / eigenvalues.sum()

    # Spectra of the per-step fleet means (Welch), peaks as periods in time units.
    series = np.concatenate(series_parts)
    del series_parts
    spectrum = _spectrum(series, pipeline, period_s, schema.names, labor)

    # Drift windows: the first and last parts of the time span.
    windows = _drift_windows(pipeline.drift, n_steps, n_entities, metrics, period_s)

    # Pass 2: per-entity z-scores and residuals (ALDA map), rolling baseline + CUSUM (scan).
    alpha = 1.0 / span_steps(detector.baseline, n_steps, period_s)
    state = None
    threshold = pipeline.anomaly_threshold
    counts = _KindCounts(
        kind_names, np.zeros(len(kind_names), np.int64), np.zeros(len(kind_names), np.int64)
    )
    scores: list[np.ndarray] = []
    points = _ScorePoints(pipeline.score_points, n_valid)
    quality_counts = np.zeros(3, np.int64)  # flagged, truly anomalous, both
    labelled = False
    top: list[tuple[float, int, int, int, float, Any]] = []
    reference_rows: list[np.ndarray] = []
    current_rows: list[np.ndarray] = []
    pass_started = time.perf_counter()
    label = "pass 2/2: anomaly scores, drift"
    if reused is None:
        second = ((block, None) for block, _ in blocks(label))
    else:
        second = _drain(reused, lambda blocks: wrap(blocks, f"{label} (rows kept in memory)"))
    for block, center in second:
        steps, entities, _ = block.values.shape
        if center is None:
            center = fleet_center(labor, block, units)
        rows = (
            block.values.reshape(-1, metrics),
            np.repeat(center, entities, axis=0),
            np.tile(np.arange(entities, dtype=np.int32), steps),
        )
        z = standardized(labor, rows, baselines).reshape(steps, entities, 2, metrics)
        u, change, state = algebra.track_changes(
            z[:, :, 1],
            block.valid[:, :, None],
            state,
            alpha=alpha,
            clip=detector.clip,
            drift=detector.cusum_drift,
            threshold=detector.cusum_threshold,
        )
        score, metric, share = row_scores(z[:, :, 0], np.asarray(u), np.asarray(change), threshold)
        valid = block.valid
        flagged = valid & (score >= threshold)
        scores.append(score[valid])
        row_flagged = flagged[valid]
        row_truth = None
        if block.kinds is not None:
            labelled = True
            counts.add(row_flagged, block.kinds[valid])
            row_truth = block.kinds[valid].any(axis=1)
            quality_counts += (row_flagged.sum(), row_truth.sum(), (row_flagged & row_truth).sum())
        else:
            quality_counts[0] += row_flagged.sum()
        row_steps = np.broadcast_to((block.first_step + np.arange(steps))[:, None], valid.shape)
        points.add(score[valid], row_flagged, row_steps[valid], row_truth)
        for s, e in zip(*np.nonzero(flagged), strict=True):
            top.append(
                (
                    -float(score[s, e]),
                    int(block.row[s, e]),
                    int(e),
                    int(metric[s, e]),
                    float(share[s, e]),
                    None if block.timestamps is None else block.timestamps[s],
                )
            )
        top = sorted(top)[: pipeline.top_anomalies]
        reference_rows.append(_window_rows(block, windows["reference"]))
        current_rows.append(_window_rows(block, windows["current"]))
    pass_seconds["anomaly scores, drift"] = time.perf_counter() - pass_started
    pass_two_read = reused is None
    score = np.concatenate(scores)
    del scores

    reference, current = np.concatenate(reference_rows), np.concatenate(current_rows)
    for which, rows in (("reference", reference), ("current", current)):
        windows[which]["rows"] = int(rows.shape[0])
        if rows.shape[0] < pipeline.drift.bins:
            raise ConfigError(
                f"`pipeline.drift.{which}` must cover at least pipeline.drift.bins="
                f"{pipeline.drift.bins} valid rows, got {rows.shape[0]} rows in "
                f"{windows[which]['steps']} steps ({getattr(pipeline.drift, which)!r})"
            )
    drift = {
        "ks": np.asarray(algebra.ks_statistic(reference, current), np.float64),
        "wasserstein": np.asarray(algebra.wasserstein_1d(reference, current), np.float64),
        "psi": np.asarray(algebra.psi(reference, current, bins=pipeline.drift.bins), np.float64),
    }
    if first_time is not None:
        for part in windows.values():
            part["start"] = _iso(
                first_time + np.timedelta64(int(part["start_step"] * period_s), "s")
            )
            part["stop"] = _iso(first_time + np.timedelta64(int(part["stop_step"] * period_s), "s"))

    names = entity_names or (
        tuple(f"entity-{e}" for e in range(n_entities)) if n_entities > 1 else ("all",)
    )
    anomalies: dict[str, Any] = {
        "method": "per-entity z-score, residual against the fleet and a rolling baseline, CUSUM",
        "threshold": threshold,
        "n_flagged": int(quality_counts[0]),
        "top": [
            {
                "time": _iso(stamp) if stamp is not None else row,
                "row": row,
                "entity": names[entity] if entity < len(names) else str(entity),
                "metric": schema.names[metric],
                "score": -negative,
                "contribution": share,
            }
            for negative, row, entity, metric, share, stamp in top
        ],
    }
    if labelled:
        quality = quality_from_counts(score.shape[0], *map(int, quality_counts))
        anomalies.update(
            {key: quality[key] for key in ("n_true_anomalies", "precision", "recall", "f1")}
        )
        anomalies["by_kind"] = counts.report()
    elapsed = time.perf_counter() - started

    results = {
        "n_rows": n_rows,
        "masked_rows": masked_rows,
        "n_steps": n_steps,
        "n_entities": n_entities,
        "metrics": list(schema.names),
        "mean": mean,
        "covariance": covariance,
        "patterns": {
            "rank": int(patterns["rank"]),
            "condition_number": float(patterns["condition_number"]),
            "effective_rank": float(patterns["effective_rank"]),
            "singular_values": np.asarray(patterns["singular_values"], np.float64),
            "explained_variance_ratio": explained[:n_components],
        },
        "spectrum": spectrum["peaks"],
        "drift": {
            "windows": {
                which: {k: v for k, v in part.items() if not k.endswith("_step")}
                | {"first_step": part["start_step"], "stop_step": part["stop_step"]}
                for which, part in windows.items()
            },
            **{
                name: dict(zip(schema.names, map(float, value), strict=True))
                for name, value in drift.items()
            },
        },
        "baselines": {
            name: {
                metric: {
                    "mean": float(baselines.mean[e, m]),
                    "scale": float(baselines.scale[e, m]),
                }
                for m, metric in enumerate(schema.names)
            }
            for e, name in enumerate(names[:n_entities])
        }
        if n_entities <= 64
        else {"n_entities": n_entities},
        "anomalies": anomalies,
        "throughput": {
            "seconds": elapsed,
            "rows_per_second": 2 * n_rows / elapsed,
            "cores": os.cpu_count(),
            "passes": {  # the reading and computing of each pass over the rows
                name: {"seconds": seconds, "rows_per_second": n_rows / seconds}
                for name, seconds in pass_seconds.items()
            },
            "pass_2_read_the_source": pass_two_read,
        },
    }
    numeric = {
        "mean": mean,
        "covariance": covariance,
        "singular_values": results["patterns"]["singular_values"],
        "explained_variance_ratio": results["patterns"]["explained_variance_ratio"],
        "spectrum_power": spectrum["power"],
        "drift": drift,
        "entity_baselines": np.stack(
            [
                baselines.mean,
                baselines.scale,
                baselines.slope,
                baselines.residual_scale,
            ]
        ),
        "anomaly_scores": score,
    }
    results["digests"] = {name: digest(value) for name, value in numeric.items()}
    results["digest"] = digest(numeric)
    results["curves"] = {
        "frequencies_per_hour": spectrum["frequencies"],
        "power": spectrum["power"],
        **points.curves(first_time, period_s),
        "singular_values": results["patterns"]["singular_values"],
    }
    return results


def _drain(
    kept: collections.deque[tuple[StepBlock, np.ndarray | None]],
    wrap: Callable[[Iterable[StepBlock]], Iterator[StepBlock]],
) -> Iterator[tuple[StepBlock, np.ndarray | None]]:
    """Kept ``(block, center)`` pairs, in order, each let go of once it is taken; ``wrap``
    sees the blocks (a progress bar)."""
    centers: collections.deque[np.ndarray | None] = collections.deque()

    def blocks() -> Iterator[StepBlock]:
        while kept:
            block, center = kept.popleft()
            centers.append(center)
            yield block

    for block in wrap(blocks()):
        yield block, centers.popleft()


def _drift_windows(
    drift: DriftSpec, n_steps: int, n_entities: int, metrics: int, period_s: float
) -> dict[str, dict[str, Any]]:
    """The reference (first) and current (last) windows in steps; overlap is an error."""
    reference = span_steps(drift.reference, n_steps, period_s)
    current = span_steps(drift.current, n_steps, period_s)
    if reference + current > n_steps:
        raise ConfigError(
            f"`pipeline.drift.reference` ({drift.reference!r}: the first {reference} steps) "
            f"and `pipeline.drift.current` ({drift.current!r}: the last {current} steps) must "
            f"not overlap, got windows of {reference + current} steps in a span of {n_steps} steps"
        )
    windows = {
        "reference": {"start_step": 0, "stop_step": reference, "steps": reference},
        "current": {"start_step": n_steps - current, "stop_step": n_steps, "steps": current},
    }
    for name, part in windows.items():
        rows = part["steps"] * n_entities
        part["every"] = 1 if drift.max_rows is None else max(1, -(-rows // drift.max_rows))
        check_fits_memory(
            40.0 * -(-rows // part["every"]) * metrics,
            f"pipeline.drift.{name}",
            getattr(drift, name),
            f"the drift statistics of the {name} window (set pipeline.drift.max_rows)",
        )
    return windows


def _window_rows(block: Any, part: dict[str, Any]) -> np.ndarray:
    """The valid rows of ``block`` in the window ``part``: with ``k = part['every']``,
    entity ``e``'s rows at the steps ``s`` (counted from the window's first) where
    ``(s + e) % k == 0``, so every entity keeps every ``k``-th step."""
    steps, entities, metrics = block.values.shape
    step = block.first_step + np.arange(steps)
    inside = (step >= part["start_step"]) & (step < part["stop_step"])
    if not inside.any():
        return np.empty((0, metrics), block.values.dtype)
    keep = block.valid[inside]
    if part["every"] > 1:
        # (step + entity) % k: every entity every k-th step, the entities taking turns
        turn = (step[inside, None] - part["start_step"]) + np.arange(entities)
        keep = keep & (turn % part["every"] == 0)
    return block.values[inside][keep]


class _ScorePoints:
    """The points of the score scatter, gathered batch by batch: every flagged row and about
    ``limit`` others (every ``stride``-th of the ``n_valid`` rows), so memory does not grow
    with the rows."""

    def __init__(self, limit: int, n_valid: int) -> None:
        self.stride = max(1, -(-n_valid // limit))
        self.seen = 0
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self, score: np.ndarray, flagged: np.ndarray, steps: np.ndarray, truth: np.ndarray | None
    ) -> None:
        index = self.seen + np.arange(score.shape[0])
        self.seen += score.shape[0]
        keep = flagged | (index % self.stride == 0)
        self.parts.append(
            (score[keep], flagged[keep], steps[keep], None if truth is None else truth[keep])
        )

    def curves(self, first_time: np.datetime64 | None, period_s: float) -> dict[str, Any]:
        """``score_time``, ``score``, ``score_flagged`` and ``truth`` (labelled data)."""
        score, flagged, steps, truth = (
            None if not self.parts or self.parts[0][k] is None
            else np.concatenate([part[k] for part in self.parts])
            for k in range(4)
        )  # fmt: skip
        if score is None:
            score, flagged, steps = np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, int)
        if first_time is not None:
            times = first_time + (steps * period_s).astype("timedelta64[s]")
        else:
            times = steps
        return {"score_time": times, "score": score, "score_flagged": flagged, "truth": truth}


def _spectrum(
    series: np.ndarray,
    pipeline: PipelineSpec,
    period_s: float,
    names: tuple[str, ...],
    labor: LaborArray,
) -> dict[str, Any]:
    """Welch spectra of the step series: Hann segments with 50% overlap, averaged through ALDA.

    Each segment is a row of an ALDA reduction, so the average has the same bits on every
    mesh (a plain ``welch`` on one device changed bits with the process's device count).
    Peaks are local maxima away from DC with periods of at most a third of the series.
    """
    n_steps = series.shape[0]
    if n_steps < 4:
        return {"peaks": {}, "frequencies": np.zeros(0), "power": np.zeros((0, len(names)))}
    nperseg = min(pipeline.segment_steps, n_steps)
    step = max(1, nperseg // 2)
    starts = np.arange(0, n_steps - nperseg + 1, step)
    segments = np.stack([series[start : start + nperseg] for start in starts]).astype(np.float32)
    fs_per_hour = 3600.0 / period_s
    frequencies = np.fft.rfftfreq(nperseg, d=1 / fs_per_hour)
    total = labor.reduce(_periodogram_sum, segments, np.float32(fs_per_hour))
    power = np.asarray(jax.device_get(total), np.float64) / len(starts)
    # Bin i has a period of nperseg / i steps; keep periods <= n_steps / 3, and never DC.
    lowest = max(2, -(-3 * nperseg // n_steps))
    peaks = {}
    for column, name in enumerate(names):
        order = _local_maxima(power[:, column], lowest)[: pipeline.top_peaks]
        peaks[name] = [
            {
                "period": format_period(nperseg * period_s / i),
                "period_s": float(nperseg * period_s / i),
                "period_hours": float(1 / frequencies[i]),
                "power": float(power[i, column]),
            }
            for i in order
        ]
    return {"peaks": peaks, "frequencies": frequencies, "power": power}


def _local_maxima(power: np.ndarray, lowest: int = 1) -> np.ndarray:
    """Indices ``>= lowest`` of the spectrum's local maxima, strongest first (ties: lower index)."""
    inner = power[1:-1]
    is_peak = (inner > power[:-2]) & (inner >= power[2:])
    candidates = np.flatnonzero(is_peak) + 1
    candidates = candidates[candidates >= lowest]
    return candidates[np.argsort(-power[candidates], kind="stable")]


def _periodogram_sum(segments: jax.Array, mask: jax.Array, fs: jax.Array) -> jax.Array:
    """Sum of the Hann-windowed, mean-removed periodograms of a chunk's segments."""
    power = jax.vmap(lambda segment: algebra.periodogram(segment, window="hann")[1])(segments)
    return jnp.sum(jnp.where(mask[:, None, None], power / fs, 0), axis=0)


@dataclasses.dataclass(frozen=True)
class AnalyzeSettings:
    """Everything the main job needs: mesh, scheduler, data, pipeline, and where to write."""

    mesh: MeshSpec
    data: DataSpec
    pipeline: PipelineSpec
    output_dir: Path
    alda: SchedulerSpec = dataclasses.field(default_factory=SchedulerSpec)
    progress: bool = True
    compilation_cache_dir: str | None = None
    resolved_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def run_analysis(settings: AnalyzeSettings) -> dict[str, Any]:
    """The main job: set up devices, analyze the data, write the report and plots.

    Must run before anything else in the process computes with JAX, because the simulated
    CPU device count and the multi-process runtime are fixed when JAX starts its backend.
    Process 0 writes ``report.json``, ``config.json``, ``scree.png``, ``spectra.png`` and
    ``anomaly_scores.png`` to ``settings.output_dir``.
    """
    start_backend(settings.mesh, compilation_cache_dir=settings.compilation_cache_dir)
    labor = LaborArray(settings.mesh, **settings.alda.options())
    opened = open_source(settings.data, batch_size=settings.pipeline.batch_size)
    results = analyze(
        opened.batches,
        labor=labor,
        pipeline=settings.pipeline,
        schema=opened.schema,
        n_entities=opened.n_entities,
        entity_names=opened.entity_names,
        period_s=opened.period_s,
        progress=_row_progress(opened.n_records) if settings.progress else None,
    )
    results["source"] = opened.description
    results["mesh"] = mesh_summary(settings.mesh, settings.alda.chunk_size, devices="names")
    if jax.process_index() == 0:
        results["outputs"] = _write(results, Path(settings.output_dir), settings.resolved_config)
    return results


def _row_progress(n_records: int | None) -> Callable[[Iterable[Batch], str], Iterator[Batch]]:
    """A wrapper of a pass's batches that shows a bar, labelled with the pass, counting rows."""

    def wrap(batches: Iterable[Batch], label: str) -> Iterator[Batch]:
        with progress_bar(n_records, unit="rows", label=label) as bar:
            for batch in batches:
                yield batch
                bar.update(batch.n_rows)

    return wrap


def _write(results: Mapping[str, Any], output_dir: Path, config: Mapping[str, Any]) -> dict:
    """Write ``report.json`` (without the curves and the full moments), ``config.json`` and
    the plots; return their paths."""
    report = {
        key: value for key, value in results.items() if key not in ("curves", "mean", "covariance")
    }
    paths = {
        "report": write_json(output_dir / "report.json", report),
        "config": write_json(output_dir / "config.json", config),
    }
    curves = results["curves"]
    paths["scree"] = plot_scree(curves["singular_values"], output_dir / "scree.png")
    if len(curves["frequencies_per_hour"]) > 1:
        paths["spectra"] = plot_spectra(
            curves["frequencies_per_hour"],
            curves["power"],
            results["metrics"],
            output_dir / "spectra.png",
        )
    paths["anomalies"] = plot_score_points(
        curves["score_time"],
        curves["score"],
        curves["score_flagged"],
        results["anomalies"]["threshold"],
        output_dir / "anomaly_scores.png",
        ylabel="anomaly score (largest z / residual)",
        truth=curves["truth"],
    )
    return {name: str(path) for name, path in paths.items()}
