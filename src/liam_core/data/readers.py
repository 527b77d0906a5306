"""Read your own metrics: CSV and Parquet files, pandas DataFrames and Arrow tables.

Every reader takes the same keyword arguments (the ``data.*`` keys of ``conf/data/csv.yaml``)
and returns a :class:`~liam_core.data.Batch` (or, with ``batch_size``, an iterator of them):

* ``time_column``: the column of times. ISO 8601 text with or without a zone (a zone is
  converted to UTC; text without one is taken as UTC), epoch numbers (seconds or
  milliseconds, detected when every value is in 1e8-1e10 (seconds) or 1e11-1e13
  (milliseconds), i.e. 1973-2286; otherwise set ``time_unit``), or pandas/Arrow datetimes.
  ``None``: a plain table, one record per row in file order, no resampling.
* ``entity_columns``: the columns naming what each row is about (``["host"]``,
  ``["region", "host"]``); several form one key, named ``"eu/web-1"``. Entities are coded
  in sorted order (``Batch.entity``, ``Batch.entity_names``).
* ``metrics``: the metric columns, in this order (``None``: every other column, which must
  then all be numeric); in the long layout, the metric names to keep (``None``: all, sorted).
* ``layout``: ``"wide"`` (a column per metric) or ``"long"`` (``time, entity..., metric,
  value`` rows; ``metric_column`` and ``value_column`` name those two columns).
* ``step``: resample to this fixed step, a pandas offset string (``"5min"``, ``"1h"``);
  bins are left-closed and labelled by their start, from midnight of the first day, as
  ``pandas.DataFrame.resample``. ``None``: the data are already regular: the step is the
  most common difference between consecutive times, and a time off that grid is an error.
* ``aggregate``: how the records of one step and entity become one value: ``"mean"``,
  ``"max"``, ``"min"``, ``"sum"`` or ``"last"``, or a mapping per metric
  (``{"cpu": "max", "errors": "sum"}``; metrics it does not name: mean). Missing cells are
  skipped; a step without any value is missing (also for ``sum``, where pandas gives 0).
* ``duplicates``: two rows with the same time and entity (and metric): ``"raise"`` an
  error naming both lines, or ``"aggregate"`` them with ``aggregate``. Never both kept.
* ``nan_policy``: a missing value, an infinite value or a gap (an entity without data at a
  step): ``"raise"`` an error naming it, or ``"mask"`` it (NaN in ``values``, False in
  ``Batch.mask``; the analysis leaves such rows out, keeping the time layout). A value
  beyond float32's range is always an error, as is text in a metric column. (There is no
  ``"drop"``: dropping rows would break the time-major layout the jobs rely on.)
* ``label_column``: a column marking labelled incidents: ``0``, empty, ``none`` or
  ``false`` is no incident, anything else an incident of that kind. It becomes
  ``Batch.anomaly`` (codes into ``Batch.anomaly_names``, ``"none"`` first), so the jobs
  report precision and recall against it; a step holding an incident is labelled with it.

With a time column, the rows come out time-major: for each step, one row per entity, in
entity order, every entity at every step (a missing one is masked or refused), so
``n_entities`` rows per step and ``step`` seconds per step.

Memory: a small file (whose whole-file read would need under ``_STREAM_BYTES``, 256 MiB, by
``memory_estimate``) is read whole: its selected columns are sorted and resampled in memory,
then cut into batches. A larger CSV or Parquet file is streamed, so that files larger than
memory can be read: a first pass reads only the time, entity, label (and, long, metric-name)
columns chunk by chunk, keeping only distinct values and counts, to know the entities, label
kinds and metric names before the first batch, the first and last time, the number of
records and (``step=None``) the inferred step, and to check that the rows are in time order
(non-decreasing times). The second pass reads ``_CHUNK_ROWS`` rows at a time (blocks of
CSV text cut at line ends and parsed by pyarrow, ``ParquetFile.iter_batches``; a job reads
the file again for each of its passes), resamples every step that is complete
and carries the rows of the last, possibly incomplete, step over to the next chunk, so the
batches are those of the whole-file path (values, masks, timestamps, entities, labels,
``start``), duplicates and gaps included. Memory is then a few chunks, one step's records
and one batch. A file whose rows are not in time order cannot stream: it is read whole
(logged at INFO on ``liam_core.data``), or, if that would not fit in memory, refused with a
``DataError`` asking to sort it. An error found while streaming is named as the whole-file
path names it when the file fits in memory (it is then read whole to find it); otherwise
the first problem met in file order is named (file, line or row, column), and it surfaces
from the iterator once the rows before it were yielded.

Every problem with the content raises :class:`~liam_core.data.DataError` (a
``ValueError``) naming the file, the 1-based line (CSV) or row (Parquet, frames) and the
column, and saying what was expected; a missing file raises
:class:`~liam_core.data.DataFileNotFoundError` (a ``FileNotFoundError``); a bad setting
raises ``ConfigError`` naming it. Files are only ever read.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .._checks import quote
from .._errors import (
    ConfigError,
    ConfigTypeError,
    DataError,
    DataFileNotFoundError,
    EmptyDataError,
    LiamError,
)
from ._batch import Batch, concat_batches
from ._extras import require
from ._timeseries import (
    Aggregation,
    Duplicates,
    Layout,
    NanPolicy,
    SeriesOptions,
    StepCounter,
    StreamResampler,
    Table,
    TimeUnit,
    _check_aggregate_names,
    _check_values,
    _entities,
    _labels,
    _long_metric_names,
    _numbers,
    _refuse_missing,
    _times,
    _wide_metric_names,
    build_table,
    check_batch_size,
    epoch_profile,
    stream_grid,
    time_kind,
)
from ._timeseries import _check_columns_exist as check_columns_exist

__all__ = ["NanPolicy", "read_csv", "read_frame", "read_parquet"]


def _result(table: Table | _Stream, batch_size: int | None) -> Batch | Iterator[Batch]:
    return table.batch() if batch_size is None else table.batches(batch_size)


def read_csv(
    path: str | os.PathLike,
    *,
    time_column: str | None = None,
    entity_columns: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    layout: Layout = "wide",
    metric_column: str = "metric",
    value_column: str = "value",
    label_column: str | None = None,
    step: str | None = None,
    aggregate: Aggregation | Mapping[str, Aggregation] = "mean",
    duplicates: Duplicates = "raise",
    nan_policy: NanPolicy = "raise",
    time_unit: TimeUnit | None = None,
    encoding: str = "utf-8",
    batch_size: int | None = None,
) -> Batch | Iterator[Batch]:
    """Read a CSV file with a header line as a ``Batch`` (or batches of ``batch_size`` rows).

    Arguments as in the module docstring; ``encoding`` is the file's text encoding (any
    Python codec, e.g. ``"latin-1"``). Parsed with pyarrow.

    Example:
        >>> import pathlib, tempfile
        >>> from liam_core.data import read_csv
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
        >>> _ = path.write_text(
        ...     "timestamp,host,cpu\\n"
        ...     "2024-01-01T00:00:00Z,b,10\\n2024-01-01T00:02:00Z,a,30\\n"
        ...     "2024-01-01T00:04:00Z,a,50\\n2024-01-01T00:07:00Z,b,20\\n"
        ... )
        >>> batch = read_csv(path, time_column="timestamp", entity_columns=["host"],
        ...                  step="5min", aggregate="max", nan_policy="mask")
        >>> batch.entity_names, batch.entity.tolist(), batch.values.ravel().tolist()
        (('a', 'b'), [0, 1, 0, 1], [50.0, 10.0, nan, 20.0])
        >>> [str(t) for t in batch.timestamps[::2]], batch.mask.ravel().tolist()
        (['2024-01-01T00:00:00', '2024-01-01T00:05:00'], [True, True, False, True])
        >>> read_csv(path, time_column="time")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        liam_core._errors.DataError: ...metrics.csv: `time_column` must name columns of the data, got 'time', which it does not have; the columns are ['timestamp', 'host', 'cpu']
    """
    options = SeriesOptions(
        time_column=time_column,
        entity_columns=entity_columns,
        metrics=metrics,
        layout=layout,
        metric_column=metric_column,
        value_column=value_column,
        label_column=label_column,
        step=step,
        aggregate=aggregate,
        duplicates=duplicates,
        nan_policy=nan_policy,
        time_unit=time_unit,
        owner="read_csv",
    )
    size = check_batch_size(batch_size, "read_csv")
    check_encoding(encoding, options)
    return _result(_whole_or_streamed(_CsvFile(path, options, encoding)), size)


def read_parquet(
    path: str | os.PathLike,
    *,
    time_column: str | None = None,
    entity_columns: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    layout: Layout = "wide",
    metric_column: str = "metric",
    value_column: str = "value",
    label_column: str | None = None,
    step: str | None = None,
    aggregate: Aggregation | Mapping[str, Aggregation] = "mean",
    duplicates: Duplicates = "raise",
    nan_policy: NanPolicy = "raise",
    time_unit: TimeUnit | None = None,
    batch_size: int | None = None,
) -> Batch | Iterator[Batch]:
    """Read a Parquet file as a ``Batch`` (or batches), with the arguments of :func:`read_csv`.

    Only the needed columns are read (pyarrow). Numeric columns are numbers, timestamp
    columns times; a null is a missing value; rows are named by their 1-based position.

    Example:
        >>> import pathlib, tempfile
        >>> import pandas as pd
        >>> from liam_core.data import read_parquet
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.parquet"
        >>> times = pd.date_range("2024-01-01", periods=3, freq="1h", tz="Europe/Paris")
        >>> pd.DataFrame({"time": times, "cpu": [1.0, 2.0, 4.0]}).to_parquet(path)
        >>> batch = read_parquet(path, time_column="time")
        >>> str(batch.timestamps[0]), batch.values.ravel().tolist()
        ('2023-12-31T23:00:00', [1.0, 2.0, 4.0])
    """
    options = SeriesOptions(
        time_column=time_column,
        entity_columns=entity_columns,
        metrics=metrics,
        layout=layout,
        metric_column=metric_column,
        value_column=value_column,
        label_column=label_column,
        step=step,
        aggregate=aggregate,
        duplicates=duplicates,
        nan_policy=nan_policy,
        time_unit=time_unit,
        owner="read_parquet",
    )
    size = check_batch_size(batch_size, "read_parquet")
    return _result(_whole_or_streamed(_ParquetFile(path, options)), size)


def read_frame(
    frame: Any,
    *,
    time_column: str | None = None,
    entity_columns: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    layout: Layout = "wide",
    metric_column: str = "metric",
    value_column: str = "value",
    label_column: str | None = None,
    step: str | None = None,
    aggregate: Aggregation | Mapping[str, Aggregation] = "mean",
    duplicates: Duplicates = "raise",
    nan_policy: NanPolicy = "raise",
    time_unit: TimeUnit | None = None,
    source: str = "frame",
    batch_size: int | None = None,
) -> Batch | Iterator[Batch]:
    """Read a pandas ``DataFrame`` or a pyarrow ``Table``/``RecordBatch`` already in memory.

    Arguments as :func:`read_csv`; ``source`` names the frame in messages, rows are named
    by their 1-based position. A ``time_column`` may also name the frame's index.

    Example:
        >>> import pandas as pd
        >>> from liam_core.data import read_frame
        >>> frame = pd.DataFrame({
        ...     "time": [1704067500, 1704067200, 1704067200],  # epoch seconds, unsorted
        ...     "metric": ["cpu", "cpu", "errors"], "value": [3.0, 1.0, 7.0]})
        >>> batch = read_frame(frame, time_column="time", layout="long", nan_policy="mask")
        >>> batch.metric_names, batch.values.tolist(), batch.mask.tolist()
        (('cpu', 'errors'), [[1.0, 7.0], [3.0, nan]], [[True, True], [True, False]])
        >>> read_frame(frame, time_column="time", layout="long")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        liam_core._errors.DataError: frame: `errors` has no value at 2024-01-01T00:05:00Z (a gap in the data at a step of 5min); set `nan_policy` to 'mask' to mask gaps
    """
    options = SeriesOptions(
        time_column=time_column,
        entity_columns=entity_columns,
        metrics=metrics,
        layout=layout,
        metric_column=metric_column,
        value_column=value_column,
        label_column=label_column,
        step=step,
        aggregate=aggregate,
        duplicates=duplicates,
        nan_policy=nan_policy,
        time_unit=time_unit,
        owner="read_frame",
    )
    size = check_batch_size(batch_size, "read_frame")
    return _result(frame_table(frame, options, source=source), size)


# -- tables (shared with open_source) -----------------------------------------------------------


def check_encoding(encoding: Any, options: SeriesOptions) -> str:
    """``encoding`` if Python knows the codec, else ``ConfigError`` naming the setting."""
    if not isinstance(encoding, str) or not encoding:
        raise ConfigTypeError(
            f"{options.subject('encoding')} must be a text encoding such as 'utf-8', got "
            f"{type(encoding).__name__}: {quote(encoding)}"
        )
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(
            f"{options.subject('encoding')} must be a text encoding Python knows (utf-8, "
            f"latin-1, cp1252, utf-16, ...), got {quote(encoding)}"
        ) from None
    return encoding


def _existing_file(path: Any, kind: str) -> str:
    try:
        source = os.fspath(path)
    except TypeError:
        raise ConfigTypeError(
            f"`path` must be a file path (str or os.PathLike), got {type(path).__name__}: "
            f"{quote(path)}"
        ) from None
    if os.path.isdir(source):
        raise DataFileNotFoundError(f"{source}: is a directory; expected a {kind} file")
    if not os.path.exists(source):
        raise DataFileNotFoundError(
            f"{source}: no such file (relative paths are resolved against the working "
            f"directory {os.getcwd()})"
        )
    return source


def _check_header(names: list[str], source: str, where: str) -> None:
    for position, name in enumerate(names):
        if not name:
            raise DataError(
                f"{source}, {where}: every column must have a name, got an empty name at "
                f"position {position + 1} of {quote(names)}"
            )
    twice = [name for name in dict.fromkeys(names) if names.count(name) > 1]
    if twice:
        raise DataError(
            f"{source}, {where}: column names must be distinct, got {twice[0]!r} "
            f"{names.count(twice[0])} times in {quote(names)}"
        )
    if all(_is_number(name) for name in names):
        raise DataError(
            f"{source}, {where}: the first line must name the columns (a header such as "
            f"timestamp,host,cpu), got numbers {quote(names)}; add a header line"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _needed(header: list[str], options: SeriesOptions) -> list[str] | None:
    """The columns to read (``None``: all of them)."""
    if options.layout == "wide" and options.metrics is None:
        return None
    roles = [options.time_column, *options.entity_columns, options.label_column]
    if options.layout == "long":
        roles += [options.metric_column, options.value_column]
    else:
        roles += list(options.metrics or ())
    return [name for name in header if name in roles]


def open_series(
    path: Any, options: SeriesOptions, *, kind: Literal["csv", "parquet"], encoding: str = "utf-8"
) -> Table | _Stream:
    """A CSV or Parquet file as a :class:`Table`, or, when large, as a stream that reads the
    file again for every call of ``batches`` (for ``open_source``: one read per pass)."""
    if kind == "csv":
        return _whole_or_streamed(_CsvFile(path, options, encoding))
    return _whole_or_streamed(_ParquetFile(path, options))


class _CsvFile:
    """A checked CSV file (exists, decodes, has a header naming the columns), read whole or
    in chunks."""

    kind = "CSV"

    def __init__(self, path: Any, options: SeriesOptions, encoding: str = "utf-8") -> None:
        self.pa = require("pyarrow", "read_csv()")
        self.pacsv = require("pyarrow.csv", "read_csv()")
        require("pandas", "read_csv()")
        source = _existing_file(path, "CSV")
        if os.path.getsize(source) == 0:
            raise EmptyDataError(f"{source}: the file is empty; expected a header line")
        _check_decodes(source, encoding)
        lines = _CsvLines(source, encoding)
        header = lines.header()
        if header is None:
            raise EmptyDataError(f"{source}: the file holds only blank lines; expected a header")
        header_line, names = header
        _check_header(names, source, f"line {header_line}")
        check_columns_exist(names, options, source)
        self.source, self.options, self.encoding = source, options, encoding
        self.names, self.where, self.header_line = names, lines, header_line
        self.include = _needed(names, options)

    def memory_estimate(self) -> int:
        """Bytes the whole-file path needs, roughly."""
        return os.path.getsize(self.source) * _WHOLE_FILE_FACTOR

    def _options(self, include: list[str] | None, types: dict, on_invalid: Any, block: int | None):
        pacsv = self.pacsv
        read = pacsv.ReadOptions(encoding=self.encoding)
        if block is not None:  # streaming: one block at a time, no read-ahead
            read = pacsv.ReadOptions(encoding=self.encoding, block_size=block, use_threads=False)
        return {
            "read_options": read,
            "parse_options": pacsv.ParseOptions(invalid_row_handler=on_invalid),
            "convert_options": pacsv.ConvertOptions(
                include_columns=include, column_types=types, strings_can_be_null=True
            ),
        }

    def _read_error(self, invalid: list, error: Exception) -> DataError:
        if invalid:
            expected, actual, text = invalid[0]
            return DataError(
                f"{self.source}, line {self.where.first_ragged(expected)}: a row must have "
                f"{expected} fields like the header, got {actual}: {quote(text)} (quote a "
                "value that holds a comma)"
            )
        return DataError(f"{self.source}: not a readable CSV file ({quote(str(error))})")

    def whole(self) -> Table:
        invalid: list[tuple[int, int, str]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.expected_columns, row.actual_columns, row.text))
            return "error"

        o = self.options
        text_types = {o.time_column: self.pa.string()} if o.time_column else {}
        try:
            table = self.pacsv.read_csv(
                self.source, **self._options(self.include, text_types, on_invalid, None)
            )
        except (self.pa.ArrowInvalid, UnicodeError) as error:
            raise self._read_error(invalid, error) from None
        return build_table(table.to_pandas(), o, source=self.source, where=self.where)

    def chunks(self, columns: list[str], numeric: set[str]) -> Iterator[tuple[int, Any]]:
        """(position of the first row, pandas frame) of consecutive chunks of ``columns``:
        those of ``numeric`` as float64, the others as text (``None`` where empty)."""
        pa = self.pa
        invalid: list[tuple[int, int, str]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.expected_columns, row.actual_columns, row.text))
            return "error"

        types = {name: pa.float64() if name in numeric else pa.string() for name in columns}
        options = self._options(columns, types, on_invalid, _BLOCK_BYTES)
        base = 0
        try:
            for table in self._tables(options):
                for block in table.to_batches(_CHUNK_ROWS):
                    yield base, block.to_pandas()
                    base += block.num_rows
        except (pa.ArrowInvalid, UnicodeError) as error:
            raise self._conversion_error(columns, error) or self._read_error(
                invalid, error
            ) from None

    def _tables(self, options: dict) -> Iterator[Any]:
        """The file parsed a block of about ``_BLOCK_BYTES`` at a time.

        In an encoding where a newline is the byte ``\\n`` (UTF-8, Latin-1, ...), the
        blocks are cut at line ends here and each is parsed alone with the header's column
        names: pyarrow's own streaming reader (``open_csv``) reads ahead as fast as it can,
        so it holds most of a large file in memory when its batches are consumed slowly.
        Rows never span lines (``newlines_in_values`` is off), so the rows are the same.
        """
        pacsv = self.pacsv
        if "\n,".encode(self.encoding) != b"\n,":  # UTF-16, UTF-32: pyarrow's reader
            for batch in pacsv.open_csv(self.source, **options):
                yield self.pa.Table.from_batches([batch])
            return
        read = options["read_options"]
        for block in _line_blocks(self.source, _BLOCK_BYTES, self.header_line):
            table = pacsv.read_csv(
                self.pa.py_buffer(block),
                read_options=pacsv.ReadOptions(
                    encoding=read.encoding, use_threads=False, block_size=len(block) + 1,
                    column_names=self.names,
                ),
                parse_options=options["parse_options"],
                convert_options=options["convert_options"],
            )  # fmt: skip
            if table.num_rows:
                yield table

    def _conversion_error(self, columns: list[str], error: Exception) -> DataError | None:
        """A value a streamed metric column cannot hold, named by line and column."""
        pattern = (
            r"CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to double: "
            r"invalid value '(.*)'$"
        )
        found = re.search(pattern, str(error), re.S)
        if found is None or int(found[1]) >= len(self.names):
            return None
        position, value = int(found[1]), found[2]  # pyarrow counts the file's columns
        name = self.names[position]
        if name not in columns:
            return None
        pd = require("pandas", "read_csv()")
        parsed = pd.to_datetime(pd.Series([value]), errors="coerce", format="ISO8601")
        hint = "; is it the time column? set `time_column`" if parsed.notna().all() else ""
        for index, (line, fields) in enumerate(self.where._rows()):
            if index and position < len(fields) and fields[position] == value:
                return DataError(
                    f"{self.source}, line {line}: `{name}` must be a number, got "
                    f"{quote(value)}{hint}"
                )
        return None

    def retype(self, raw: Any) -> Any:
        """Distinct text values (a frame) as the types pyarrow infers for the whole column."""
        pacsv = self.pacsv
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in raw.itertuples(index=False):
            writer.writerow(["" if value is None else value for value in row])
        data = buffer.getvalue().encode("utf-8")
        names = [f"c{i}" for i in range(raw.shape[1])]
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                column_names=names, block_size=max(len(data) + 1, 1 << 20)
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
        return table.to_pandas().set_axis(list(raw.columns), axis=1)


class _ParquetFile:
    """A checked Parquet file (readable schema naming the columns), read whole or in chunks."""

    kind = "Parquet"

    def __init__(self, path: Any, options: SeriesOptions) -> None:
        self.pa = require("pyarrow", "read_parquet()")
        self.pq = require("pyarrow.parquet", "read_parquet()")
        require("pandas", "read_parquet()")
        source = _existing_file(path, "Parquet")
        self.source, self.options, self.where = source, options, _row
        with self._open() as parquet:
            try:
                names = list(parquet.schema_arrow.names)
                metadata = parquet.metadata
                self.uncompressed = sum(
                    metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)
                )
            except (self.pa.ArrowException, OSError, UnicodeError, ValueError, KeyError,
                    TypeError) as error:  # fmt: skip
                raise DataError(
                    f"{source}: not a readable Parquet file, its schema is corrupt "
                    f"({quote(str(error))})"
                ) from None
        _check_header(names, source, "schema")
        check_columns_exist(names, options, source)
        self.names = names
        self.include = _needed(names, options)

    def _open(self) -> Any:
        try:
            return self.pq.ParquetFile(self.source)
        except (self.pa.ArrowException, OSError, UnicodeError, ValueError) as error:
            # (a corrupt footer can hold column paths that are not UTF-8)
            raise DataError(
                f"{self.source}: not a readable Parquet file ({quote(str(error))})"
            ) from None

    def _corrupt(self, error: Exception) -> DataError:
        return DataError(
            f"{self.source}: not a readable Parquet file, its data are corrupt ({quote(str(error))})"
        )

    def memory_estimate(self) -> int:
        return max(self.uncompressed, os.path.getsize(self.source)) * _WHOLE_FILE_FACTOR

    def whole(self) -> Table:
        pa = self.pa
        with self._open() as parquet:
            try:
                table = parquet.read(columns=self.include)
                # The pandas metadata (JSON in the footer) is read here: corrupt bytes there
                # are a decode or JSON error.
                frame = table.to_pandas()
            except LiamError:
                raise
            except (pa.ArrowException, OSError, UnicodeError, ValueError, KeyError,
                    TypeError) as error:  # fmt: skip
                raise self._corrupt(error) from None
        return build_table(frame, self.options, source=self.source, where=_row)

    def chunks(self, columns: list[str], numeric: set[str]) -> Iterator[tuple[int, Any]]:
        pa = self.pa
        base = 0
        with self._open() as parquet:
            batches = parquet.iter_batches(batch_size=_CHUNK_ROWS, columns=columns)
            while True:
                try:
                    block = next(batches, None)
                    if block is None:
                        break
                    frame = block.to_pandas()
                except LiamError:
                    raise
                except (pa.ArrowException, OSError, UnicodeError, ValueError, KeyError,
                        TypeError) as error:  # fmt: skip
                    raise self._corrupt(error) from None
                yield base, frame
                base += block.num_rows

    def retype(self, raw: Any) -> Any:
        return raw


def frame_table(frame: Any, options: SeriesOptions, *, source: str = "frame") -> Table:
    """A pandas DataFrame or a pyarrow Table/RecordBatch as a :class:`Table`."""
    pd = require("pandas", "read_frame()")
    if not isinstance(frame, pd.DataFrame):
        to_pandas = getattr(frame, "to_pandas", None)
        if to_pandas is None or not hasattr(frame, "schema"):
            got = type(frame).__name__
            if isinstance(frame, dict):  # say what it holds; its values may be long arrays
                got += f" of the keys {quote(list(frame))}: pass pandas.DataFrame(it)"
            else:
                got += f": {quote(frame)}"
            raise ConfigTypeError(
                f"read_frame: `frame` must be a pandas DataFrame or a pyarrow Table or "
                f"RecordBatch, got {got}"
            )
        frame = to_pandas()
    names = [str(name) for name in frame.columns]
    if (
        options.time_column is not None
        and options.time_column not in names
        and frame.index.name == options.time_column
    ):
        frame = frame.reset_index()
        names = [str(name) for name in frame.columns]
    _check_header(names, source, "columns")
    return build_table(frame, options, source=source, where=_row)


def _line_blocks(path: str, size: int, skip_lines: int = 0) -> Iterator[bytes]:
    """The bytes of a file after its first ``skip_lines`` lines, in blocks of about ``size``
    bytes, each ending at a line end (the last one: at the end of the file)."""
    with open(path, "rb") as file:
        rest = b""
        while data := file.read(size):
            data = rest + data
            while skip_lines and (end := data.find(b"\n")) >= 0:
                data, skip_lines = data[end + 1 :], skip_lines - 1
            cut = 0 if skip_lines else data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                yield data[:cut]
        if rest and not skip_lines:
            yield rest


def _row(position: int) -> str:
    return f"row {position + 1}"


def _check_decodes(source: str, encoding: str) -> None:
    """Refuse bytes that ``encoding`` cannot decode, naming their line and column."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(source, "rb") as file:
            while chunk := file.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        return
    except UnicodeError:  # UnicodeDecodeError, or a codec's own (utf-16 without its BOM)
        pass
    with open(source, "rb") as file:
        data = file.read()
    try:
        data.decode(encoding)
        return
    except UnicodeDecodeError as error:
        start, end = error.start, error.end
    except UnicodeError as error:
        raise DataError(
            f"{source}: the bytes must be text in the encoding {encoding!r}, got bytes it "
            f"cannot decode ({quote(str(error))}); set `encoding` (`data.encoding` in a "
            "config) to the file's encoding, e.g. 'utf-8', 'latin-1' or 'cp1252'"
        ) from None
    line = data.count(b"\n", 0, start) + 1
    line_start = data.rfind(b"\n", 0, start) + 1
    prefix = data[line_start:start].decode(encoding, errors="replace")
    header = data.split(b"\n", 1)[0].decode(encoding, errors="replace").rstrip("\r")
    names = next(csv.reader([header.lstrip("\ufeff")]), [])
    position = prefix.count(",")
    column = f", column {names[position]!r}" if position < len(names) else ""
    raise DataError(
        f"{source}, line {line}{column}: the bytes must be text in the encoding "
        f"{encoding!r}, got {quote(data[start : max(end, start + 1)])}; set `encoding` "
        "(`data.encoding` in a config) to the file's encoding, e.g. 'latin-1' or 'cp1252'"
    )


