"""``LaborIntelligenceEngine``: named metric records in, validated float tensors and patterns out.

Records are mappings of metric name -> number. Without a :class:`Schema`, names go to
slots by a stable signed feature hash (MurmurHash3, the convention of scikit-learn's
``FeatureHasher``); with a schema, each name has its own slot, in schema order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from . import algebra
from ._checks import (
    as_float_array,
    check_bool,
    check_finite,
    check_fits_in_memory,
    check_int,
    check_names,
    quote,
)
from ._errors import (
    ConfigError,
    ConfigTypeError,
    EmptyInputError,
    HashCollisionError,
    InvalidTypeError,
    InvalidValueError,
    MissingMetricError,
    ShapeError,
    UnknownMetricError,
)
from ._hashing import hashed_slot

__all__ = ["LaborIntelligenceEngine", "Schema"]


@dataclass(frozen=True)
class Schema:
    """The metrics a pipeline expects: ordered names, optional units and valid ranges.

    Args:
        names: metric names, in slot order (``names[i]`` goes to slot ``i``).
        units: optional unit per name, for messages and reports (``{"throughput": "items/h"}``).
        ranges: optional inclusive ``(low, high)`` per name; a value outside is an error.
        allow_missing: when False (the default) every record must hold every name; when
            True an absent name is recorded as 0.

    Example:
        >>> from liam_core import LaborIntelligenceEngine, Schema
        >>> schema = Schema(["productivity", "quality"], ranges={"quality": (0, 100)})
        >>> engine = LaborIntelligenceEngine(dimensions=2, schema=schema)
        >>> engine.ingest_labor_data({"productivity": 85.5, "quality": 88.7}).tolist()
        [85.5, 88.69999694824219]
    """

    names: Sequence[str]
    units: Mapping[str, str] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    allow_missing: bool = False

    def __post_init__(self) -> None:
        names = check_names(self.names, "names", owner="Schema")
        if not names:
            raise ConfigError("Schema: `names` must list at least one metric name, got []")
        object.__setattr__(self, "names", names)
        for setting in ("units", "ranges"):
            if not isinstance(getattr(self, setting), Mapping):
                raise ConfigTypeError(
                    f"Schema: `{setting}` must be a mapping of metric name -> "
                    f"{'unit' if setting == 'units' else '(low, high)'}, got "
                    f"{type(getattr(self, setting)).__name__}: {quote(getattr(self, setting))}"
                )
        for setting in ("units", "ranges"):
            unknown = sorted(set(getattr(self, setting)) - set(names))
            if unknown:
                raise UnknownMetricError(
                    f"Schema: `{setting}` must name only metrics in `names` {list(names)}, "
                    f"got {unknown}"
                )
        ranges = {}
        for name, bounds in self.ranges.items():
            field_name = f"ranges[{name!r}]"
            try:
                low, high = (float(bound) for bound in bounds)
            except (TypeError, ValueError, OverflowError):
                raise ConfigError(
                    f"Schema: `{field_name}` must be a pair (low, high) of numbers, got "
                    f"{quote(bounds)}"
                ) from None
            if math.isnan(low) or math.isnan(high) or low > high:
                raise ConfigError(
                    f"Schema: `{field_name}` must be a pair with low <= high, got {quote(bounds)}"
                )
            ranges[name] = (low, high)
        object.__setattr__(self, "ranges", ranges)
        for name, unit in self.units.items():
            if not isinstance(unit, str):
                raise ConfigTypeError(
                    f"Schema: `units[{name!r}]` must be a string such as '%', got "
                    f"{type(unit).__name__}: {quote(unit)}"
                )
        object.__setattr__(
            self, "allow_missing", check_bool(self.allow_missing, "allow_missing", owner="Schema")
        )
        object.__setattr__(self, "units", dict(self.units))

    def slot(self, name: str) -> int:
        """The slot of ``name``, or :class:`UnknownMetricError` if the schema lacks it."""
        try:
            return self.names.index(name)
        except ValueError:
            raise UnknownMetricError(
                f"a metric name must be one of the schema's {list(self.names)}, got {quote(name)}"
            ) from None

    def describe(self, name: str) -> str:
        """``name`` in backticks with its unit, for messages: ``"`load` [%]"``."""
        unit = f" [{self.units[name]}]" if name in self.units else ""
        return f"`{name}`{unit}"


# Record values are data, not settings: their messages name the metric as the field, in
# liam_core._checks' shape ("metric `quality` must be ..., got ...").


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidTypeError(
            f"a metric name must be a non-empty string, got {type(name).__name__}: {quote(name)}"
        )


def _check_number(name: str, value: Any) -> float:
    """A record value as a float, or a typed error naming the key and the value."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(
            f"metric `{name}` must be a real number (int or float, not bool, text or None), "
            f"got {type(value).__name__}: {quote(value)}"
        )
    try:
        number = float(value)
    except OverflowError:  # an int past float64's range
        number = math.inf
    if not math.isfinite(number):
        raise InvalidValueError(f"metric `{name}` must be a finite number, got {quote(value)}")
    return number


