"""What every job does around its computation: start the backend, then leave evidence.

Both jobs (:func:`liam_core.analysis.run_analysis` and :func:`liam_core.train.run_training`)
use these, so a run folder reads the same whichever job wrote it:

* :func:`start_backend`: the platform, the simulated CPU devices, the persistent
  compilation cache and, for a multi-process mesh, JAX's distributed runtime;
* :func:`write_json` (on :func:`write_atomically` and :func:`to_jsonable`): ``report.json``
  and ``config.json``. Every file goes to a temporary name and is renamed, so a crash never
  leaves half a file; nothing is pickled;
* :func:`mesh_summary`: the ``mesh`` part of a report;
* :func:`detection_quality`: precision, recall and F1 of flagged rows against injected truth;
* :func:`downsample_max`: a long curve cut to a few points for a plot, spikes kept;
* :func:`plot_score_points`: the analysis's anomaly scores as points over time;
* :func:`progress_bar`: a tqdm bar on stderr;
* the plots, PNG, drawn on ``matplotlib.figure.Figure`` only: no pyplot, no global backend.

It sits in the layer just above ``mesh`` (it imports ``_checks``, ``_errors`` and ``mesh``),
so everything from ``alda`` up may use it.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jax
import numpy as np

from ._checks import check_int, check_ndim
from ._errors import ShapeError
from .mesh import MeshSpec, configure_backend, distributed

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from tqdm.auto import tqdm

# --------------------------------------------------------------------------- set-up


def start_backend(mesh: MeshSpec, *, compilation_cache_dir: str | os.PathLike[str] | None) -> None:
    """Configure JAX for ``mesh``: platform, CPU devices, compilation cache, processes.

    Must run before anything in the process computes with JAX: the simulated CPU device
    count and the multi-process runtime are fixed when JAX starts its backend.
    ``compilation_cache_dir`` (``None``: off) turns on JAX's persistent compilation cache
    for every program, however fast it compiled (JAX's default threshold of 1 s would skip
    every program of these jobs on a CPU).
    """
    configure_backend(mesh)
    if compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(compilation_cache_dir))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if mesh.processes.is_multiprocess:
        processes = mesh.processes
        distributed(
            coordinator_address=processes.coordinator_address,
            num_processes=processes.num_processes,
            process_id=processes.process_id,
            heartbeat_timeout_s=processes.heartbeat_timeout_s,
            initialization_timeout_s=processes.init_timeout_s,
        )


def mesh_summary(
    mesh: MeshSpec, chunk_size: int, *, devices: Literal["names", "count"]
) -> dict[str, Any]:
    """The ``mesh`` entry of a report: name, resolved axes, executor, chunk size, devices.

    ``devices="names"`` lists every device by name and adds the process count (the
    analysis, which may span processes); ``"count"`` gives the number of devices (the
    training job, one process).
    """
    found = mesh.devices()
    summary: dict[str, Any] = {
        "name": mesh.name,
        "axes": mesh.resolve(len(found)),
        "executor": mesh.executor,
        "chunk_size": chunk_size,
    }
    if devices == "names":
        summary["devices"] = [str(device) for device in found]
        summary["process_count"] = jax.process_count()
    else:
        summary["devices"] = len(found)
    return summary


# --------------------------------------------------------------------------- files


def write_atomically(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    A crash leaves either the old file or the new one, never half of one. The file gets the
    mode a plain ``open()`` would give it (``0o666`` less the umask), not ``mkstemp``'s 0600.

    Example:
        >>> import tempfile, pathlib
        >>> path = write_atomically(pathlib.Path(tempfile.mkdtemp()) / "a" / "b.txt", b"hi")
        >>> path.read_bytes(), sorted(p.name for p in path.parent.iterdir())
        (b'hi', ['b.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def to_jsonable(value: Any) -> Any:
    """Numbers, arrays, paths and containers as JSON values; inf and NaN become strings.

    Example:
        >>> import numpy as np
        >>> to_jsonable({"rank": np.int32(3), "cond": float("inf"), "s": np.ones(2)})
        {'rank': 3, 'cond': 'inf', 's': [1.0, 1.0]}
    """
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` (see :func:`to_jsonable`) as indented JSON, atomically."""
    return write_atomically(path, json.dumps(to_jsonable(value), indent=2).encode())


