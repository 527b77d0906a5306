"""Evidence of a run: ``report.json``, PNG plots, the resolved config, a progress bar.

Every file is written to a temporary name and renamed, so a crash never leaves half a file.
Nothing is pickled: the report and the resolved config are JSON, the plots PNG.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._files import to_jsonable, write_atomically
from .data import Batch


def write(results: Mapping[str, Any], output_dir: Path, config: Mapping[str, Any]) -> dict:
    """Write ``report.json``, ``config.json`` and the plots; return their paths."""
    output_dir = Path(output_dir)
    report = {
        key: value for key, value in results.items() if key not in ("curves", "mean", "covariance")
    }
    paths = {
        "report": write_atomically(
            output_dir / "report.json", json.dumps(to_jsonable(report), indent=2).encode()
        ),
        "config": write_atomically(
            output_dir / "config.json", json.dumps(to_jsonable(config), indent=2).encode()
        ),
    }
    paths.update(_plots(results, output_dir))
    return {name: str(path) for name, path in paths.items()}


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes, without pyplot: no global backend or state is touched."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    return figure, figure.subplots()


def _plots(results: Mapping[str, Any], output_dir: Path) -> dict[str, Path]:
    curves = results["curves"]
    paths = {}

    figure, axis = _figure(6, 4)
    values = curves["singular_values"]
    axis.plot(np.arange(1, len(values) + 1), values, marker="o")
    axis.set(xlabel="component", ylabel="singular value of the correlation", title="Scree")
    axis.set_yscale("log")
    paths["scree"] = _save(figure, output_dir / "scree.png")

    if len(curves["frequencies_per_hour"]) > 1:
        figure, axis = _figure(7, 4)
        periods = 1 / curves["frequencies_per_hour"][1:]
        for column, name in enumerate(results["metrics"]):
            axis.loglog(periods, curves["power"][1:, column], label=name, linewidth=0.8)
        axis.set(xlabel="period (hours)", ylabel="power spectral density", title="Spectra")
        axis.legend(fontsize=7)
        paths["spectra"] = _save(figure, output_dir / "spectra.png")

    figure, axis = _figure(8, 3.5)
    axis.plot(curves["score"], linewidth=0.7, label="anomaly score (max per bin)")
    axis.axhline(results["anomalies"]["threshold"], color="red", linewidth=0.8, label="threshold")
    if curves["truth"] is not None:
        hits = np.flatnonzero(curves["truth"] > 0)
        axis.scatter(hits, curves["score"][hits], s=6, color="black", label="injected anomaly")
    axis.set(xlabel="time (bins of rows)", ylabel="Mahalanobis distance", title="Anomaly scores")
    axis.legend(fontsize=7)
    paths["anomalies"] = _save(figure, output_dir / "anomaly_scores.png")
    return paths


def _save(figure: Any, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    return write_atomically(path, buffer.getvalue())


def progress_bar(
    n_records: int | None, batch_size: int
) -> Callable[[Iterable[Batch]], Iterator[Batch]]:
    """A wrapper that shows a tqdm bar in rows over an iterable of batches (on stderr)."""
    from tqdm.auto import tqdm

    def wrap(batches: Iterable[Batch]) -> Iterator[Batch]:
        with tqdm(total=n_records, unit="rows", unit_scale=True, leave=False) as bar:
            for batch in batches:
                yield batch
                bar.update(batch.n_rows)

    return wrap