class LaborIntelligenceEngine:
    """Turns named metric records into ``float32`` tensors and reports their patterns.

    Args:
        dimensions: length of each tensor (number of slots).
        schema: a :class:`Schema`; without one, names are feature-hashed into slots.
        alternate_sign: with hashing, multiply each value by the sign of its name's hash
            (scikit-learn's ``alternate_sign``), so that collisions cancel in expectation.
        dtype: dtype of the tensors (``float32`` by default).

    Example:
        >>> from liam_core import LaborIntelligenceEngine
        >>> engine = LaborIntelligenceEngine(dimensions=64)
        >>> tensor = engine.ingest_labor_data({"productivity": 85.5, "quality": 88.7})
        >>> tensor.shape, tensor.dtype
        ((64,), dtype('float32'))
        >>> patterns = engine.analyze_intelligence_patterns(engine.compute_labor_matrix([tensor]))
        >>> print(f"Rank: {patterns['rank']}, Condition: {patterns['condition_number']:.2f}")
        Rank: 1, Condition: 1.00
    """

    def __init__(
        self,
        dimensions: int = 64,
        schema: Schema | None = None,
        *,
        alternate_sign: bool = True,
        dtype: Any = jnp.float32,
    ) -> None:
        owner = "LaborIntelligenceEngine"
        dimensions = check_int(dimensions, "dimensions", owner=owner)
        if schema is not None and not isinstance(schema, Schema):
            raise ConfigTypeError(
                f"{owner}: `schema` must be a liam_core.Schema or None, got "
                f"{type(schema).__name__}: {quote(schema)}"
            )
        if schema is not None:
            check_int(
                dimensions, "dimensions", minimum=len(schema.names), owner=owner,
                why=" (one slot per metric of the schema)",
            )  # fmt: skip
        try:
            floating = dtype is not None and jnp.issubdtype(dtype, jnp.floating)
        except TypeError:
            floating = False
        if not floating:
            raise ConfigError(f"{owner}: `dtype` must be a floating dtype, got {quote(dtype)}")
        self.dimensions = dimensions
        self.schema = schema
        self.alternate_sign = check_bool(alternate_sign, "alternate_sign", owner=owner)
        self.dtype = jnp.dtype(dtype)
        check_fits_in_memory(
            dimensions * self.dtype.itemsize, "dimensions", "one tensor", owner=owner
        )

    def __repr__(self) -> str:
        layout = f"schema of {len(self.schema.names)} metrics" if self.schema else "hashed"
        return f"LaborIntelligenceEngine(dimensions={self.dimensions}, {layout})"

    # -- slots -------------------------------------------------------------------------------

    def slot_of(self, name: str) -> tuple[int, int]:
        """``(slot, sign)`` where the metric ``name`` lands in every tensor."""
        _check_name(name)
        if self.schema is not None:
            return self.schema.slot(name), 1
        slot, sign = hashed_slot(name, self.dimensions)
        return slot, (sign if self.alternate_sign else 1)

    def _layout(self, names: Sequence[str], where: str) -> tuple[np.ndarray, np.ndarray]:
        """Slots and signs of ``names``; refuses unknown names and hash collisions."""
        slots, signs, owner = [], [], {}
        for name in names:
            slot, sign = self.slot_of(name)
            if slot in owner:
                raise HashCollisionError(
                    f"{where}: metrics `{owner[slot]}` and `{name}` must land in distinct "
                    f"slots, got both in slot {slot} of {self.dimensions} (their values would "
                    "be summed); use larger `dimensions` or a Schema that gives each metric "
                    "its own slot"
                )
            owner[slot] = name
            slots.append(slot)
            signs.append(sign)
        if self.schema is not None and not self.schema.allow_missing:
            missing = [name for name in self.schema.names if name not in owner.values()]
            if missing:
                raise MissingMetricError(
                    f"{where}: must hold every metric of the schema {list(self.schema.names)} "
                    f"(or build the Schema with allow_missing=True), got no {missing}"
                )
        return np.asarray(slots, dtype=np.intp), np.asarray(signs, dtype=np.float64)

    def _check_ranges(self, names: Sequence[str], values: np.ndarray, where: str) -> None:
        """Refuse values outside the schema's ranges, naming the metric, row and value."""
        if self.schema is None:
            return
        for column, name in enumerate(names):
            if name not in self.schema.ranges:
                continue
            low, high = (np.float64(bound) for bound in self.schema.ranges[name])
            outside = (values[:, column] < low) | (values[:, column] > high)  # in float64
            if outside.any():
                row = int(np.argmax(outside))
                raise InvalidValueError(
                    f"{where}, row {row} (0-based): metric {self.schema.describe(name)} must be "
                    f"in {list(self.schema.ranges[name])}, got {quote(float(values[row, column]))}"
                )

    def _check_dtype_range(self, names: Sequence[str], values: np.ndarray, where: str) -> None:
        """Refuse values the tensors' dtype cannot hold (they would become infinities)."""
        top = float(np.finfo(self.dtype).max)
        outside = np.abs(values) > top
        if outside.any():
            row, column = (int(i) for i in np.argwhere(outside)[0])
            raise InvalidValueError(
                f"{where}, row {row} (0-based): metric `{names[column]}` must be within "
                f"{self.dtype.name}'s range (|value| <= {top:.4g}), got "
                f"{quote(float(values[row, column]))}"
            )

    def _assemble(self, names: Sequence[str], values: np.ndarray, where: str) -> np.ndarray:
        """Scatter a validated ``[n, len(names)]`` block (float64, or already the engine's
        dtype) into a numpy ``[n, dimensions]``."""
        slots, signs = self._layout(names, where)
        self._check_ranges(names, values, where)
        if values.dtype != self.dtype:
            self._check_dtype_range(names, values, where)
        check_fits_in_memory(
            values.shape[0] * self.dimensions * self.dtype.itemsize, "dimensions",
            f"a [{values.shape[0]}, dimensions] batch", owner="LaborIntelligenceEngine",
        )  # fmt: skip
        if np.array_equal(slots, np.arange(self.dimensions)) and (signs == 1).all():
            return values.astype(self.dtype, copy=False)  # the schema's own order: no scatter
        tensors = np.zeros((values.shape[0], self.dimensions), dtype=self.dtype)
        tensors[:, slots] = values * signs
        return tensors

    # -- ingestion ---------------------------------------------------------------------------

    def ingest_labor_data(self, record: Mapping[str, Any]) -> jax.Array:
        """One record (metric name -> number) as a ``[dimensions]`` tensor.

        Raises:
            InvalidTypeError: a name that is not a non-empty string, or a value that is not
                a real number (text, bool, None).
            InvalidValueError: NaN, inf, or a value outside the schema's range.
            EmptyInputError: an empty record.
            UnknownMetricError / MissingMetricError: names outside / absent from the schema.
            HashCollisionError: two names of the record share a hashed slot.
        """
        if not isinstance(record, Mapping):
            raise InvalidTypeError(
                f"a record must be a mapping of metric name -> number, got {type(record).__name__}"
            )
        if not record:
            raise EmptyInputError("the record is empty; expected at least one metric")
        for name in record:
            _check_name(name)
        values = np.asarray([[_check_number(name, value) for name, value in record.items()]])
        return jnp.asarray(self._assemble(list(record), values, "record")[0])

    def ingest_batch(self, records: Any) -> jax.Array:
        """Many records as one ``[n, dimensions]`` tensor.

        Accepts a sequence of mappings, a mapping of name -> column (1-D arrays), a
        pandas ``DataFrame``, a pyarrow ``Table`` or a numpy structured array. Columnar
        input is validated and scattered column by column, with no per-value Python loop.
        In a sequence of mappings, a name absent from one record counts as 0 there.
        """
        if hasattr(records, "column_names") and hasattr(records, "column"):  # pyarrow.Table
            columns = {name: records.column(name) for name in records.column_names}
            return self.ingest_columns(columns, source="arrow table")
        if hasattr(records, "columns") and hasattr(records, "to_numpy"):  # pandas.DataFrame
            columns = {name: records[name] for name in records.columns}
            return self.ingest_columns(columns, source="DataFrame")
        if isinstance(records, np.ndarray) and records.dtype.names:
            columns = {name: records[name] for name in records.dtype.names}
            return self.ingest_columns(columns, source="structured array")
        if isinstance(records, Mapping):
            return self.ingest_columns(records)
        if isinstance(records, str | bytes) or not isinstance(records, Iterable):
            raise InvalidTypeError(
                "ingest_batch() takes records (a sequence of mappings), a mapping of columns, "
                f"a DataFrame, an Arrow table or a structured array; got {type(records).__name__}"
            )
        return self._ingest_records(list(records))

    def _ingest_records(self, records: list) -> jax.Array:
        if not records:
            raise EmptyInputError("the batch holds no records; expected at least one")
        names: dict[str, int] = {}
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise InvalidTypeError(
                    f"record {index} is a {type(record).__name__}; expected a mapping of "
                    "metric name -> number"
                )
            if not record:
                raise EmptyInputError(f"record {index} is empty; expected at least one metric")
            for name in record:
                if name not in names:
                    _check_name(name)
                    names[name] = len(names)
        values = np.zeros((len(records), len(names)))
        for index, record in enumerate(records):
            for name, value in record.items():
                values[index, names[name]] = _check_number(name, value)
            if self.schema is not None and not self.schema.allow_missing:
                if len(record) != len(names):
                    self._layout(list(record), f"record {index}")
        return jnp.asarray(self._assemble(list(names), values, "batch"))

    def ingest_columns(self, columns: Mapping[str, Any], *, source: str = "columns") -> jax.Array:
        """A mapping of metric name -> 1-D column of numbers as ``[n, dimensions]``.

        Each column is checked as a whole (dtype, NaN/inf, range); an error names the
        source, the column, the first bad row and its value.
        """
        return jnp.asarray(self.validate_columns(columns, source=source))

    def validate_columns(
        self, columns: Mapping[str, Any], *, source: str = "columns"
    ) -> np.ndarray:
        """What :meth:`ingest_columns` gives, as a numpy array on the host.

        For a pipeline that keeps working on the host before it places rows on devices (the
        analysis regroups rows into steps first): the same checks and errors, no device copy.

        Example:
            >>> from liam_core import LaborIntelligenceEngine, Schema
            >>> engine = LaborIntelligenceEngine(dimensions=2, schema=Schema(("cpu", "mem")))
            >>> engine.validate_columns({"mem": [0.5, 0.25], "cpu": [10, 20]}).tolist()
            [[10.0, 0.5], [20.0, 0.25]]
        """
        if not columns:
            raise EmptyInputError(f"the {source} has no columns; expected at least one metric")
        names = list(columns)
        arrays = []
        for name in names:
            _check_name(name)
            arrays.append(_numeric_column(name, columns[name], source))
        lengths = {array.shape[0] for array in arrays}
        if len(lengths) != 1:
            shapes = {name: array.shape[0] for name, array in zip(names, arrays, strict=True)}
            raise ShapeError(f"the {source}'s columns have different lengths: {shapes}")
        if lengths == {0}:
            raise EmptyInputError(f"the {source} has no rows; expected at least one")
        return self._assemble(names, np.stack(arrays, axis=1), source)

    def ingest_array(self, values: Any, names: Sequence[str]) -> jax.Array:
        """A ``[n, len(names)]`` numeric array whose columns are the metrics ``names``."""
        array = np.asarray(values)
        if array.ndim != 2 or array.shape[1] != len(names):
            raise ShapeError(
                f"`values` must have shape [n, {len(names)}] to match `names`, got {array.shape}"
            )
        return self.ingest_columns(
            {name: array[:, column] for column, name in enumerate(names)}, source="array"
        )

    # -- analysis ----------------------------------------------------------------------------

    def compute_labor_matrix(
        self, tensors: Any, *, center: bool = False, standardize: bool = False
    ) -> jax.Array:
        """Stack tensors into an ``[n, dimensions]`` matrix, optionally centered or standardized.

        Args:
            tensors: a sequence of ``[dimensions]`` tensors, or an ``[n, dimensions]`` array.
            center: subtract each column's mean.
            standardize: center and divide by each column's standard deviation (``ddof=0``;
                constant columns become 0, as scikit-learn's ``StandardScaler``).
        """
        if isinstance(tensors, jax.Array | np.ndarray):
            matrix = tensors[None] if tensors.ndim == 1 else tensors
            if matrix.ndim != 2 or matrix.shape[1] != self.dimensions:
                raise ShapeError(
                    f"`tensors` has shape {tensors.shape}; expected [n, {self.dimensions}] "
                    "(this engine's `dimensions`)"
                )
        elif isinstance(tensors, Iterable) and not isinstance(tensors, str | bytes | Mapping):
            rows = list(tensors)
            for index, row in enumerate(rows):
                shape = getattr(row, "shape", None)
                if shape != (self.dimensions,):
                    raise ShapeError(
                        f"tensor {index} has shape {shape}; expected ({self.dimensions},) "
                        "as this engine's `dimensions`"
                    )
            rows = [
                as_float_array(row, "tensors", owner="compute_labor_matrix", allow_empty=True)
                for row in rows
            ]
            dtypes = {row.dtype for row in rows}
            if len(dtypes) > 1:  # numpy's promotion, which strict mode would refuse
                dtype = np.result_type(*dtypes)
                rows = [row.astype(dtype) for row in rows]
            matrix = jnp.stack(rows) if rows else np.zeros((0, self.dimensions))
        else:
            raise InvalidTypeError(
                f"`tensors` must be a sequence of [{self.dimensions}] tensors or an "
                f"[n, {self.dimensions}] array, got {type(tensors).__name__}"
            )
        if matrix.shape[0] == 0:
            raise EmptyInputError("`tensors` is empty; expected at least one tensor")
        matrix = as_float_array(matrix, "tensors", ndim=2, owner="compute_labor_matrix")
        check_finite(matrix, "tensors", owner="compute_labor_matrix")
        check_bool(center, "center", owner="compute_labor_matrix")
        if check_bool(standardize, "standardize", owner="compute_labor_matrix"):
            return algebra.standardize(matrix)
        if center:
            return matrix - jnp.mean(matrix, axis=0)
        return matrix

    def analyze_intelligence_patterns(self, matrix: Any, *, tol: float | None = None) -> dict:
        """Rank, condition number and spectrum of ``matrix`` (numpy's conventions).

        Returns:
            A dict with Python scalars ``rank`` (int), ``condition_number``, ``tolerance``
            and ``effective_rank`` (floats), numpy arrays ``singular_values`` and
            ``explained_variance_ratio``, and ``shape``. See
            :func:`liam_core.algebra.svd_patterns` for the definitions; ``condition_number``
            is ``inf`` for a rank-deficient matrix.
        """
        owner = "analyze_intelligence_patterns"
        matrix = as_float_array(matrix, "matrix", ndim=2, owner=owner)
        check_finite(matrix, "matrix", owner=owner)
        patterns = jax.device_get(algebra.svd_patterns(matrix, tol))
        return {
            "rank": int(patterns["rank"]),
            "condition_number": float(patterns["condition_number"]),
            "tolerance": float(patterns["tolerance"]),
            "effective_rank": float(patterns["effective_rank"]),
            "singular_values": np.asarray(patterns["singular_values"]),
            "explained_variance_ratio": np.asarray(patterns["explained_variance_ratio"]),
            "shape": tuple(matrix.shape),
        }


