"""Time series from a table: parse the time column, group entities, resample to a regular step.

A time-series table has a time column, optional entity columns (``host``, ``service``:
several columns form one entity key) and metric columns, in one of two layouts:

* ``wide``: one row per (time, entity), one column per metric;
* ``long``: one row per (time, entity, metric), the metric's name in ``metric_column`` and
  its value in ``value_column``.

:func:`build_table` turns such a table into rows ready for :class:`~liam_core.data.Batch`:
the rows are sorted by time, put on a regular grid of ``step`` (each metric aggregated
over the records of each step and entity), and laid out time-major: for each step, one row
per entity, in sorted entity order, every entity at every step (a step without data for an
entity is a missing row). The analysis and training jobs rely on this layout (``n_teams``
rows per step, ``period_s`` seconds per step).

Everything is vectorized with numpy and pandas. :func:`build_table` holds the selected
columns in memory whole; :class:`StreamResampler` gives the same rows from records that
arrive chunk by chunk in time order (the readers stream large files with it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import numpy as np

from .._checks import check_choice, check_int, check_names, quote
from .._errors import ConfigError, ConfigTypeError, DataError, EmptyDataError
from ._batch import Batch
from ._extras import require

__all__ = [
    "Aggregation",
    "Duplicates",
    "Layout",
    "NanPolicy",
    "SeriesOptions",
    "TimeUnit",
    "build_table",
]

Layout = Literal["wide", "long"]
"""``wide``: one column per metric; ``long``: ``time, entity..., metric, value`` rows."""
Aggregation = Literal["mean", "max", "min", "sum", "last"]
"""How the records of one step and entity become one value (``last``: the latest in time)."""
Duplicates = Literal["aggregate", "raise"]
"""Two rows with the same time and entity (and metric): combine them, or refuse them."""
NanPolicy = Literal["raise", "mask"]
"""A missing value or a gap: raise an error naming it, or mask it (``Batch.mask`` False)."""
TimeUnit = Literal["s", "ms", "us", "ns"]
"""The unit of a numeric (epoch) time column."""

FLOAT32_MAX = float(np.finfo(np.float32).max)
_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# Epoch numbers that are unambiguous: seconds or milliseconds of 1973-03-03 .. 2286-11-20.
_EPOCH_RANGES = (("s", 1e8, 1e10), ("ms", 1e11, 1e13))
_NO_LABEL = ("", "0", "0.0", "none", "false")

Where = Callable[[int], str]
"""Position of a row in the table (0-based) -> where it is, for messages: 'line 7', 'row 6'."""


@dataclasses.dataclass(frozen=True)
class SeriesOptions:
    """The settings shared by every time-series reader, validated on construction.

    ``prefix`` and ``owner`` only shape messages: ``read_csv: `step` ...`` from Python,
    ```data.step` ...`` from a config.
    """

    time_column: str | None = None
    entity_columns: tuple[str, ...] = ()
    metrics: tuple[str, ...] | None = None
    layout: Layout = "wide"
    metric_column: str = "metric"
    value_column: str = "value"
    label_column: str | None = None
    step: str | None = None
    aggregate: Aggregation | Mapping[str, Aggregation] = "mean"
    duplicates: Duplicates = "raise"
    nan_policy: NanPolicy = "raise"
    time_unit: TimeUnit | None = None
    prefix: str = dataclasses.field(default="", compare=False)
    owner: str | None = dataclasses.field(default=None, compare=False)
    step_ns: int | None = dataclasses.field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("time_column", "label_column"):
            value = getattr(self, name)
            if value is not None:
                self._check_name(value, name)
        for name in ("metric_column", "value_column"):
            self._check_name(getattr(self, name), name)
        entity = self.entity_columns
        entity = (entity,) if isinstance(entity, str) else entity
        set_(self, "entity_columns", check_names(entity, self.field("entity_columns")))
        if self.metrics is not None:
            metrics = check_names(self.metrics, self.field("metrics"), owner=self.owner)
            if not metrics:
                raise ConfigError(
                    f"{self.subject('metrics')} must name at least one metric or be None, got []"
                )
            set_(self, "metrics", metrics)
        check_choice(self.layout, self.field("layout"), Layout, owner=self.owner)
        check_choice(self.duplicates, self.field("duplicates"), Duplicates, owner=self.owner)
        check_choice(self.nan_policy, self.field("nan_policy"), NanPolicy, owner=self.owner)
        if self.time_unit is not None:
            check_choice(self.time_unit, self.field("time_unit"), TimeUnit, owner=self.owner)
        set_(self, "aggregate", self._checked_aggregate())
        if self.step is not None:
            set_(self, "step_ns", self._step_ns())
        if self.time_column is None:
            for name, value, empty in (
                ("entity_columns", self.entity_columns, ()),
                ("step", self.step, None),
                ("layout", self.layout, "wide"),
            ):
                if value != empty:
                    raise ConfigError(
                        f"{self.subject(name)} needs a time column: set `{self.prefix}"
                        f"time_column` to the column of times, got {name}={quote(value)} "
                        "with time_column=None"
                    )
        roles = [self.time_column, *self.entity_columns, self.label_column]
        if self.layout == "long":
            roles += [self.metric_column, self.value_column]
        named = [role for role in roles if role is not None]
        twice = sorted({role for role in named if named.count(role) > 1})
        if twice:
            raise ConfigError(
                f"{self.subject('time_column')}, entity, label, metric and value columns must "
                f"be distinct columns, got {twice} in more than one role"
            )

    def field(self, name: str) -> str:
        """The name of setting ``name`` in messages (``data.step`` or ``step``)."""
        return f"{self.prefix}{name}"

    def subject(self, name: str) -> str:
        """The start of a message about setting ``name``: ``read_csv: `step```."""
        owner = f"{self.owner}: " if self.owner else ""
        return f"{owner}`{self.field(name)}`"

    def _check_name(self, value: Any, name: str) -> None:
        if not isinstance(value, str) or not value:
            raise ConfigTypeError(
                f"{self.subject(name)} must be a column name (a non-empty string), got "
                f"{type(value).__name__}: {quote(value)}"
            )

    def _checked_aggregate(self) -> Any:
        value = self.aggregate
        if isinstance(value, Mapping):
            checked = {}
            for metric, how in value.items():
                if not isinstance(metric, str) or not metric:
                    raise ConfigTypeError(
                        f"{self.subject('aggregate')} must map metric names to aggregations, "
                        f"got the key {quote(metric)}"
                    )
                checked[metric] = check_choice(
                    how, self.field(f"aggregate.{metric}"), Aggregation, owner=self.owner
                )
            return checked
        return check_choice(value, self.field("aggregate"), Aggregation, owner=self.owner)

    def _step_ns(self) -> int:
        pd = require("pandas", "resampling to a `step`")
        expected = "a fixed duration as a pandas offset string such as '5min', '1h', '1D'"
        if not isinstance(self.step, str):
            raise ConfigTypeError(
                f"{self.subject('step')} must be {expected} (or None: the data are regular), "
                f"got {type(self.step).__name__}: {quote(self.step)}"
            )
        try:
            nanos = int(pd.tseries.frequencies.to_offset(self.step).nanos)
        except ValueError as error:
            raise ConfigError(
                f"{self.subject('step')} must be {expected}, got {quote(self.step)} "
                f"({quote(str(error))})"
            ) from None
        if nanos <= 0:
            raise ConfigError(
                f"{self.subject('step')} must be {expected} > 0, got {quote(self.step)}"
            )
        return nanos

    def aggregation(self, metric: str) -> str:
        """The aggregation of ``metric`` (a mapping's metrics not named: ``mean``)."""
        if isinstance(self.aggregate, Mapping):
            return self.aggregate.get(metric, "mean")
        return self.aggregate


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """Rows ready to become :class:`Batch` es: values with their validity and what is per row."""

    values: np.ndarray  # float32 [rows, metrics], NaN where not valid
    valid: np.ndarray  # bool [rows, metrics]
    metric_names: tuple[str, ...]
    source: str
    masked: bool  # nan_policy="mask": batches carry `mask`
    timestamps: np.ndarray | None = None
    entity: np.ndarray | None = None
    entity_names: tuple[str, ...] | None = None
    anomaly: np.ndarray | None = None
    anomaly_names: tuple[str, ...] | None = None
    step_s: float | None = None

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_entities(self) -> int:
        return 1 if self.entity_names is None else len(self.entity_names)

    def batch(self, start: int = 0, stop: int | None = None) -> Batch:
        """Rows ``start:stop`` as one ``Batch``."""
        rows = slice(start, self.n_rows if stop is None else stop)

        def cut(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[rows]

        return Batch(
            self.values[rows],
            self.metric_names,
            start=start,
            mask=cut(self.valid) if self.masked else None,
            timestamps=cut(self.timestamps),
            entity=cut(self.entity),
            anomaly=cut(self.anomaly),
            source=self.source,
            entity_names=self.entity_names,
            anomaly_names=self.anomaly_names,
        )

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """Consecutive batches of at most ``batch_size`` rows."""
        for start in range(0, self.n_rows, batch_size):
            yield self.batch(start, min(start + batch_size, self.n_rows))


# -- building ------------------------------------------------------------------------------------


def build_table(frame: Any, options: SeriesOptions, *, source: str, where: Where) -> Table:
    """The rows of ``frame`` (a pandas DataFrame in file order) as a :class:`Table`.

    Without a time column the rows are kept as they are (one record per row). With one,
    they are sorted, resampled and laid out time-major (see the module docstring).
    """
    columns = [str(column) for column in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    _check_columns_exist(columns, options, source)
    if len(frame) == 0:
        raise EmptyDataError(f"{source}: no data rows; expected at least one")
    o = options
    roles = {o.time_column, *o.entity_columns, o.label_column}
    if o.layout == "long":
        roles |= {o.metric_column, o.value_column}
    labels, label_names = (None, None)
    if o.label_column is not None:
        labels, label_names = _labels(frame[o.label_column], o.label_column, source, where)

    if o.layout == "wide":
        names = _wide_metric_names(columns, roles, o, source)
        values = np.stack([_numbers(frame[name], name, source, where) for name in names], axis=1)
        _check_values(values, list(names), o, source, where)
        if o.time_column is None:
            return _plain_table(values, names, labels, label_names, o, source)
        metric_code = None
    else:
        metric_text = frame[o.metric_column]
        _refuse_missing(metric_text, o.metric_column, "a metric name", source, where)
        metric_text = metric_text.astype(str).to_numpy(dtype=object)
        found = tuple(sorted(set(metric_text)))
        names = _long_metric_names(found, o, source)
        lookup = {name: code for code, name in enumerate(names)}
        metric_code = np.array([lookup.get(name, -1) for name in found])[
            np.searchsorted(np.array(found, dtype=object), metric_text)
        ]
        # A copy: the column may be read-only (Arrow memory), and `mask` writes NaN into it.
        values = np.array(_numbers(frame[o.value_column], o.value_column, source, where)[:, None])
        _check_values(values, [o.value_column], o, source, where, rows=metric_code >= 0)
        values = values[:, 0]
    _check_aggregate_names(names, o)

    times = _times(frame[o.time_column], o, source, where)
    entity, entity_names = _entities(frame, o.entity_columns, source, where)
    return _resample(
        times, entity, entity_names, values, metric_code, names, labels, label_names, o,
        source, where,
    )  # fmt: skip


def _plain_table(
    values: np.ndarray,
    names: tuple[str, ...],
    labels: np.ndarray | None,
    label_names: tuple[str, ...] | None,
    o: SeriesOptions,
    source: str,
) -> Table:
    valid = np.isfinite(values)
    anomaly = None if labels is None else np.repeat(labels[:, None], len(names), axis=1)
    return Table(
        values.astype(np.float32),
        valid,
        tuple(names),
        source,
        masked=o.nan_policy == "mask",
        anomaly=anomaly,
        anomaly_names=label_names,
    )


def _check_columns_exist(columns: list[str], o: SeriesOptions, source: str) -> None:
    wanted: list[tuple[str, str]] = []
    if o.time_column is not None:
        wanted.append(("time_column", o.time_column))
    wanted += [("entity_columns", name) for name in o.entity_columns]
    if o.label_column is not None:
        wanted.append(("label_column", o.label_column))
    if o.layout == "long":
        wanted += [("metric_column", o.metric_column), ("value_column", o.value_column)]
    elif o.metrics is not None:
        wanted += [("metrics", name) for name in o.metrics]
    for setting, name in wanted:
        if name not in columns:
            raise DataError(
                f"{source}: `{o.field(setting)}` must name columns of the data, got {name!r}, "
                f"which it does not have; the columns are {quote(columns)}"
            )


def _wide_metric_names(
    columns: list[str], roles: set, o: SeriesOptions, source: str
) -> tuple[str, ...]:
    """The metrics of a wide layout: ``o.metrics``, or every column without another role."""
    names = tuple(o.metrics or (column for column in columns if column not in roles))
    if not names:
        raise DataError(
            f"{source}: no metric columns left besides the time, entity and label columns "
            f"{sorted(r for r in roles if r)}; the columns are {columns}"
        )
    return names


def _long_metric_names(found: tuple[str, ...], o: SeriesOptions, source: str) -> tuple[str, ...]:
    """The metrics of a long layout: ``o.metrics`` (each one ``found`` in the metric column),
    or every name found, sorted."""
    names = tuple(o.metrics or found)
    absent = [name for name in names if name not in found]
    if absent:
        raise DataError(
            f"{source}: `{o.field('metrics')}` must name metrics of the column "
            f"{o.metric_column!r}, got {absent}, which it does not hold; it holds "
            f"{quote(list(found))}"
        )
    return names


def _check_aggregate_names(names: tuple[str, ...], o: SeriesOptions) -> None:
    if isinstance(o.aggregate, Mapping):
        unknown = sorted(set(o.aggregate) - set(names))
        if unknown:
            raise ConfigError(
                f"{o.subject('aggregate')} must map metrics of the data to aggregations, got "
                f"{unknown}; the metrics are {list(names)}"
            )


def _refuse_missing(column: Any, name: str, expected: str, source: str, where: Where) -> None:
    missing = column.isna().to_numpy()
    if missing.any():
        row = int(np.argmax(missing))
        raise DataError(f"{source}, {where(row)}: `{name}` must be {expected}, got a missing value")


def _numbers(column: Any, name: str, source: str, where: Where) -> np.ndarray:
    """A metric column as float64 (missing: NaN); text, times or booleans raise."""
    pd = require("pandas", "reading metric columns")
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise DataError(
            f"{source}: `{name}` must hold numbers, got booleans; a column of flags is a "
            "label (`label_column`) or must be written as 0 and 1"
        )
    if pd.api.types.is_datetime64_any_dtype(dtype):
        raise DataError(
            f"{source}: `{name}` must hold numbers, got times; is it the time column? set "
            "`time_column`"
        )
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"{source}: `{name}` must hold real numbers, got complex numbers")
    if pd.api.types.is_numeric_dtype(dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    number = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    text = np.isnan(number) & column.notna().to_numpy()
    if text.any():
        # Blank strings (a frame's "") are missing values, not text.
        blank = column[text].astype(str).str.strip().eq("").to_numpy()
        rows = np.flatnonzero(text)
        text[rows[blank]] = False
    if text.any():
        row = int(np.argmax(text))
        cell = column.iloc[row]
        hint = ""
        parsed = pd.to_datetime(pd.Series([str(cell)]), errors="coerce", format="ISO8601")
        if parsed.notna().all():
            hint = "; is it the time column? set `time_column`"
        raise DataError(
            f"{source}, {where(row)}: `{name}` must be a number, got {quote(cell)}{hint}"
        )
    return number


def _check_values(
    values: np.ndarray,
    names: list[str],
    o: SeriesOptions,
    source: str,
    where: Where,
    rows: np.ndarray | None = None,
) -> None:
    """Refuse float32 overflow always, and missing or infinite cells under ``raise``.

    Under ``mask``, infinite cells become missing (NaN) in place. ``rows`` limits the checks
    to the rows that are kept (a long table's selected metrics).
    """
    considered = np.ones(values.shape[0], bool) if rows is None else rows
    with np.errstate(invalid="ignore"):
        overflow = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    overflow &= considered[:, None]
    if overflow.any():
        row, column = (int(i) for i in np.argwhere(overflow)[0])
        raise DataError(
            f"{source}, {where(row)}: `{names[column]}` must be a number within float32's "
            f"range (|value| <= {FLOAT32_MAX:.7g}), got {float(values[row, column])!r}, which "
            "would become infinite"
        )
    bad = ~np.isfinite(values) & considered[:, None]
    if not bad.any():
        return
    if o.nan_policy == "mask":
        values[np.isinf(values)] = np.nan
        return
    row, column = (int(i) for i in np.argwhere(bad)[0])
    value = values[row, column]
    got = "a missing value" if np.isnan(value) else repr(float(value))
    raise DataError(
        f"{source}, {where(row)}: `{names[column]}` must be a finite number, got {got}; "
        f"set `{o.field('nan_policy')}` to 'mask' to mask missing and infinite values"
    )


def _times(
    column: Any, o: SeriesOptions, source: str, where: Where, *, rounding: bool = False
) -> np.ndarray:
    """The time column as int64 nanoseconds since the epoch, UTC.

    ``rounding``: epoch numbers are rounded from float64 (what the whole column does when
    some of its numbers are fractional; a stream passes it for every chunk).
    """
    pd = require("pandas", "parsing times")
    name = o.time_column
    expected = (
        "a time: ISO 8601 text (2024-01-31T12:00:00, with or without a zone such as Z or "
        "+02:00; converted to UTC, no zone = UTC) or epoch seconds or milliseconds"
    )
    _refuse_missing(column, name, expected, source, where)
    dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        if getattr(dtype, "tz", None) is not None:
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return column.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if pd.api.types.is_bool_dtype(dtype):
        raise DataError(f"{source}: `{name}` must hold {expected}, got booleans")
    if pd.api.types.is_complex_dtype(dtype):
        raise DataError(f"{source}: `{name}` must hold {expected}, got complex numbers")
    if pd.api.types.is_numeric_dtype(dtype):
        return _epoch_ns(column.to_numpy(), o, source, where, rounding)
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        return _epoch_ns(numbers.to_numpy(), o, source, where, rounding)
    parsed = pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(
            f"{source}, {where(row)}: `{name}` must be {expected}, got {quote(column.iloc[row])}"
        )
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _epoch_ns(
    numbers: np.ndarray, o: SeriesOptions, source: str, where: Where, rounding: bool = False
) -> np.ndarray:
    unit = o.time_unit
    magnitude = np.abs(numbers.astype(np.float64))
    if unit is None:
        for candidate, low, high in _EPOCH_RANGES:
            if ((magnitude >= low) & (magnitude < high)).all():
                unit = candidate
                break
        else:
            raise DataError(
                f"{source}: `{o.time_column}` holds numbers from {quote(numbers.min())} to "
                f"{quote(numbers.max())}, which are neither all epoch seconds (1e8 to 1e10: "
                "1973-2286) nor all epoch milliseconds (1e11 to 1e13); set "
                f"`{o.field('time_unit')}` to 's', 'ms', 'us' or 'ns'"
            )
    factor = _NS[unit]
    if (magnitude * factor > 9.2e18).any():
        row = int(np.argmax(magnitude * factor > 9.2e18))
        raise DataError(
            f"{source}, {where(row)}: `{o.time_column}` must be a time before 2262 in "
            f"{unit} since 1970, got {quote(numbers[row])}"
        )
    if rounding:
        return np.round(numbers.astype(np.float64) * factor).astype(np.int64)
    if np.issubdtype(numbers.dtype, np.integer):
        return numbers.astype(np.int64) * factor
    whole = np.floor(numbers) == numbers
    if whole.all() and (magnitude < 2.0**53).all():
        return numbers.astype(np.int64) * factor
    return np.round(numbers * factor).astype(np.int64)


def _entities(
    frame: Any, columns: tuple[str, ...], source: str, where: Where
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Entity codes (sorted key order) and names (``a/b`` for several columns)."""
    pd = require("pandas", "grouping entities")
    if not columns:
        return np.zeros(len(frame), np.int64), None
    codes, uniques = [], []
    for name in columns:
        _refuse_missing(frame[name], name, "an entity name", source, where)
        try:
            code, unique = pd.factorize(frame[name], sort=True)
        except TypeError:
            raise DataError(
                f"{source}: `{name}` (an entity column) must hold values of one type, got "
                f"a mix such as {quote(list(frame[name].head(5)))}"
            ) from None
        codes.append(code)
        uniques.append(unique)
    keys, entity = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    names = tuple("/".join(str(uniques[k][key[k]]) for k in range(len(columns))) for key in keys)
    if len(set(names)) != len(names):
        raise DataError(
            f"{source}: the entity columns {list(columns)} give keys that read the same "
            f"once joined with '/': {quote(sorted(n for n in names if names.count(n) > 1))}"
        )
    return entity.reshape(-1).astype(np.int64), names


def _labels(column: Any, name: str, source: str, where: Where) -> tuple[np.ndarray, tuple]:
    """Label codes per row (0: no incident) and the names of the codes ("none" first)."""
    pd = require("pandas", "reading labels")
    if pd.api.types.is_bool_dtype(column.dtype):
        flags = column.to_numpy(dtype=bool)
        return flags.astype(np.int8), ("none", "true")
    if pd.api.types.is_complex_dtype(column.dtype):
        raise DataError(f"{source}: `{name}` must hold incident labels, got complex numbers")
    if pd.api.types.is_numeric_dtype(column.dtype):
        number = column.to_numpy(dtype=np.float64, na_value=np.nan)
        labelled = ~np.isnan(number) & (number != 0)
        text = np.empty(len(number), dtype=object)
        if labelled.any():
            unique, inverse = np.unique(number[labelled], return_inverse=True)
            # One name per distinct code (few), not per row.
            names = [str(int(v)) if float(v).is_integer() else str(v) for v in unique]
            text[labelled] = np.array(names, dtype=object)[inverse.reshape(-1)]
    else:
        text = column.astype("string").str.strip()
        labelled = ~(text.isna() | text.str.lower().isin(_NO_LABEL)).to_numpy()
        text = text.to_numpy(dtype=object, na_value="")
    kinds = tuple(str(kind) for kind in np.unique(text[labelled])) if labelled.any() else ()
    if len(kinds) > 127:
        raise DataError(
            f"{source}: `{name}` (the label column) must hold at most 127 kinds of incident, "
            f"got {len(kinds)} such as {quote(list(kinds[:5]))}"
        )
    codes = np.zeros(len(labelled), np.int8)
    if kinds:
        codes[labelled] = np.searchsorted(np.array(kinds, dtype=object), text[labelled]) + 1
    return codes, ("none", *kinds)


# -- resampling ----------------------------------------------------------------------------------


def _resample(
    times: np.ndarray,
    entity: np.ndarray,
    entity_names: tuple[str, ...] | None,
    values: np.ndarray,
    metric_code: np.ndarray | None,
    names: tuple[str, ...],
    labels: np.ndarray | None,
    label_names: tuple[str, ...] | None,
    o: SeriesOptions,
    source: str,
    where: Where,
) -> Table:
    """Sort, check duplicates, put on the step grid and aggregate; time-major rows."""
    n_entities = 1 if entity_names is None else len(entity_names)
    rows = _Rows.select(times, entity, values, metric_code, labels, np.arange(times.shape[0]))
    rows = rows.sorted()
    _check_duplicates(rows, entity_names, names, o, source, where)

    if o.step_ns is None:
        step = _inferred_step(rows.times, rows.index, o, source, where)
        origin = int(rows.times[0])
    else:
        step = o.step_ns
        origin = _origin(int(rows.times[0]))
    bucket = (rows.times - origin) // step
    first = int(bucket[0])
    bucket -= first
    n_steps = int(bucket[-1]) + 1
    _check_cells(n_steps, n_entities, rows.times.shape[0], step, o)
    grid, anomaly = _grid(rows, bucket * n_entities + rows.entity, n_steps * n_entities, names, o)
    _check_grid(grid, names, entity_names, o, source, origin + first * step, step)
    valid = ~np.isnan(grid)
    stamps = origin + (first + np.arange(n_steps, dtype=np.int64)) * step
    stamps = stamps.view("datetime64[ns]").astype(f"datetime64[{_stamp_unit(origin, step)}]")
    return Table(
        grid.astype(np.float32),
        valid,
        tuple(names),
        source,
        masked=o.nan_policy == "mask",
        timestamps=np.repeat(stamps, n_entities),
        entity=np.tile(np.arange(n_entities, dtype=np.int32), n_steps) if entity_names else None,
        entity_names=entity_names,
        anomaly=anomaly,
        anomaly_names=label_names,
        step_s=step / 1e9,
    )


_DAY_NS = 86_400 * 10**9


def _origin(first_time: int) -> int:
    """pandas' resample origin for a given step: the first day's midnight."""
    return first_time // _DAY_NS * _DAY_NS


def _stamp_unit(origin: int, step: int) -> str:
    return "s" if origin % 10**9 == 0 and step % 10**9 == 0 else "ns"


@dataclasses.dataclass
class _Rows:
    """Records of a time series: times, entity and metric codes, file positions, values."""

    times: np.ndarray  # int64 ns
    entity: np.ndarray  # int64 codes
    metric_key: np.ndarray  # int64 codes (zeros in the wide layout)
    index: np.ndarray  # 0-based position in the file
    values: np.ndarray  # float64 [rows, metrics] (wide) or [rows] (long)
    labels: np.ndarray | None
    long: bool

    @classmethod
    def select(cls, times, entity, values, metric_code, labels, index) -> _Rows:
        """The records of the selected metrics (all of a wide table)."""
        if metric_code is not None:
            keep = metric_code >= 0
            if not keep.all():
                at = np.flatnonzero(keep)
                times, entity, values, metric_code, index = (
                    a[at] for a in (times, entity, values, metric_code, index)
                )
                labels = None if labels is None else labels[at]
        key = np.zeros_like(entity) if metric_code is None else metric_code
        return cls(times, entity, key, index, values, labels, metric_code is not None)

    def __len__(self) -> int:
        return int(self.times.shape[0])

    def take(self, at: Any) -> _Rows:
        labels = None if self.labels is None else self.labels[at]
        return _Rows(
            self.times[at], self.entity[at], self.metric_key[at], self.index[at],
            self.values[at], labels, self.long,
        )  # fmt: skip

    def sorted(self) -> _Rows:
        # Stable time order; ties keep the file order (what `last` and the messages rely on).
        return self.take(np.lexsort((self.index, self.metric_key, self.entity, self.times)))

    @staticmethod
    def join(first: _Rows, second: _Rows) -> _Rows:
        labels = None if first.labels is None else np.concatenate([first.labels, second.labels])
        return _Rows(
            *(np.concatenate([getattr(first, name), getattr(second, name)])
              for name in ("times", "entity", "metric_key", "index", "values")),
            labels, first.long,
        )  # fmt: skip


def _check_duplicates(
    rows: _Rows,
    entity_names: tuple[str, ...] | None,
    names: tuple[str, ...],
    o: SeriesOptions,
    source: str,
    where: Where,
) -> None:
    """Under ``duplicates="raise"``, refuse two sorted rows of one time, entity and metric."""
    if o.duplicates != "raise":
        return
    times, entity, metric_key, index = rows.times, rows.entity, rows.metric_key, rows.index
    same = (np.diff(times) == 0) & (np.diff(entity) == 0) & (np.diff(metric_key) == 0)
    if same.any():
        at = int(np.argmax(same))
        who = f" and entity {entity_names[entity[at]]!r}" if entity_names else ""
        what = f" and metric {names[metric_key[at]]!r}" if rows.long else ""
        raise DataError(
            f"{source}, {where(int(index[at]))} and {where(int(index[at + 1]))}: rows must "
            f"have distinct times per entity, got two for time {_iso(times[at])}{who}{what}; "
            f"set `{o.field('duplicates')}` to 'aggregate' to combine them with "
            f"`{o.field('aggregate')}`"
        )


def _check_cells(n_steps: int, n_entities: int, n_records: int, step: int, o: SeriesOptions):
    if n_steps * n_entities > 100 * n_records + 1_000_000:
        raise ConfigError(
            f"{o.subject('step')} must be coarse enough for the data: a step of "
            f"{_duration(step)} makes {n_steps} steps x {n_entities} entities of "
            f"{n_records} records; choose a longer step"
        )


def _grid(
    rows: _Rows, cell: np.ndarray, n_cells: int, names: tuple[str, ...], o: SeriesOptions
) -> tuple[np.ndarray, np.ndarray | None]:
    """Aggregate the records into cells (step x entity): float64 values, int8 labels."""
    pd = require("pandas", "resampling")
    grid = np.full((n_cells, len(names)), np.nan)
    anomaly = None if rows.labels is None else np.zeros((n_cells, len(names)), np.int8)
    for column, name in enumerate(names):
        if not rows.long:
            cell_values, cells = rows.values[:, column], cell
            cell_labels = rows.labels
        else:
            selected = rows.metric_key == column
            cell_values, cells = rows.values[selected], cell[selected]
            cell_labels = None if rows.labels is None else rows.labels[selected]
        present = ~np.isnan(cell_values)
        how = o.aggregation(name)
        combined = pd.Series(cell_values[present]).groupby(cells[present], sort=False).agg(how)
        grid[combined.index.to_numpy(), column] = combined.to_numpy()
        if cell_labels is not None:
            worst = pd.Series(cell_labels).groupby(cells, sort=False).max()
            anomaly[worst.index.to_numpy(), column] = worst.to_numpy()
    return grid, anomaly


def _check_grid(
    grid: np.ndarray,
    names: tuple[str, ...],
    entity_names: tuple[str, ...] | None,
    o: SeriesOptions,
    source: str,
    start: int,
    step: int,
) -> None:
    """Refuse an aggregate beyond float32, and a gap under ``nan_policy="raise"``.

    ``start``: the time (ns) of the grid's first step.
    """
    n_entities = 1 if entity_names is None else len(entity_names)
    with np.errstate(invalid="ignore"):
        overflow = ~np.isnan(grid) & ~(np.abs(grid) <= FLOAT32_MAX)
    if overflow.any():
        at, column = (int(i) for i in np.argwhere(overflow)[0])
        raise DataError(
            f"{source}: `{names[column]}` aggregated by {o.aggregation(names[column])!r} at "
            f"{_iso(start + at // n_entities * step)} must fit float32 "
            f"(|value| <= {FLOAT32_MAX:.7g}), got {float(grid[at, column])!r}"
        )
    if o.nan_policy == "raise":
        invalid = np.isnan(grid)
        if invalid.any():
            at, column = (int(i) for i in np.argwhere(invalid)[0])
            who = f" for entity {entity_names[at % n_entities]!r}" if entity_names else ""
            raise DataError(
                f"{source}: `{names[column]}` has no value at {_iso(start + at // n_entities * step)}"
                f"{who} (a gap in the data at a step of {_duration(step)}); set "
                f"`{o.field('nan_policy')}` to 'mask' to mask gaps"
            )


def _inferred_step(
    times: np.ndarray, index: np.ndarray, o: SeriesOptions, source: str, where: Where
) -> int:
    """The step of data that are already regular: the most common difference of times.

    Every time must then lie on the grid ``first + k * step`` (missing steps are gaps).
    """
    distinct = np.unique(times)
    if distinct.shape[0] < 2:
        raise DataError(_one_time_message(distinct[0], o, source))
    differences, counts = np.unique(np.diff(distinct), return_counts=True)
    step = int(differences[np.argmax(counts)])
    _check_on_grid(times, index, int(times[0]), step, o, source, where)
    return step


def _one_time_message(time: Any, o: SeriesOptions, source: str) -> str:
    return (
        f"{source}: `{o.time_column}` holds one time only ({_iso(time)}), so no step "
        f"can be inferred; set `{o.field('step')}` (e.g. '5min')"
    )


def _check_on_grid(
    times: np.ndarray,
    index: np.ndarray,
    origin: int,
    step: int,
    o: SeriesOptions,
    source: str,
    where: Where,
) -> None:
    off = (times - origin) % step != 0
    if off.any():
        at = int(np.argmax(off))
        raise DataError(
            f"{source}, {where(int(index[at]))}: `{o.time_column}` must lie on a regular grid "
            f"of {_duration(step)} (the most common step) from {_iso(origin)} when "
            f"`{o.field('step')}` is None, got {_iso(times[at])}; set `{o.field('step')}` "
            "(e.g. '5min') to resample irregular data"
        )


# -- streaming -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Grid:
    """The step grid of a time series, known before its records are streamed.

    ``origin + (first + k) * step`` (ns) is the time of step ``k`` of ``n_steps``.
    """

    origin: int
    first: int
    n_steps: int
    step: int
    inferred: bool  # the step was inferred: every time must lie on the grid

    def start(self, k: int) -> int:
        return self.origin + (self.first + k) * self.step


class StreamResampler:
    """The time-major rows of :func:`build_table`, from records that arrive in time order.

    Each :meth:`add` takes the records of one chunk (all at or after the previous chunk's
    last time); the rows of every step that can no longer receive records (every step
    before the step of the chunk's latest time) are aggregated and returned, the records
    of that last, possibly incomplete, step are carried over to the next chunk. A step
    holds the same records in the same order as in the whole-table path, so the values,
    duplicates, gaps and messages are the same.
    """

    def __init__(
        self,
        grid: Grid,
        names: tuple[str, ...],
        entity_names: tuple[str, ...] | None,
        o: SeriesOptions,
        source: str,
        where: Where,
    ) -> None:
        self.grid, self.names, self.entity_names = grid, names, entity_names
        self.o, self.source, self.where = o, source, where
        self.n_entities = 1 if entity_names is None else len(entity_names)
        self.done = 0  # steps already returned
        self.carry: _Rows | None = None

    def add(
        self,
        times: np.ndarray,
        entity: np.ndarray,
        values: np.ndarray,
        metric_code: np.ndarray | None,
        labels: np.ndarray | None,
        index: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The grid rows (float64 values, int8 labels) completed by these records."""
        rows = _Rows.select(times, entity, values, metric_code, labels, index)
        if self.carry is not None:
            rows = _Rows.join(self.carry, rows)
        if len(rows) == 0:
            return self._flush(rows, self.done)
        rows = rows.sorted()
        g = self.grid
        last = (int(rows.times[-1]) - g.origin) // g.step - g.first
        complete = int(np.searchsorted(rows.times, g.start(last), side="left"))
        self.carry = rows.take(slice(complete, None))
        return self._flush(rows.take(slice(0, complete)), last)

    def finish(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The rows of the remaining steps, up to the last."""
        rows, self.carry = self.carry, None
        if rows is None:
            rows = _Rows.select(*(np.zeros(0, np.int64),) * 2, np.zeros((0, 1)), None, None,
                                np.zeros(0, np.int64))  # fmt: skip
        return self._flush(rows, self.grid.n_steps)

    def _flush(self, rows: _Rows, upto: int) -> tuple[np.ndarray, np.ndarray | None]:
        g, o, n = self.grid, self.o, self.n_entities
        _check_duplicates(rows, self.entity_names, self.names, o, self.source, self.where)
        if g.inferred and len(rows):
            _check_on_grid(rows.times, rows.index, g.origin, g.step, o, self.source, self.where)
        upto = max(upto, self.done)
        bucket = (rows.times - g.origin) // g.step - g.first - self.done
        grid, anomaly = _grid(rows, bucket * n + rows.entity, (upto - self.done) * n, self.names, o)
        _check_grid(grid, self.names, self.entity_names, o, self.source, g.start(self.done), g.step)
        self.done = upto
        return grid, anomaly


def stream_grid(
    first_time: int, last_time: int, n_records: int, n_entities: int, o: SeriesOptions,
    inferred_step: int | None,
) -> Grid:  # fmt: skip
    """The grid of a stream whose first pass found these times (and inferred step)."""
    if o.step_ns is None:
        step, origin = inferred_step, first_time
    else:
        step, origin = o.step_ns, _origin(first_time)
    first = (first_time - origin) // step
    n_steps = (last_time - origin) // step - first + 1
    _check_cells(n_steps, n_entities, n_records, step, o)
    return Grid(origin, first, n_steps, step, o.step_ns is None)


class StepCounter:
    """The most common difference between consecutive distinct times, chunk by chunk.

    Chunks must come in time order (each at or after the previous one's last time).
    """

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.last: int | None = None
        self.n_distinct = 0
        self.first: int | None = None

    def add(self, times: np.ndarray) -> None:
        distinct = np.unique(times)
        if distinct.shape[0] == 0:
            return
        if self.last is None:
            self.first = int(distinct[0])
            sequence = distinct
            self.n_distinct += sequence.shape[0]
        else:
            sequence = np.concatenate([[self.last], distinct[distinct > self.last]])
            self.n_distinct += sequence.shape[0] - 1
        differences, counts = np.unique(np.diff(sequence), return_counts=True)
        for difference, count in zip(differences.tolist(), counts.tolist(), strict=True):
            self.counts[difference] = self.counts.get(difference, 0) + count
        self.last = int(sequence[-1])

    def step(self, o: SeriesOptions, source: str) -> int:
        if self.n_distinct < 2:
            raise DataError(_one_time_message(self.first, o, source))
        best = max(self.counts.values())
        return min(d for d, c in self.counts.items() if c == best)


def time_kind(column: Any) -> tuple[str, np.ndarray | None]:
    """How :func:`_times` reads ``column``: ``("datetime" | "numeric" | "text", numbers)``."""
    pd = require("pandas", "parsing times")
    dtype = column.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime", None
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_complex_dtype(dtype):
        return "other", None
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric", column.to_numpy()
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        return "numeric", numbers.to_numpy()
    return "text", None


def epoch_profile(numbers: np.ndarray) -> tuple[str | None, bool, bool]:
    """(detected unit or None, float dtype, every number whole and below 2**53)."""
    magnitude = np.abs(numbers.astype(np.float64))
    unit = None
    for candidate, low, high in _EPOCH_RANGES:
        if ((magnitude >= low) & (magnitude < high)).all():
            unit = candidate
            break
    is_float = not np.issubdtype(numbers.dtype, np.integer)
    exact = bool(((np.floor(numbers) == numbers).all() and (magnitude < 2.0**53).all())
                 if is_float else True)  # fmt: skip
    return unit, is_float, exact


def _iso(ns: Any) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")) + "Z"


def _duration(ns: int) -> str:
    pd = require("pandas", "formatting durations")
    text = pd.tseries.frequencies.to_offset(pd.Timedelta(int(ns), unit="ns")).freqstr
    return text if text[0].isdigit() else f"1{text}"


def check_batch_size(batch_size: Any, owner: str) -> int | None:
    """``batch_size`` as an int >= 1, or None."""
    if batch_size is None:
        return None
    return check_int(batch_size, "batch_size", owner=owner, why=" or None")
