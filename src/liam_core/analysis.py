"""The main job's logic: stream metric batches through ALDA and report their patterns.

:func:`analyze` takes typed arguments only (Hydra stays in ``config.py`` and
``experiments/``). It makes two passes over a re-iterable source of :class:`Batch` es, so
data larger than memory streams through in batches:

1. ALDA ``reduce`` of shifted moments (count, sum, cross-products) gives means and the
   covariance; per-step team means are kept for spectra, and a reference window (the first
   rows) and a current window (the last rows) for drift.
2. ALDA ``map`` scores every row by its Mahalanobis distance under that covariance, so the
   scores of all rows never live on a device at once.

Every reduction goes through the canonical ALDA tree and batch partials are added on the
host in float64 in batch order, so every figure is the same bytes on any mesh.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import algebra
from ._checks import check_int, check_number
from ._digest import digest
from ._errors import EmptyInputError, ShapeError
from ._evidence import (
    detection_quality,
    downsample_max,
    mesh_summary,
    plot_scores,
    plot_scree,
    plot_spectra,
    progress_bar,
    start_backend,
    write_json,
)
from .alda import LaborArray, SchedulerSpec
from .data import Batch, DataSpec, open_source
from .engine import LaborIntelligenceEngine, Schema
from .mesh import MeshSpec

BatchSource = Callable[[], Iterable[Batch]]


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """Settings of the analysis pipeline (``conf/pipeline/*.yaml``).

    Args:
        batch_size: rows per streamed batch.
        window_rows: rows in each of the drift reference (first) and current (last) windows.
        n_components: principal components to report.
        segment_steps: Welch segment length, in time steps, for the spectra.
        top_peaks: spectral peaks to report per metric.
        anomaly_threshold: a row whose Mahalanobis distance exceeds it is flagged.
        drift_bins: quantile bins of the population stability index.
        score_points: points of the downsampled anomaly-score curve kept for plots.
    """

    batch_size: int = 131_072
    window_rows: int = 65_536
    n_components: int = 3
    segment_steps: int = 2688
    top_peaks: int = 3
    anomaly_threshold: float = 6.0
    drift_bins: int = 10
    score_points: int = 2000

    def __post_init__(self) -> None:
        for name in (
            "batch_size",
            "window_rows",
            "n_components",
            "segment_steps",
            "top_peaks",
            "drift_bins",
            "score_points",
        ):
            check_int(getattr(self, name), f"pipeline.{name}")
        check_number(self.anomaly_threshold, "pipeline.anomaly_threshold", positive=True)


def _moments(chunk: jax.Array, mask: jax.Array, shift: jax.Array) -> dict[str, jax.Array]:
    """Per-chunk count, shifted sum and shifted cross-products (padding masked out)."""
    centered = jnp.where(mask[:, None], chunk - shift, 0)
    return {
        "count": jnp.sum(mask.astype(jnp.float32)),
        "sum": jnp.sum(centered, axis=0),
        "cross": centered.T @ centered,
    }


@dataclasses.dataclass
class _Windows:
    """The first and the last ``rows`` rows of a stream (bounded memory)."""

    rows: int
    head: list[np.ndarray] = dataclasses.field(default_factory=list)
    tail: list[np.ndarray] = dataclasses.field(default_factory=list)
    head_rows: int = 0
    tail_rows: int = 0

    def add(self, values: np.ndarray) -> None:
        if self.head_rows < self.rows:
            taken = values[: self.rows - self.head_rows]
            self.head.append(taken)
            self.head_rows += taken.shape[0]
        self.tail.append(values[-self.rows :])
        self.tail_rows += min(values.shape[0], self.rows)
        while self.tail_rows - self.tail[0].shape[0] >= self.rows:
            self.tail_rows -= self.tail.pop(0).shape[0]

    def reference(self) -> np.ndarray:
        return np.concatenate(self.head)

    def current(self) -> np.ndarray:
        return np.concatenate(self.tail)[-self.rows :]


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
    return np.asarray(engine.ingest_columns(columns, source=batch.source or "batch")), keep


def analyze(
    source: BatchSource,
    *,
    labor: LaborArray,
    pipeline: PipelineSpec,
    schema: Schema,
    n_teams: int = 1,
    period_s: float = 1.0,
    progress: Callable[[Iterable[Batch]], Iterator[Batch]] | None = None,
) -> dict[str, Any]:
    """Analyze a stream of metric batches on ``labor``'s devices.

    Args:
        source: a function returning a fresh iterable of batches (called twice: two passes).
        labor: the :class:`LaborArray` that runs every reduction and map.
        pipeline: the :class:`PipelineSpec`.
        schema: the metrics, in column order; values are validated against it.
        n_teams: rows are time-major with ``n_teams`` rows per time step (1 for one series).
        period_s: seconds between time steps, so spectral peaks come out in hours.
        progress: optional wrapper of the batch iterable (a progress bar).

    Returns:
        A dict of results: ``patterns``, ``spectrum``, ``drift``, ``anomalies``, ``curves``
        (for plots), ``throughput`` and ``digests`` (sha256 of every numeric result).
    """
    engine = LaborIntelligenceEngine(dimensions=len(schema.names), schema=schema)
    wrap = progress or (lambda batches: iter(batches))
    started = time.perf_counter()

    # Pass 1: moments through ALDA, team means per step, drift windows.
    shift = None
    count, total, cross = 0.0, None, None
    step_parts: list[tuple[int, np.ndarray, np.ndarray]] = []
    windows = _Windows(pipeline.window_rows)
    n_rows = 0
    masked_rows = 0
    for batch in wrap(source()):
        values, keep = _validated(engine, batch)
        masked_rows += int((~keep).sum())
        if values.shape[0] == 0:
            continue
        if shift is None:
            shift = values.mean(axis=0, dtype=np.float64).astype(np.float32)
        partial = jax.device_get(labor.reduce(_moments, values, shift))
        count += float(partial["count"])
        total = partial["sum"].astype(np.float64) + (0 if total is None else total)
        cross = partial["cross"].astype(np.float64) + (0 if cross is None else cross)
        rows = batch.start + np.flatnonzero(keep)
        step_parts.append(_sum_per_step(values, rows, n_teams))
        windows.add(values)
        n_rows += values.shape[0]
    if n_rows == 0 or shift is None:
        raise EmptyInputError("the data source yielded no rows; nothing to analyze")
    if n_rows < 2:
        raise ShapeError(f"the analysis needs at least 2 rows, got {n_rows}")
    mean = shift.astype(np.float64) + total / count
    covariance = (cross - np.outer(total, total) / count) / (count - 1)

    # Patterns of the correlation matrix (scale-free) and PCA of the covariance.
    std = np.sqrt(np.diag(covariance))
    safe_std = np.where(std > 0, std, 1.0)
    correlation = covariance / np.outer(safe_std, safe_std)
    patterns = jax.device_get(algebra.svd_patterns(np.float32(correlation)))
    eigenvalues = np.clip(np.linalg.eigvalsh(covariance)[::-1], 0, None)
    explained = eigenvalues / eigenvalues.sum()

    # Spectra of the per-step team means (Welch), peaks as periods in hours.
    series = _series_from_parts(step_parts, len(schema.names))
    del step_parts
    spectrum = _spectrum(series, pipeline, period_s, schema.names, labor)

    # Drift between the reference (first) and current (last) windows.
    reference, current = windows.reference(), windows.current()
    drift = {
        "ks": np.asarray(algebra.ks_statistic(reference, current), np.float64),
        "wasserstein": np.asarray(algebra.wasserstein_1d(reference, current), np.float64),
        "psi": np.asarray(algebra.psi(reference, current, bins=pipeline.drift_bins), np.float64),
    }

    # Pass 2: Mahalanobis distance of every row through ALDA map.
    whitening = np.linalg.pinv(np.linalg.cholesky(covariance + 1e-9 * np.eye(len(std))).T)
    center, matrix = jnp.float32(mean), jnp.float32(whitening)

    def mahalanobis(rows: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.sum(jnp.square((rows - center) @ matrix), axis=1))

    scores, truth = [], []
    for batch in wrap(source()):
        values, keep = _validated(engine, batch)
        if values.shape[0] == 0:
            continue
        scores.append(labor.map(mahalanobis, values))
        if batch.anomaly is not None:
            truth.append((batch.anomaly[keep] != 0).any(axis=1))
    score = np.concatenate(scores)
    flagged = score > pipeline.anomaly_threshold
    anomalies = {"n_flagged": int(flagged.sum()), "threshold": pipeline.anomaly_threshold}
    if truth:
        quality = detection_quality(flagged, np.concatenate(truth))
        anomalies.update(
            {key: quality[key] for key in ("n_true_anomalies", "precision", "recall", "f1")}
        )
    elapsed = time.perf_counter() - started

    results = {
        "n_rows": n_rows,
        "masked_rows": masked_rows,
        "metrics": list(schema.names),
        "mean": mean,
        "covariance": covariance,
        "patterns": {
            "rank": int(patterns["rank"]),
            "condition_number": float(patterns["condition_number"]),
            "effective_rank": float(patterns["effective_rank"]),
            "singular_values": np.asarray(patterns["singular_values"], np.float64),
            "explained_variance_ratio": explained[: pipeline.n_components],
        },
        "spectrum": spectrum["peaks"],
        "drift": {
            name: dict(zip(schema.names, map(float, value), strict=True))
            for name, value in drift.items()
        },
        "anomalies": anomalies,
        "throughput": {"seconds": elapsed, "rows_per_second": 2 * n_rows / elapsed},
    }
    numeric = {
        "mean": mean,
        "covariance": covariance,
        "singular_values": results["patterns"]["singular_values"],
        "explained_variance_ratio": results["patterns"]["explained_variance_ratio"],
        "spectrum_power": spectrum["power"],
        "drift": drift,
        "anomaly_scores": score,
    }
    results["digests"] = {name: digest(value) for name, value in numeric.items()}
    results["digest"] = digest(numeric)
    results["curves"] = {
        "frequencies_per_hour": spectrum["frequencies"],
        "power": spectrum["power"],
        "score": downsample_max(score, pipeline.score_points),
        "truth": downsample_max(np.concatenate(truth), pipeline.score_points) if truth else None,
        "singular_values": results["patterns"]["singular_values"],
    }
    return results


def _sum_per_step(
    values: np.ndarray, rows: np.ndarray, n_teams: int
) -> tuple[int, np.ndarray, np.ndarray]:
    """Sums and row counts of a batch per time step (row ``i`` is at step ``i // n_teams``)."""
    steps = rows // n_teams
    first = int(steps[0])
    local = steps - first
    sums = np.stack(
        [np.bincount(local, weights=column) for column in values.T.astype(np.float64)], axis=1
    )
    return first, sums, np.bincount(local).astype(np.float64)


def _series_from_parts(
    parts: list[tuple[int, np.ndarray, np.ndarray]], n_metrics: int
) -> np.ndarray:
    """The per-step mean series from per-batch step sums (steps may straddle batches)."""
    n_steps = max(first + sums.shape[0] for first, sums, _ in parts)
    sums, counts = np.zeros((n_steps, n_metrics)), np.zeros(n_steps)
    for first, part_sums, part_counts in parts:
        sums[first : first + part_sums.shape[0]] += part_sums
        counts[first : first + part_counts.shape[0]] += part_counts
    return sums / np.maximum(counts, 1)[:, None]


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
    peaks = {}
    for column, name in enumerate(names):
        order = _local_maxima(power[:, column])[: pipeline.top_peaks]
        peaks[name] = [
            {"period_hours": float(1 / frequencies[i]), "power": float(power[i, column])}
            for i in order
        ]
    return {"peaks": peaks, "frequencies": frequencies, "power": power}


def _local_maxima(power: np.ndarray) -> np.ndarray:
    """Indices of the spectrum's local maxima above DC, strongest first (ties: lower index)."""
    inner = power[1:-1]
    is_peak = (inner > power[:-2]) & (inner >= power[2:])
    candidates = np.flatnonzero(is_peak) + 1
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
        n_teams=opened.n_teams,
        period_s=opened.period_s,
        progress=_row_progress(opened.n_records) if settings.progress else None,
    )
    results["source"] = opened.description
    results["mesh"] = mesh_summary(settings.mesh, settings.alda.chunk_size, devices="names")
    if jax.process_index() == 0:
        results["outputs"] = _write(results, Path(settings.output_dir), settings.resolved_config)
    return results


def _row_progress(n_records: int | None) -> Callable[[Iterable[Batch]], Iterator[Batch]]:
    """A wrapper of an iterable of batches that shows a bar counting their rows."""

    def wrap(batches: Iterable[Batch]) -> Iterator[Batch]:
        with progress_bar(n_records, unit="rows") as bar:
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
    paths["anomalies"] = plot_scores(
        curves["score"],
        results["anomalies"]["threshold"],
        output_dir / "anomaly_scores.png",
        ylabel="Mahalanobis distance",
        truth=curves["truth"],
    )
    return {name: str(path) for name, path in paths.items()}
