"""Read named metric columns from CSV and Parquet files into ``Batch``es, streaming if asked.

A bad cell (text in a numeric column, a missing or infinite value) raises an error naming
the file, the 1-based data row and the column, unless ``nan_policy="mask"``: then the
cell holds NaN and ``Batch.mask`` is False there. Files are only ever read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np

from .._checks import check_choice, check_int, check_names, quote
from .._errors import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
)
from ._batch import Batch, concat_batches
from ._extras import require

__all__ = ["NanPolicy", "read_csv", "read_parquet"]

NanPolicy = Literal["raise", "mask"]
"""What a reader does with a bad cell: raise an error naming it, or mask it."""

_CHUNK_ROWS = 65_536  # rows parsed at a time when the caller wants the whole file

Columns = Mapping[str, str] | Sequence[str] | None


@overload
def read_csv(
    path: str | os.PathLike,
    columns: Columns = None,
    *,
    nan_policy: NanPolicy = "raise",
    batch_size: None = None,
) -> Batch: ...
@overload
def read_csv(
    path: str | os.PathLike,
    columns: Columns = None,
    *,
    nan_policy: NanPolicy = "raise",
    batch_size: int,
) -> Iterator[Batch]: ...
def read_csv(path, columns=None, *, nan_policy="raise", batch_size=None):
    """Read metric columns of a CSV file (with a header line) as a ``Batch`` or a stream of them.

    Args:
        path: the CSV file.
        columns: file column -> metric name (``{"prod_u_h": "productivity"}``), a list of
            columns kept under their own names, or ``None`` for every column. Metrics come
            in this order.
        nan_policy: ``"raise"``: a bad cell raises ``InvalidTypeError`` (text) or
            ``InvalidValueError`` (missing, NaN or infinite) naming the file, the data row
            (1-based, the header not counted) and the column; ``"mask"``: the cell holds NaN
            and the batch's ``mask`` is False there.
        batch_size: ``None`` reads the whole file into one ``Batch``; an int returns an
            iterator of batches of at most that many rows, parsed as they are consumed.

    Returns:
        A ``Batch`` (or an iterator of them) with ``values`` float32 [rows, metrics],
        ``metric_names``, ``start`` (the 0-based data row of its first row) and, with
        ``nan_policy="mask"``, ``mask``.

    Example:
        >>> import pathlib, tempfile
        >>> from liam_core.data import read_csv
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "shifts.csv"
        >>> _ = path.write_text("team,prod,qual\\n1,85.5,88.7\\n2,90.0,\\n")
        >>> batch = read_csv(path, {"prod": "productivity", "qual": "quality"}, nan_policy="mask")
        >>> batch.metric_names, batch.values[0].tolist(), batch.mask[1].tolist()
        (('productivity', 'quality'), [85.5, 88.69999694824219], [True, False])
        >>> read_csv(path, ["qual"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        liam_core._errors.InvalidValueError: ...shifts.csv, data row 2 (1-based, header not counted), column 'qual': missing value; expected a number
    """
    pd = require("pandas", "read_csv()")
    source = os.fspath(path)
    policy, size = _check_options(nan_policy, batch_size, "read_csv")
    try:
        header = list(pd.read_csv(source, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise EmptyInputError(f"{source}: the file is empty; expected a header line") from None
    mapping = _check_columns(columns, header, source, "read_csv")

    def chunks() -> Iterator[tuple[int, dict[str, Any]]]:
        reader = pd.read_csv(
            source,
            usecols=list(mapping),
            chunksize=size or _CHUNK_ROWS,
            skip_blank_lines=False,  # a blank line is a row of missing values, and rows count
            low_memory=False,
        )
        start = 0
        with reader:
            for frame in reader:
                yield start, {name: frame[name] for name in mapping}
                start += len(frame)

    where = "data row {row} (1-based, header not counted)"
    return _read(chunks(), mapping, policy, size, source, where)


@overload
def read_parquet(
    path: str | os.PathLike,
    columns: Columns = None,
    *,
    nan_policy: NanPolicy = "raise",
    batch_size: None = None,
) -> Batch: ...
@overload
def read_parquet(
    path: str | os.PathLike,
    columns: Columns = None,
    *,
    nan_policy: NanPolicy = "raise",
    batch_size: int,
) -> Iterator[Batch]: ...
def read_parquet(path, columns=None, *, nan_policy="raise", batch_size=None):
    """Read metric columns of a Parquet file as a ``Batch`` or a stream of them (pyarrow).

    Arguments and result as :func:`read_csv`. Numeric columns are read as numbers, string
    columns are parsed as numbers; a null is a missing value. Only the requested
    columns are read, one record batch at a time.

    Example:
        >>> import pathlib, tempfile
        >>> import pyarrow as pa, pyarrow.parquet as pq
        >>> from liam_core.data import read_parquet
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "shifts.parquet"
        >>> pq.write_table(pa.table({"prod": [85.5, None], "qual": ["88.7", "x"]}), path)
        >>> batch = read_parquet(path, nan_policy="mask")
        >>> batch.values.tolist(), batch.mask.tolist()
        ([[85.5, 88.69999694824219], [nan, nan]], [[True, True], [False, False]])
        >>> read_parquet(path, {"prod": "productivity", "speed": "throughput"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: read_parquet: `columns` must name columns of ...shifts.parquet (available columns: ['prod', 'qual']), got ['speed'], which the file does not have
    """
    pq = require("pyarrow.parquet", "read_parquet()")
    pa = require("pyarrow", "read_parquet()")
    source = os.fspath(path)
    policy, size = _check_options(nan_policy, batch_size, "read_parquet")
    try:
        parquet = pq.ParquetFile(source)
    except pa.ArrowInvalid as error:
        raise InvalidValueError(f"{source}: not a readable Parquet file ({error})") from None
    mapping = _check_columns(columns, list(parquet.schema_arrow.names), source, "read_parquet")

    def chunks() -> Iterator[tuple[int, dict[str, Any]]]:
        start = 0
        with parquet:
            for record_batch in parquet.iter_batches(
                batch_size=size or _CHUNK_ROWS, columns=list(mapping)
            ):
                yield start, {name: record_batch.column(name) for name in mapping}
                start += record_batch.num_rows

    return _read(chunks(), mapping, policy, size, source, "row {row} (1-based)")


# -- shared ------------------------------------------------------------------------------------


def _check_options(nan_policy: Any, batch_size: Any, owner: str) -> tuple[str, int | None]:
    check_choice(nan_policy, "nan_policy", NanPolicy, owner=owner)
    if batch_size is None:
        return nan_policy, None
    return nan_policy, check_int(batch_size, "batch_size", owner=owner, why=" or None")


def _check_columns(
    columns: Columns, available: list[str], source: str, owner: str
) -> dict[str, str]:
    """The column -> metric mapping, checked against the file's columns."""
    if columns is None:
        mapping = {name: name for name in available}
    elif isinstance(columns, Mapping):
        mapping = dict(columns)
    elif isinstance(columns, Sequence) and not isinstance(columns, str):
        mapping = {name: name for name in columns}
    else:
        raise ConfigTypeError(
            f"{owner}: `columns` must map file columns to metric names, list columns, or be "
            f"None, got {type(columns).__name__}: {quote(columns)}"
        )
    if not mapping:
        raise ConfigError(
            f"{owner}: `columns` must select at least one column of {source} "
            f"(available columns: {available}), got {quote(columns)}"
        )
    unknown = [name for name in mapping if name not in available]
    if unknown:
        raise ConfigError(
            f"{owner}: `columns` must name columns of {source} (available columns: "
            f"{available}), got {unknown}, which the file does not have"
        )
    check_names(list(mapping.values()), "columns", owner=owner)
    return mapping


def _read(
    chunks: Iterator[tuple[int, dict[str, Any]]],
    mapping: dict[str, str],
    policy: str,
    batch_size: int | None,
    source: str,
    where: str,
) -> Batch | Iterator[Batch]:
    batches = _batches(chunks, mapping, policy, source, where)
    if batch_size is not None:
        return batches
    return concat_batches(batches)


def _batches(
    chunks: Iterator[tuple[int, dict[str, Any]]],
    mapping: dict[str, str],
    policy: str,
    source: str,
    where: str,
) -> Iterator[Batch]:
    empty = True
    for start, frame in chunks:
        rows = len(next(iter(frame.values())))
        if rows == 0:
            continue
        empty = False
        values = np.empty((rows, len(mapping)), dtype=np.float32)
        valid = np.empty((rows, len(mapping)), dtype=bool)
        first_bad: tuple[int, int] | None = None  # (row, column position)
        texts = []
        for position, name in enumerate(mapping):
            number, text = _as_numbers(frame[name], name, source)
            texts.append(text)
            ok = np.isfinite(number)
            values[:, position] = number
            valid[:, position] = ok
            if policy == "raise" and not ok.all():
                row = int(np.argmin(ok))
                if first_bad is None or row < first_bad[0]:
                    first_bad = (row, position)
        if first_bad is not None:
            row, position = first_bad
            column = list(mapping)[position]
            error, problem = _describe_bad(
                frame[column], row, texts[position], values[row, position]
            )
            raise error(
                f"{source}, {where.format(row=start + row + 1)}, column {column!r}: {problem}"
            )
        values[~valid] = np.nan
        yield Batch(
            values,
            tuple(mapping.values()),
            start=start,
            mask=valid if policy == "mask" else None,
            source=source,
        )
    if empty:
        raise EmptyInputError(f"{source}: no data rows; expected at least one")


def _as_numbers(column: Any, name: str, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """A pandas Series or Arrow array as float64 (bad cells NaN), and where text was found."""
    if hasattr(column, "null_count"):  # pyarrow Array
        return _arrow_numbers(column, name, source)
    pd = require("pandas", "reading text columns")
    if pd.api.types.is_bool_dtype(column.dtype):
        raise InvalidTypeError(f"{source}, column {name!r} holds booleans; expected numbers")
    if pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan), None
    number = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    text = np.isnan(number) & ~column.isna().to_numpy()
    return number, text


def _arrow_numbers(column: Any, name: str, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    pa = require("pyarrow", "read_parquet()")
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        number = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(number, dtype=np.float64), None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return _as_numbers(column.to_pandas(), name, source)
    raise InvalidTypeError(f"{source}, column {name!r} has Arrow type {kind}; expected numbers")


def _describe_bad(
    column: Any, row: int, text: np.ndarray | None, number: np.float32
) -> tuple[type[InvalidTypeError] | type[InvalidValueError], str]:
    """The error class and a description of the bad cell at ``row`` (a position)."""
    if text is not None and text[row]:
        cell = column.iloc[row] if hasattr(column, "iloc") else column[row].as_py()
        return InvalidTypeError, f"{cell!r} is not a number"
    if np.isnan(number):
        return InvalidValueError, "missing value; expected a number"
    return InvalidValueError, f"value {float(number)!r} is not finite; expected a finite number"