class _CsvLines:
    """The header of a CSV file, and the physical line of a data row (for messages).

    pyarrow skips blank lines and a quoted value may span lines, so a data row's line is
    found by reading the file with Python's ``csv`` module, only when a message needs it.
    """

    def __init__(self, source: str, encoding: str) -> None:
        self.source, self.encoding = source, encoding

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        """(first physical line, fields) of every non-blank row, the header first."""
        encoding = "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding
        with open(self.source, encoding=encoding, newline="") as file:
            reader = csv.reader(file)
            try:
                for fields in reader:
                    if fields:
                        spans = sum(field.count("\n") for field in fields)
                        yield reader.line_num - spans, fields
            except (csv.Error, UnicodeError):
                return

    def header(self) -> tuple[int, list[str]] | None:
        return next(iter(self._rows()), None)

    def line(self, row: int) -> int | None:
        """The physical line of data row ``row`` (0-based, the header not counted)."""
        for index, (line, _) in enumerate(self._rows()):
            if index == row + 1:
                return line
        return None

    def first_ragged(self, expected: int) -> int | str:
        for index, (line, fields) in enumerate(self._rows()):
            if index and len(fields) != expected:
                return line
        return "?"

    def __call__(self, row: int) -> str:
        line = self.line(row)
        return f"line {line}" if line is not None else f"data row {row + 1}"


