"""The in-process predictor: a bundle compiled once per batch-size bucket, then only called."""

from __future__ import annotations

import bisect
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from .._checks import check_bool, check_int, quote
from .._errors import EmptyInputError, InvalidTypeError, InvalidValueError, ShapeError
from ._bundle import Bundle, load_bundle

FLOAT32_MAX = float(np.finfo(np.float32).max)


def batch_buckets(max_batch_size: int) -> tuple[int, ...]:
    """The batch sizes compiled for: powers of two below ``max_batch_size``, and it.

    Example:
        >>> from liam_core.serve import batch_buckets
        >>> batch_buckets(64), batch_buckets(100)
        ((1, 2, 4, 8, 16, 32, 64), (1, 2, 4, 8, 16, 32, 64, 100))
    """
    sizes = [1 << k for k in range(max_batch_size.bit_length()) if 1 << k < max_batch_size]
    return (*sizes, max_batch_size)


class Predictor:
    """A bundle's functions compiled for every batch-size bucket, called without tracing.

    At load, ``forward`` (and ``explain``) is compiled once per bucket of
    :func:`batch_buckets` with the weights on the device; :attr:`compilations` counts them
    and never grows afterwards: :meth:`predict` pads a batch up to the next bucket and calls
    the compiled executable (a batch above ``max_batch_size`` runs in pieces).

    Args:
        bundle: a loaded :class:`Bundle` (or use :meth:`load` with a folder).
        max_batch_size: the largest bucket, >= 1.
        explain: compile ``explain`` too (per-feature attributions on request).

    Example:
        >>> import jax, numpy as np, tempfile
        >>> from liam_core.models import Autoencoder
        >>> from liam_core.serve import Predictor, export_bundle
        >>> from liam_core.train import AnomalyDetection, TaskSpec
        >>> model = Autoencoder(3, width=8, key=jax.random.key(0))
        >>> servable = AnomalyDetection(TaskSpec(attribution_steps=8)).servable(
        ...     model, {"threshold": np.float32(2.0)}, ["cpu", "latency_ms", "errors"])
        >>> folder = export_bundle(servable, tempfile.mkdtemp() + "/model", edge=False)
        >>> predictor = Predictor.load(folder, max_batch_size=8)
        >>> out = predictor.predict(np.array([[0.1, 0.2, 0.3], [9.0, -9.0, 9.0]]))
        >>> sorted(out), out["anomaly"].tolist()
        (['anomaly', 'score'], [False, True])
        >>> predictor.predict({"cpu": [9.0], "latency_ms": [-9.0], "errors": [9.0]})["anomaly"]
        array([ True])
        >>> predictor.predict([[1.0, 2.0]])
        Traceback (most recent call last):
        ...
        liam_core._errors.ShapeError: `x` must have shape [batch, 3] (the features ['cpu', 'latency_ms', 'errors']), got [1, 2]
    """

    def __init__(self, bundle: Bundle, *, max_batch_size: int = 64, explain: bool = True) -> None:
        if not isinstance(bundle, Bundle):
            raise InvalidTypeError(
                f"Predictor: `bundle` must be a Bundle (or use Predictor.load(folder)), got "
                f"{type(bundle).__name__}"
            )
        self.bundle = bundle
        self.max_batch_size = check_int(max_batch_size, "max_batch_size", owner="Predictor")
        self.buckets = batch_buckets(self.max_batch_size)
        self.feature_names = bundle.feature_names
        self.n_features = bundle.n_features
        self.output_names = tuple(out["name"] for out in bundle.manifest["outputs"])
        self.compilations = 0
        self._weights = jax.device_put(dict(bundle.weights))
        self._executables = {"forward": self._compile_all("forward")}
        if check_bool(explain, "explain", owner="Predictor") and "explain" in bundle.functions:
            self._executables["explain"] = self._compile_all("explain")
        self._engine: Any = None

    @classmethod
    def load(
        cls, directory: str | os.PathLike[str], *, max_batch_size: int = 64, explain: bool = True
    ) -> Predictor:
        """Load the bundle in ``directory`` (every hash checked) and compile it."""
        return cls(load_bundle(directory), max_batch_size=max_batch_size, explain=explain)

    @property
    def can_explain(self) -> bool:
        return "explain" in self._executables

    def _compile_all(self, name: str) -> dict[int, Any]:
        exported = self.bundle.functions[name]
        weights = self._weights

        def call(x: jax.Array) -> Any:  # the weights are the executable's constants
            return exported.call(weights, x)

        out = {}
        for size in self.buckets:
            spec = jax.ShapeDtypeStruct((size, self.n_features), np.float32)
            out[size] = jax.jit(call).lower(spec).compile()
            self.compilations += 1
        return out

    # -- inputs ------------------------------------------------------------------------------

    def rows(self, x: Any) -> np.ndarray:
        """``x`` as checked float32 rows ``[batch, features]``: a numpy array (one row
        ``[features]`` or a batch), or named records (a mapping of columns, a sequence of
        mappings, a DataFrame or Arrow table) whose names are the bundle's features."""
        if (
            isinstance(x, Mapping)
            or hasattr(x, "columns")
            or hasattr(x, "column_names")
            or (isinstance(x, list | tuple) and x and isinstance(x[0], Mapping))
        ):
            return np.asarray(self._records_engine().ingest_batch(x))
        try:
            array = np.asarray(x)
        except (ValueError, TypeError) as error:
            raise InvalidTypeError(
                f"`x` must be an array of numbers, got {quote(x)} ({error})"
            ) from None
        if array.dtype.kind not in "iuf":
            raise InvalidTypeError(
                f"`x` must hold real numbers, got dtype {array.dtype}: {quote(x)}"
            )
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.n_features:
            raise ShapeError(
                f"`x` must have shape [batch, {self.n_features}] (the features "
                f"{list(self.feature_names)}), got {list(np.shape(x))}"
            )
        if array.shape[0] == 0:
            raise EmptyInputError("`x` has no rows; expected at least one")
        if array.dtype != np.float32:
            if array.dtype.kind == "f" and np.isfinite(array).all():
                big = np.abs(array) > FLOAT32_MAX
                if big.any():
                    row, column = np.argwhere(big)[0]
                    raise InvalidValueError(
                        f"`x` row {row}, feature `{self.feature_names[column]}`: "
                        f"{quote(array[row, column])} does not fit float32"
                    )
            array = array.astype(np.float32)
        finite = np.isfinite(array)
        if not finite.all():
            row, column = np.argwhere(~finite)[0]
            raise InvalidValueError(
                f"`x` row {row}, feature `{self.feature_names[column]}` must be a finite "
                f"number, got {quote(array[row, column])}"
            )
        return array

    def _records_engine(self) -> Any:
        if self._engine is None:
            from ..engine import LaborIntelligenceEngine, Schema

            schema = Schema(self.feature_names)
            self._engine = LaborIntelligenceEngine(len(self.feature_names), schema)
        return self._engine

    # -- calls -------------------------------------------------------------------------------

    def predict(self, x: Any, *, explain: bool = False) -> dict[str, np.ndarray]:
        """The named outputs of ``x``'s rows (and ``attributions`` with ``explain=True``).

        Raises:
            ShapeError, InvalidTypeError, InvalidValueError, EmptyInputError: ``x`` is not
                rows of the bundle's features as finite numbers (the error names the row and
                the feature).
            InvalidValueError: ``explain=True`` for a model without attributions.
        """
        rows = self.rows(x)
        out = self.run(rows)
        if explain:
            if not self.can_explain:
                raise InvalidValueError(
                    f"this {self.bundle.manifest['task']} model has no attributions "
                    "(or the predictor was loaded with explain=False)"
                )
            out.update(self.run(rows, "explain"))
        return out

    def run(self, rows: np.ndarray, function: str = "forward") -> dict[str, np.ndarray]:
        """Call ``function`` on checked float32 ``rows`` (see :meth:`rows`), in pieces of at
        most ``max_batch_size`` rows, each padded up to its bucket."""
        executables = self._executables[function]
        n = rows.shape[0]
        if n <= self.max_batch_size:
            return self._call(executables, rows)
        parts = [
            self._call(executables, rows[start : start + self.max_batch_size])
            for start in range(0, n, self.max_batch_size)
        ]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _call(self, executables: Mapping[int, Any], rows: np.ndarray) -> dict[str, np.ndarray]:
        n = rows.shape[0]
        size = self.buckets[bisect.bisect_left(self.buckets, n)]
        if size != n:
            padded = np.zeros((size, self.n_features), np.float32)
            padded[:n] = rows
            rows = padded
        out = executables[size](rows)
        if size == n:
            return {name: np.asarray(value) for name, value in out.items()}
        return {name: np.asarray(value)[:n] for name, value in out.items()}