# --------------------------------------------------------------------------- figures


def detection_quality(flagged: Any, truth: Any) -> dict[str, float | int]:
    """Precision, recall and F1 of ``flagged`` rows against the ``truth`` rows.

    Precision is 0 when nothing is flagged, recall 0 when nothing is true, F1 0 when both
    are 0.

    Example:
        >>> import numpy as np
        >>> from liam_core.train import detection_quality
        >>> quality = detection_quality(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
        >>> quality["precision"], quality["recall"], quality["f1"]
        (0.5, 0.5, 0.5)
    """
    flagged, truth = np.asarray(flagged, bool), np.asarray(truth, bool)
    check_ndim(flagged, "flagged", 1, owner="detection_quality")
    if truth.shape != flagged.shape:
        raise ShapeError(
            f"detection_quality: `truth` must have the shape of `flagged` {flagged.shape}, "
            f"got shape {truth.shape}"
        )
    return quality_from_counts(
        int(flagged.shape[0]), int(flagged.sum()), int(truth.sum()), int(np.sum(flagged & truth))
    )


def quality_from_counts(
    n_rows: int, n_flagged: int, n_true: int, true_positive: int
) -> dict[str, float | int]:
    """:func:`detection_quality` from counts (rows, flagged, truly anomalous, both), for
    callers that count batch by batch."""
    precision = true_positive / n_flagged if n_flagged else 0.0
    recall = true_positive / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n_rows": n_rows,
        "n_flagged": n_flagged,
        "n_true_anomalies": n_true,
        "true_positives": true_positive,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def downsample_max(values: Any, points: int) -> np.ndarray:
    """The maximum of each of at most ``points`` equal runs of ``values`` (spikes stay visible).

    The last run is padded with zeros, so it suits values >= 0 (scores, distances).

    Example:
        >>> downsample_max(np.array([0.0, 5.0, 1.0, 2.0, 0.0]), 2).tolist()
        [5.0, 2.0]
    """
    points = check_int(points, "points", owner="downsample_max")
    values = np.asarray(values, np.float64)
    width = max(1, -(-values.shape[0] // points))
    padded = np.pad(values, (0, -values.shape[0] % width))
    return padded.reshape(-1, width).max(axis=1)


def progress_bar(
    total: int | None, *, unit: str, label: str, initial: int = 0, enabled: bool = True
) -> tqdm:
    """A tqdm bar on stderr, labelled (``pass 1/2: moments``), that disappears when done.

    Use it as a context manager. ``unit="rows"`` counts with SI prefixes (``1.2M rows``);
    ``enabled=False`` shows nothing.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=label,
        initial=initial,
        unit=unit,
        unit_scale=unit == "rows",
        leave=False,
        disable=not enabled,
    )


# --------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> tuple[Figure, Any]:
    """A figure and its axes, without pyplot: no global backend or state is touched."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    return figure, figure.subplots()


def _save(figure: Figure, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    return write_atomically(path, buffer.getvalue())


def plot_scree(singular_values: Any, path: str | os.PathLike[str]) -> Path:
    """The singular values of the correlation matrix against their index, log scale."""
    figure, axis = _figure(6, 4)
    values = np.asarray(singular_values)
    axis.plot(np.arange(1, len(values) + 1), values, marker="o")
    axis.set(xlabel="component", ylabel="singular value of the correlation", title="Scree")
    axis.set_yscale("log")
    return _save(figure, path)


def plot_spectra(
    frequencies_per_hour: Any, power: Any, names: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """The power spectral density of each metric against the period in hours, log-log.

    ``frequencies_per_hour[0]`` (the mean, period infinite) is left out.
    """
    figure, axis = _figure(7, 4)
    periods = 1 / np.asarray(frequencies_per_hour)[1:]
    for column, name in enumerate(names):
        axis.loglog(periods, np.asarray(power)[1:, column], label=name, linewidth=0.8)
    axis.set(xlabel="period (hours)", ylabel="power spectral density", title="Spectra")
    axis.legend(fontsize=7)
    return _save(figure, path)


def plot_scores(
    scores: Any,
    threshold: float,
    path: str | os.PathLike[str],
    *,
    ylabel: str,
    truth: Any = None,
    log_scale: bool = False,
) -> Path:
    """Anomaly scores (maximum per bin, see :func:`downsample_max`) and the threshold.

    ``truth`` (per bin, > 0 where an anomaly was injected) marks those bins with dots.
    """
    figure, axis = _figure(8, 3.5)
    scores = np.asarray(scores)
    axis.plot(scores, linewidth=0.7, label="anomaly score (max per bin)")
    if math.isfinite(threshold):
        axis.axhline(threshold, color="red", linewidth=0.8, label="threshold")
    if truth is not None:
        hits = np.flatnonzero(np.asarray(truth) > 0)
        axis.scatter(hits, scores[hits], s=6, color="black", label="injected anomaly")
    if log_scale:
        axis.set_yscale("log")
    axis.set(xlabel="time (bins of rows)", ylabel=ylabel, title="Anomaly scores")
    axis.legend(fontsize=7)
    return _save(figure, path)


def plot_score_points(
    times: Any,
    scores: Any,
    flagged: Any,
    threshold: float,
    path: str | os.PathLike[str],
    *,
    ylabel: str,
    truth: Any = None,
) -> Path:
    """A scatter of anomaly scores over time (one point per row), flagged points marked.

    ``times`` are datetimes or row/step numbers; ``flagged`` and ``truth`` (labelled rows,
    optional) are bools per point, drawn in red and as black rings.
    """
    figure, axis = _figure(9, 3.5)
    times, scores = np.asarray(times), np.asarray(scores, np.float64)
    flagged = np.asarray(flagged, bool)
    axis.scatter(
        times[~flagged], scores[~flagged], s=2, color="tab:blue", alpha=0.5, linewidths=0,
        label="row", rasterized=True,
    )  # fmt: skip
    axis.scatter(times[flagged], scores[flagged], s=8, color="red", label="flagged")
    if truth is not None:
        hits = np.asarray(truth, bool)
        axis.scatter(
            times[hits], scores[hits], s=30, facecolors="none", edgecolors="black",
            linewidths=0.6, label="labelled anomaly",
        )  # fmt: skip
    if math.isfinite(threshold):
        axis.axhline(threshold, color="red", linewidth=0.8, linestyle="--", label="threshold")
    if scores.size and scores.min() > 0:
        axis.set_yscale("log")
    axis.set(xlabel="time", ylabel=ylabel, title="Anomaly scores")
    axis.legend(fontsize=7, markerscale=2)
    if np.issubdtype(times.dtype, np.datetime64):
        figure.autofmt_xdate()
    return _save(figure, path)


def plot_training_curves(
    records: Sequence[Sequence[float]], best_step: int, path: str | os.PathLike[str]
) -> Path:
    """Training and evaluation loss (``[step, loss, eval_loss]`` rows, NaN where absent)
    against the step, log scale when every loss is positive; the best step marked."""
    figure, axis = _figure(7, 4)
    table = np.asarray(records, np.float64).reshape(-1, 3)
    for column, label in ((1, "training loss"), (2, "evaluation loss")):
        keep = np.isfinite(table[:, column])
        if keep.any():
            axis.plot(
                table[keep, 0],
                table[keep, column],
                marker="." if column == 2 else None,
                label=label,
            )
    if best_step > 0:
        axis.axvline(
            best_step, color="grey", linewidth=0.8, linestyle="--", label="best evaluation"
        )
    losses = table[:, 1:][np.isfinite(table[:, 1:])]
    if losses.size and losses.min() > 0:
        axis.set_yscale("log")
    axis.set(xlabel="step", ylabel="mean loss", title="Training curves")
    axis.legend(fontsize=8)
    return _save(figure, path)