# -- streaming ----------------------------------------------------------------------------------

log = logging.getLogger("liam_core.data")

_STREAM_BYTES = 256 << 20
"""A file whose whole-file path would need at least this many bytes (see ``memory_estimate``)
is streamed; a smaller one is read whole (faster, the same batches)."""
_CHUNK_ROWS = 1 << 16
"""Rows per chunk of a streamed file."""
_BLOCK_BYTES = 8 << 20
"""Bytes of CSV text pyarrow parses at a time when streaming."""
_WHOLE_FILE_FACTOR = 6
"""Memory of the whole-file path per byte of file (text, Arrow columns, pandas, numpy)."""
_SINGLE_BATCH_ROWS = 1 << 16
"""Rows per batch when a streamed file becomes one ``Batch`` (they are then joined)."""


class _Unstreamable(Exception):
    """The file cannot be streamed with the same results (its rows are not in time order...)."""


def _available_memory() -> int | None:
    """Bytes this process may still allocate (MemAvailable, within a cgroup's limit)."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as file:
            limit = file.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as file:
                found.append(int(limit) - int(file.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _fits_in_memory(file: Any) -> bool:
    available = _available_memory()
    return available is None or file.memory_estimate() < available


def _whole_or_streamed(file: Any) -> Table | _Stream:
    """A small ``file`` read whole, a large one as a stream (read chunk by chunk)."""
    if file.memory_estimate() >= _STREAM_BYTES:
        try:
            return _Stream(file)
        except (LiamError, _Unstreamable) as error:
            _fall_back(file, error)
    return file.whole()


def _fall_back(file: Any, error: Exception) -> None:
    """Return to read ``file`` whole after ``error``, or raise when it would not fit."""
    if _fits_in_memory(file):
        log.info("%s: read whole, not streamed: %s", file.source, error)
        return
    if isinstance(error, _Unstreamable):
        raise DataError(
            f"{file.source}: {error}, so the file cannot be streamed, and it is too large to "
            f"be read whole (about {file.memory_estimate() >> 20} MiB); sort the file by "
            f"`{file.options.field('time_column')}` (e.g. `sort -t, -k1,1` with the time "
            "first and a header kept apart, or pandas' sort_values)"
        ) from None
    raise error


def _shifted(where: Any, base: int) -> Any:
    return lambda row: where(base + row)


class _Distinct:
    """The distinct values (or combinations) of some columns, gathered chunk by chunk."""

    def __init__(self, columns: list[str]) -> None:
        self.columns, self.parts = columns, []

    def add(self, frame: Any) -> None:
        self.parts.append(frame[self.columns].drop_duplicates())
        if len(self.parts) >= 64:
            self.parts = [self.frame()]

    def frame(self) -> Any:
        pd = require("pandas", "streaming")
        return pd.concat(self.parts, ignore_index=True).drop_duplicates(ignore_index=True)


class _Codes:
    """The code of each row of a chunk, from the codes of the distinct values (``raw``)."""

    def __init__(self, raw: Any, codes: np.ndarray, missing: int = 0) -> None:
        pd = require("pandas", "streaming")
        self.columns = list(raw.columns)
        if len(self.columns) == 1:
            present = raw[self.columns[0]].notna().to_numpy()
            self.index = pd.Index(raw[self.columns[0]][present])
            self.codes = np.asarray(codes)[present]
        else:
            self.index = pd.MultiIndex.from_frame(raw)
            self.codes = np.asarray(codes)
        self.missing = missing

    def __call__(self, chunk: Any) -> np.ndarray:
        pd = require("pandas", "streaming")
        if len(self.columns) == 1:
            column = chunk[self.columns[0]]
            present = column.notna().to_numpy()
            out = np.full(len(column), self.missing, dtype=self.codes.dtype)
            at = self.index.get_indexer(column[present])
            out[present] = self.codes[at]
        else:
            at = self.index.get_indexer(pd.MultiIndex.from_frame(chunk[self.columns]))
            out = self.codes[at]
        if (at < 0).any():  # every value was seen by the first pass
            raise _Unstreamable("the file changed while it was read")
        return out


class _Stream:
    """A file read in chunks: a first pass, then :meth:`batches` (a second pass).

    The first pass reads only the time, entity, label and metric-name columns, chunk by
    chunk: it finds the entities, the label kinds and the metric names (which every batch
    carries), refuses missing entities and unreadable times, checks that the times come in
    order (else :class:`_Unstreamable`), and finds the first and last time, the number of
    records and, for ``step=None``, the step. It keeps only distinct values and counts.
    """

    def __init__(self, file: Any) -> None:
        self.file, self.o, self.source = file, file.options, file.source
        o = self.o
        columns = file.include if file.include is not None else list(file.names)
        roles = {o.time_column, *o.entity_columns, o.label_column}
        if o.layout == "long":
            roles |= {o.metric_column, o.value_column}
        self.columns = columns
        entities = _Distinct(list(o.entity_columns))
        labels = _Distinct([o.label_column]) if o.label_column else None
        metrics = _Distinct([o.metric_column]) if o.layout == "long" else None
        counter = StepCounter()
        self.rows = self.records = 0
        self.time_kind: str | None = None
        self.unit, self.rounding = o.time_unit, False
        first_time = last_time = None
        selected = set(o.metrics) if o.metrics is not None else None
        pass_columns = [name for name in columns if name in roles and name != o.value_column]
        for base, chunk in file.chunks(pass_columns, set()) if pass_columns else ():
            where = _shifted(file.where, base)
            self.rows += len(chunk)
            if labels is not None:
                labels.add(chunk)
            if o.time_column is None:
                continue
            for name in o.entity_columns:
                _refuse_missing(chunk[name], name, "an entity name", self.source, where)
            if o.entity_columns:
                entities.add(chunk)
            keep = None
            if metrics is not None:
                names = chunk[o.metric_column]
                _refuse_missing(names, o.metric_column, "a metric name", self.source, where)
                metrics.add(chunk)
                if selected is not None:
                    keep = names.astype(str).isin(selected).to_numpy()
            times = self._times(chunk[o.time_column], where)
            if keep is not None:
                times = times[keep]
            if times.shape[0] == 0:
                continue
            if (last_time is not None and times[0] < last_time) or (np.diff(times) < 0).any():
                raise _Unstreamable(f"the rows are not in time order (by `{o.time_column}`)")
            first_time = int(times[0]) if first_time is None else first_time
            last_time = int(times[-1])
            self.records += times.shape[0]
            if o.step_ns is None:
                counter.add(times)
        if not pass_columns:  # a plain table without labels: nothing to learn first
            self.rows = -1
        if self.rows == 0:
            raise EmptyDataError(f"{self.source}: no data rows; expected at least one")
        self.label_codes = self.label_names = None
        if labels is not None:
            distinct = labels.frame()
            typed = file.retype(distinct)[o.label_column]
            codes, self.label_names = _labels(typed, o.label_column, self.source, file.where)
            self.label_codes = _Codes(distinct, codes)
        if o.layout == "wide":
            self.names = _wide_metric_names(columns, roles, o, self.source)
            self.metric_codes = None
        else:
            distinct = metrics.frame()
            raw = distinct[o.metric_column].astype(str).to_numpy(dtype=object)
            text = file.retype(distinct)[o.metric_column].astype(str).to_numpy(dtype=object)
            names = _long_metric_names(tuple(sorted(set(text))), o, self.source)
            if selected is not None and any(
                (a in selected) != (b in selected) for a, b in zip(raw, text, strict=True)
            ):
                raise _Unstreamable("the metric names are numbers written in several ways")
            lookup = {name: code for code, name in enumerate(names)}
            codes = np.array([lookup.get(name, -1) for name in text], dtype=np.int64)
            self.names, self.metric_codes = tuple(names), _Codes(distinct, codes, -1)
        _check_aggregate_names(self.names, o)
        if o.time_column is None:
            return
        self.entity_codes, self.entity_names = None, None
        if o.entity_columns:
            distinct = entities.frame()
            codes, self.entity_names = _entities(
                file.retype(distinct), o.entity_columns, self.source, file.where
            )
            self.entity_codes = _Codes(distinct, codes)
        n_entities = 1 if self.entity_names is None else len(self.entity_names)
        step = counter.step(o, self.source) if o.step_ns is None else None
        self.grid = stream_grid(first_time, last_time, self.records, n_entities, o, step)
        self.time_options = (
            o if self.unit == o.time_unit else dataclasses.replace(o, time_unit=self.unit)
        )

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.names

    @property
    def n_entities(self) -> int:
        return (
            1 if self.o.time_column is None or self.entity_names is None else len(self.entity_names)
        )

    @property
    def step_s(self) -> float | None:
        return None if self.o.time_column is None else self.grid.step / 1e9

    @property
    def n_rows(self) -> int | None:
        """The rows the batches hold (``None``: a plain table not counted by the first pass)."""
        if self.o.time_column is None:
            return self.rows if self.rows >= 0 else None
        return self.grid.n_steps * self.n_entities

    def batch(self) -> Batch:
        """The whole file as one ``Batch`` (what ``read_csv(..., batch_size=None)`` returns)."""
        return concat_batches(list(self.batches(_SINGLE_BATCH_ROWS)))

    def _times(self, column: Any, where: Any) -> np.ndarray:
        """The times of a chunk, read as the whole column would be (same unit, rounding)."""
        o = self.o
        kind, numbers = time_kind(column)
        if self.time_kind is not None and kind != self.time_kind:
            raise _Unstreamable(f"`{o.time_column}` mixes epoch numbers and other times")
        if kind == "numeric" and numbers is not None and len(numbers):
            unit, is_float, exact = epoch_profile(numbers)
            if o.time_unit is None and unit is not None:
                if self.unit is not None and unit != self.unit:
                    raise _Unstreamable(
                        f"`{o.time_column}` holds epoch seconds in some rows and milliseconds "
                        "in others"
                    )
                self.unit = unit
            if is_float and not exact and not self.rounding:
                if self.time_kind is not None:
                    raise _Unstreamable(f"`{o.time_column}` has fractional epoch times late")
                self.rounding = True
        self.time_kind = kind
        options = o if self.unit == o.time_unit else dataclasses.replace(o, time_unit=self.unit)
        return _times(column, options, self.source, where, rounding=self.rounding)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """The batches of the whole-file path, each made once its rows are complete.

        An error found on the way that the whole-file path would name differently (or
        earlier) is named as it would: the file is then read whole, if it fits in memory.
        """
        emitted = 0
        try:
            for batch in self._batches(batch_size):
                emitted = batch.stop
                yield batch
        except (LiamError, _Unstreamable) as error:
            _fall_back(self.file, error)
            for batch in self.file.whole().batches(batch_size):
                if batch.start >= emitted:
                    yield batch

    def _batches(self, batch_size: int) -> Iterator[Batch]:
        o, file = self.o, self.file
        numeric = [o.value_column] if o.layout == "long" else list(self.names)
        needed = {o.time_column, *o.entity_columns, o.label_column, *numeric}
        if o.layout == "long":
            needed.add(o.metric_column)
        columns = [name for name in self.columns if name in needed]
        output = _Output(self, batch_size)
        resampler = None
        if o.time_column is not None:
            resampler = StreamResampler(
                self.grid, self.names, self.entity_names, o, self.source, file.where
            )
        for base, chunk in file.chunks(columns, set(numeric)):
            where = _shifted(file.where, base)
            labels = None if self.label_codes is None else self.label_codes(chunk)
            metric_code = None
            if o.layout == "wide":
                values = np.stack(
                    [_numbers(chunk[name], name, self.source, where) for name in self.names],
                    axis=1,
                )
                _check_values(values, list(self.names), o, self.source, where)
                if resampler is None:
                    yield from output.add_plain(values, labels)
                    continue
            else:
                metric_code = self.metric_codes(chunk)
                values = _numbers(chunk[o.value_column], o.value_column, self.source, where)
                values = np.array(values[:, None])  # a chunk's column may be read-only
                _check_values(values, [o.value_column], o, self.source, where,
                              rows=metric_code >= 0)  # fmt: skip
                values = values[:, 0]
            times = _times(chunk[o.time_column], self.time_options, self.source, where,
                           rounding=self.rounding)  # fmt: skip
            entity = (np.zeros(len(chunk), np.int64) if self.entity_codes is None
                      else self.entity_codes(chunk).astype(np.int64))  # fmt: skip
            index = base + np.arange(len(chunk), dtype=np.int64)
            yield from output.add(*resampler.add(times, entity, values, metric_code, labels, index))
        if resampler is not None:
            yield from output.add(*resampler.finish())
        yield from output.finish()


class _Output:
    """Rows as they are completed, cut into batches of ``batch_size`` rows."""

    def __init__(self, stream: _Stream, batch_size: int) -> None:
        self.stream, self.size = stream, batch_size
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self.buffered = self.start = 0

    def add(self, grid: np.ndarray, anomaly: np.ndarray | None) -> Iterator[Batch]:
        if grid.shape[0]:
            self.parts.append((grid.astype(np.float32), ~np.isnan(grid), anomaly))
            self.buffered += grid.shape[0]
        while self.buffered >= self.size:
            yield self._batch(self.size)

    def add_plain(self, values: np.ndarray, labels: np.ndarray | None) -> Iterator[Batch]:
        anomaly = None if labels is None else np.repeat(labels[:, None], values.shape[1], axis=1)
        valid = np.isfinite(values)
        if values.shape[0]:
            self.parts.append((values.astype(np.float32), valid, anomaly))
            self.buffered += values.shape[0]
        while self.buffered >= self.size:
            yield self._batch(self.size)

    def finish(self) -> Iterator[Batch]:
        if self.buffered:
            yield self._batch(self.buffered)

    def _take(self, n: int) -> list[np.ndarray | None]:
        taken, left = [], n
        while left:
            part = self.parts[0]
            rows = part[0].shape[0]
            if rows <= left:
                taken.append(part)
                self.parts.pop(0)
                left -= rows
            else:
                taken.append(tuple(None if a is None else a[:left] for a in part))
                self.parts[0] = tuple(None if a is None else a[left:] for a in part)
                left = 0
        self.buffered -= n
        return [
            None if taken[0][k] is None else np.concatenate([part[k] for part in taken])
            for k in range(3)
        ]

    def _batch(self, n: int) -> Batch:
        s = self.stream
        values, valid, anomaly = self._take(n)
        start, self.start = self.start, self.start + n
        timestamps = entity = None
        if s.o.time_column is not None:
            g = s.grid
            n_entities = 1 if s.entity_names is None else len(s.entity_names)
            rows = np.arange(start, start + n, dtype=np.int64)
            stamps = g.origin + (g.first + rows // n_entities) * g.step
            unit = "s" if g.origin % 10**9 == 0 and g.step % 10**9 == 0 else "ns"
            timestamps = stamps.view("datetime64[ns]").astype(f"datetime64[{unit}]")
            if s.entity_names is not None:
                entity = (rows % n_entities).astype(np.int32)
        return Batch(
            values,
            s.names,
            start=start,
            mask=valid if s.o.nan_policy == "mask" else None,
            timestamps=timestamps,
            entity=entity,
            anomaly=anomaly,
            source=s.source,
            entity_names=s.entity_names if s.o.time_column is not None else None,
            anomaly_names=s.label_names,
        )
