"""``DataSpec``: which data a job reads (the typed form of ``conf/data/*.yaml``), and opening it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from .._checks import check_choice, check_int, check_number, quote
from .._errors import ConfigError, ConfigTypeError
from ..engine import Schema
from ._batch import Batch
from .bundled import BUNDLED, load_bundled
from .readers import read_csv, read_parquet
from .synthetic import SyntheticTelemetry

DataKind = Literal["synthetic", "csv", "parquet", "bundled"]
"""Where a :class:`DataSpec`'s rows come from."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A data source: synthetic telemetry, a CSV or Parquet file, or a bundled real dataset.

    Args:
        kind: a :data:`DataKind`: ``"synthetic"``, ``"csv"``, ``"parquet"`` or ``"bundled"``.
        settings: the source's own settings: :class:`SyntheticTelemetry`'s fields for
            ``synthetic``; ``path``, ``columns`` (column -> metric) and ``nan_policy`` for
            files; ``name`` (and ``nan_policy``) for ``bundled``.
        n_teams: rows per time step in files (rows are time-major); synthetic data set it.
        period_s: seconds between time steps in files; synthetic data set it.
    """

    kind: DataKind
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    n_teams: int = 1
    period_s: float = 3600.0

    def __post_init__(self) -> None:
        check_choice(self.kind, "data.kind", DataKind)
        if not isinstance(self.settings, Mapping):
            raise ConfigTypeError(
                f"`data.settings` must map setting names to values, "
                f"got {type(self.settings).__name__}: {quote(self.settings)}"
            )
        object.__setattr__(self, "settings", dict(self.settings))
        if self.kind in ("csv", "parquet") and not self.settings.get("path"):
            raise ConfigError(
                f"`data.settings.path` must name a file for data.kind={self.kind!r}, "
                f"got {quote(self.settings.get('path'))}"
            )
        if self.kind == "bundled":
            check_choice(self.settings.get("name"), "data.settings.name", tuple(BUNDLED))
        check_int(self.n_teams, "data.n_teams")
        check_number(self.period_s, "data.period_s", positive=True)


@dataclasses.dataclass(frozen=True)
class OpenedSource:
    """A re-iterable source of batches and what an analysis needs to know about it."""

    batches: Callable[[], Iterable[Batch]]
    schema: Schema
    n_teams: int
    period_s: float
    n_records: int | None
    description: str


def open_source(spec: DataSpec, *, batch_size: int) -> OpenedSource:
    """Open ``spec`` so that ``batches()`` streams it in batches of ``batch_size`` rows."""
    settings = dict(spec.settings)
    if spec.kind == "synthetic":
        try:
            telemetry = SyntheticTelemetry(**settings)
        except TypeError as error:
            raise ConfigError(f"data.settings: {error}") from None
        return OpenedSource(
            batches=lambda: telemetry.batches(batch_size),
            schema=telemetry.schema(),
            n_teams=telemetry.n_teams,
            period_s=float(telemetry.period_s),
            n_records=telemetry.n_records,
            description=f"synthetic telemetry ({telemetry.n_records} records, "
            f"{telemetry.n_teams} teams, seed {telemetry.seed})",
        )
    if spec.kind in ("csv", "parquet"):
        reader = read_csv if spec.kind == "csv" else read_parquet
        path = settings.pop("path")
        first = reader(path, batch_size=batch_size, **settings)
        names = next(iter(first)).metric_names
        return OpenedSource(
            batches=lambda: reader(path, batch_size=batch_size, **settings),
            schema=Schema(names),
            n_teams=spec.n_teams,
            period_s=spec.period_s,
            n_records=None,
            description=f"{spec.kind} file {path}",
        )
    batch = load_bundled(settings["name"], nan_policy=settings.get("nan_policy", "drop"))
    return OpenedSource(
        batches=lambda: [
            batch.take(i, min(i + batch_size, batch.n_rows))
            for i in range(0, batch.n_rows, batch_size)
        ],
        schema=Schema(batch.metric_names),
        n_teams=spec.n_teams,
        period_s=spec.period_s,
        n_records=batch.n_rows,
        description=f"bundled dataset {settings['name']}",
    )