def _numeric_column(name: str, column: Any, source: str) -> np.ndarray:
    """A column as a finite float64 (or float32) 1-D array, or an error naming the first bad
    row."""
    if hasattr(column, "to_numpy") and hasattr(column, "type"):  # pyarrow (Chunked)Array
        if column.null_count:
            valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            row = int(np.argmin(valid))
            raise InvalidValueError(
                f"{source}, row {row} (0-based): metric `{name}` must be a finite number, got a "
                "missing value (null)"
            )
        column = column.to_numpy()
    elif hasattr(column, "to_numpy"):  # pandas Series
        column = column.to_numpy()
    array = np.asarray(column)
    if array.ndim != 1:
        raise ShapeError(f"{source}: metric `{name}` must be a 1-D column, got shape {array.shape}")
    if array.dtype == np.bool_:
        raise InvalidTypeError(
            f"{source}: metric `{name}` must be a column of real numbers, got dtype bool"
        )
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        for row, value in enumerate(array):
            _check_number_at(name, value, source, row)
        array = array.astype(np.float64)
    if array.dtype != np.float32:  # float32 stays (exact either way; the common case)
        array = array.astype(np.float64, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidValueError(
            f"{source}, row {row} (0-based): metric `{name}` must be a finite number, got "
            f"{quote(float(array[row]))}"
        )
    return array


def _check_number_at(name: str, value: Any, source: str, row: int) -> None:
    try:
        _check_number(name, value)
    except (InvalidTypeError, InvalidValueError) as error:
        raise type(error)(f"{source}, row {row} (0-based): {error}") from None
