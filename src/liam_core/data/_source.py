"""``DataSpec``: which data a job reads (the typed form of ``conf/data/*.yaml``), and opening it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import numpy as np

from .._checks import check_choice, check_number, quote
from .._errors import ConfigError, ConfigTypeError, LiamError
from ..engine import Schema
from ._batch import Batch
from ._timeseries import SeriesOptions
from .bundled import BUNDLED, BundledNanPolicy, load_bundled
from .readers import check_encoding, open_series
from .synthetic import SyntheticTelemetry

DataKind = Literal["synthetic", "csv", "parquet", "bundled"]
"""Where a :class:`DataSpec`'s rows come from."""

_SERIES_FIELDS = (
    "path",
    "layout",
    "time_column",
    "time_unit",
    "entity_columns",
    "metrics",
    "metric_column",
    "value_column",
    "label_column",
    "step",
    "aggregate",
    "duplicates",
    "nan_policy",
)
_SYNTHETIC_FIELDS = tuple(
    field.name for field in dataclasses.fields(SyntheticTelemetry) if field.init
)
KIND_FIELDS: Mapping[str, tuple[str, ...]] = {
    "synthetic": _SYNTHETIC_FIELDS,
    "csv": (*_SERIES_FIELDS, "encoding"),
    "parquet": _SERIES_FIELDS,
    "bundled": ("name", "nan_policy", "period_s"),
}
"""The settings of each kind of source (the ``data.*`` keys it accepts besides ``kind``)."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A data source: your own CSV or Parquet file, synthetic telemetry, or a bundled dataset.

    The fields are flat (``data.path``, ``data.n_records``, ...); each kind reads only its
    own (:data:`KIND_FIELDS`), and a field of another kind is refused, naming it. A field
    left ``None`` takes the default of the reader, which is the keyword argument of the
    same name of :func:`~liam_core.data.read_csv` / :func:`~liam_core.data.read_parquet`
    (the module docstring of ``liam_core.data.readers`` explains them),
    :class:`~liam_core.data.SyntheticTelemetry` or
    :func:`~liam_core.data.load_bundled`.

    Args:
        kind: a :data:`DataKind`: ``"csv"``, ``"parquet"``, ``"synthetic"`` or ``"bundled"``.
        path: (csv, parquet) the file; a relative path is resolved against the working
            directory (run the jobs from the repository root for ``examples/metrics.csv``).
        layout, time_column, time_unit, entity_columns, metrics, metric_column,
        value_column, label_column, step, aggregate, duplicates, nan_policy: (csv, parquet)
            how the file is a time series; ``metrics`` also selects synthetic metrics and
            ``nan_policy`` is also the bundled datasets' (``raise``, ``mask``, ``drop``).
        encoding: (csv) the text encoding, ``utf-8`` by default.
        n_records, n_teams, seed, period_s, start, ...: (synthetic) the fields of
            :class:`SyntheticTelemetry`; ``period_s`` also sets a bundled dataset's seconds
            per step (default: the median spacing of its times, else 3600).
        name: (bundled) one of ``BUNDLED``.

    Example:
        >>> from liam_core.data import DataSpec
        >>> DataSpec("csv", path="metrics.csv", time_column="timestamp", step="5min").options()
        {'path': 'metrics.csv', 'time_column': 'timestamp', 'step': '5min'}
        >>> DataSpec("csv", path="metrics.csv", n_records=10)
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `data.n_records` is a setting of data.kind='synthetic', not of data.kind='csv' (drop it or choose another kind); the settings of 'csv' are ['path', 'layout', 'time_column', 'time_unit', 'entity_columns', 'metrics', 'metric_column', 'value_column', 'label_column', 'step', 'aggregate', 'duplicates', 'nan_policy', 'encoding']
    """

    kind: DataKind
    # csv, parquet
    path: str | None = None
    layout: str | None = None
    time_column: str | None = None
    time_unit: str | None = None
    entity_columns: tuple[str, ...] | None = None
    metrics: tuple[str, ...] | None = None
    metric_column: str | None = None
    value_column: str | None = None
    label_column: str | None = None
    step: str | None = None
    aggregate: str | Mapping[str, str] | None = None
    duplicates: str | None = None
    nan_policy: str | None = None
    encoding: str | None = None
    # synthetic (SyntheticTelemetry's fields)
    n_records: int | None = None
    n_teams: int | None = None
    seed: int | None = None
    period_s: float | None = None
    start: str | None = None
    n_factors: int | None = None
    factor_strength: float | None = None
    noise_scale: float | None = None
    daily_amplitude: float | None = None
    weekly_amplitude: float | None = None
    drift_start: int | None = None
    drift_level: float | None = None
    drift_trend: float | None = None
    spike_rate: float | None = None
    spike_size: tuple[float, float] | None = None
    level_shift_rate: float | None = None
    level_shift_size: tuple[float, float] | None = None
    level_shift_steps: tuple[int, int] | None = None
    dropout_rate: float | None = None
    dropout_steps: tuple[int, int] | None = None
    # bundled
    name: str | None = None

    def __post_init__(self) -> None:
        check_choice(self.kind, "data.kind", DataKind)
        own = KIND_FIELDS[self.kind]
        for field in dataclasses.fields(self):
            if field.name == "kind" or field.name in own or getattr(self, field.name) is None:
                continue
            kinds = [kind for kind, names in KIND_FIELDS.items() if field.name in names]
            raise ConfigError(
                f"`data.{field.name}` is a setting of "
                f"{' or '.join(f'data.kind={kind!r}' for kind in kinds)}, not of "
                f"data.kind={self.kind!r} (drop it or choose another kind); the settings "
                f"of {self.kind!r} are {list(own)}"
            )
        for name in ("entity_columns", "metrics", "spike_size", "level_shift_size"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                raise ConfigTypeError(
                    f"`data.{name}` must be a list, got {type(value).__name__}: {quote(value)}"
                )
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.aggregate, Mapping):
            object.__setattr__(self, "aggregate", dict(self.aggregate))
        if self.kind in ("csv", "parquet"):
            self._check_file_settings()
        elif self.kind == "synthetic":
            if self.n_records is None:
                raise ConfigError(
                    "`data.n_records` must be an int >= 1 (the number of records) for "
                    "data.kind='synthetic', got None"
                )
            _as_config_field(lambda: SyntheticTelemetry(**self.options()), "SyntheticTelemetry")
        else:
            check_choice(self.name, "data.name", tuple(BUNDLED))
            if self.nan_policy is not None:
                check_choice(self.nan_policy, "data.nan_policy", BundledNanPolicy)
            if self.period_s is not None:
                check_number(self.period_s, "data.period_s", positive=True)

    def _check_file_settings(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ConfigTypeError(
                f"`data.path` must name a file for data.kind={self.kind!r}, got {quote(self.path)}"
            )
        options = self.series_options()
        if self.kind == "csv" and self.encoding is not None:
            check_encoding(self.encoding, options)

    def options(self) -> dict[str, Any]:
        """The settings of this kind that are set, as keyword arguments of its reader.

        Example:
            >>> from liam_core.data import DataSpec
            >>> DataSpec("synthetic", n_records=300, seed=4).options()
            {'n_records': 300, 'seed': 4}
        """
        return {
            name: getattr(self, name)
            for name in KIND_FIELDS[self.kind]
            if getattr(self, name) is not None
        }

    def series_options(self) -> SeriesOptions:
        """The validated time-series settings of a csv or parquet source."""
        settings = {
            name: value
            for name, value in self.options().items()
            if name not in ("path", "encoding")
        }
        return SeriesOptions(**settings, prefix="data.")


def _as_config_field(build: Callable[[], Any], owner: str) -> Any:
    """Call ``build``; an error of ``owner``'s fields is reported as the ``data.`` field."""
    try:
        return build()
    except LiamError as error:
        message = str(error).replace(f"{owner}: `", "`data.", 1)
        raise type(error)(message) from None
    except TypeError as error:
        raise ConfigError(f"data: {error}") from None


@dataclasses.dataclass(frozen=True)
class OpenedSource:
    """A re-iterable source of batches and what an analysis needs to know about it.

    Attributes:
        batches: returns a fresh iterable of the batches (called once per pass).
        schema: the metrics, in column order.
        n_entities: rows per time step (rows are time-major: one per entity and step).
        entity_names: the names of the entities, in code order (``None``: one unnamed).
        period_s: seconds per time step.
        n_records: the number of rows, when known.
        description: one line for reports.
    """

    batches: Callable[[], Iterable[Batch]]
    schema: Schema
    n_entities: int
    period_s: float
    n_records: int | None
    description: str
    entity_names: tuple[str, ...] | None = None


def open_source(spec: DataSpec, *, batch_size: int) -> OpenedSource:
    """Open ``spec`` so that ``batches()`` yields it in batches of ``batch_size`` rows.

    Synthetic telemetry is generated as it is consumed. A small file is read (and
    resampled) once, here, and its batches are cut from memory; a large one (see
    ``liam_core.data.readers``) is streamed: checked here by a first pass over its time
    and entity columns, then read again, chunk by chunk, on every call of ``batches()``,
    so a job's two passes never hold the file in memory.
    """
    settings = spec.options()
    if spec.kind == "synthetic":
        telemetry = _as_config_field(lambda: SyntheticTelemetry(**settings), "SyntheticTelemetry")
        return OpenedSource(
            batches=lambda: telemetry.batches(batch_size),
            schema=telemetry.schema(),
            n_entities=telemetry.n_teams,
            entity_names=telemetry.entity_names,
            period_s=float(telemetry.period_s),
            n_records=telemetry.n_records,
            description=f"synthetic telemetry ({telemetry.n_records} records, "
            f"{telemetry.n_teams} teams, seed {telemetry.seed})",
        )
    if spec.kind in ("csv", "parquet"):
        table = open_series(
            spec.path, spec.series_options(), kind=spec.kind, encoding=spec.encoding or "utf-8"
        )
        return OpenedSource(
            batches=lambda: table.batches(batch_size),
            schema=Schema(table.metric_names),
            n_entities=table.n_entities,
            entity_names=table.entity_names,
            period_s=table.step_s or 3600.0,
            n_records=table.n_rows,
            description=_describe(spec, table),
        )
    batch = load_bundled(spec.name, nan_policy=spec.nan_policy or "drop")
    period_s = spec.period_s
    if period_s is None:
        period_s = 3600.0
        if batch.timestamps is not None and batch.n_rows > 1:
            spacing = np.median(np.diff(batch.timestamps.astype("datetime64[s]").astype(np.int64)))
            period_s = float(spacing) if spacing > 0 else period_s
    return OpenedSource(
        batches=lambda: [
            batch.take(i, min(i + batch_size, batch.n_rows))
            for i in range(0, batch.n_rows, batch_size)
        ],
        schema=Schema(batch.metric_names),
        n_entities=1,
        period_s=float(period_s),
        n_records=batch.n_rows,
        description=f"bundled dataset {spec.name}",
    )


def _describe(spec: DataSpec, table: Any) -> str:
    what = f"{spec.kind} file {spec.path}"
    if table.step_s is None:
        return what if table.n_rows is None else f"{what} ({table.n_rows} rows)"
    steps = table.n_rows // table.n_entities
    entities = f" x {table.n_entities} entities" if table.entity_names else ""
    return f"{what} ({steps} steps of {table.step_s:g} s{entities}, metrics {list(table.metric_names)})"
