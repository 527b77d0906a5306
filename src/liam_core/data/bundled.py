"""Real datasets shipped inside PyPI packages (statsmodels, scikit-learn), as ``Batch``es.

Nothing is downloaded: each loader reads the copy installed with its package (the
``liam-core[datasets]`` extra). Time series carry ``timestamps``; scikit-learn's tables
carry their ``target``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .._checks import check_choice
from .._errors import InvalidValueError
from ._batch import Batch
from ._extras import require

__all__ = ["BUNDLED", "BundledDataset", "BundledNanPolicy", "load_bundled"]

BundledNanPolicy = Literal["raise", "mask", "drop"]
"""What :func:`load_bundled` does with missing values: refuse, mask or drop their rows."""


@dataclass(frozen=True)
class BundledDataset:
    """One entry of the registry: where a dataset comes from and what it holds.

    Attributes:
        name: registry key.
        package: the PyPI package that ships it.
        description: one line: what a row is, what the metrics are, and the shape.
        load: returns the raw ``(values float64 [rows, metrics], names, timestamps, target)``.
    """

    name: str
    package: str
    description: str
    load: Callable[[], tuple[np.ndarray, tuple[str, ...], np.ndarray | None, np.ndarray | None]]


def _statsmodels(name: str) -> Any:
    datasets = require(f"statsmodels.datasets.{name}", f"the bundled dataset {name!r}")
    return datasets.load_pandas().data


def _co2() -> tuple:
    frame = _statsmodels("co2")
    stamps = frame.index.to_numpy().astype("datetime64[s]")
    return frame[["co2"]].to_numpy(np.float64), ("co2",), stamps, None


def _sunspots() -> tuple:
    frame = _statsmodels("sunspots")
    years = frame["YEAR"].to_numpy().astype(np.int64) - 1970
    stamps = years.astype("datetime64[Y]").astype("datetime64[s]")
    return frame[["SUNACTIVITY"]].to_numpy(np.float64), ("sunactivity",), stamps, None


def _macrodata() -> tuple:
    frame = _statsmodels("macrodata")
    months = (frame["year"].to_numpy().astype(np.int64) - 1970) * 12
    months += (frame["quarter"].to_numpy().astype(np.int64) - 1) * 3
    stamps = months.astype("datetime64[M]").astype("datetime64[s]")
    names = tuple(name for name in frame.columns if name not in ("year", "quarter"))
    return frame[list(names)].to_numpy(np.float64), names, stamps, None


def _elnino() -> tuple:
    frame = _statsmodels("elnino")
    months = frame.columns[1:]  # JAN..DEC
    values = frame[list(months)].to_numpy(np.float64).reshape(-1, 1)  # year-major: monthly
    first = (int(frame["YEAR"].iloc[0]) - 1970) * 12
    stamps = (first + np.arange(values.shape[0])).astype("datetime64[M]").astype("datetime64[s]")
    return values, ("sea_surface_temp",), stamps, None


def _sklearn(loader: str) -> Callable[[], tuple]:
    def load() -> tuple:
        datasets = require("sklearn.datasets", f"the bundled dataset {loader!r}")
        bunch = getattr(datasets, loader)()
        names = tuple(str(name) for name in bunch.feature_names)
        return np.asarray(bunch.data, np.float64), names, None, np.asarray(bunch.target)

    return load


BUNDLED: dict[str, BundledDataset] = {
    entry.name: entry
    for entry in (
        BundledDataset(
            "co2",
            "statsmodels",
            "weekly atmospheric CO2 at Mauna Loa (ppm), 1958-2001: [2284, 1], 59 missing",
            _co2,
        ),
        BundledDataset(
            "sunspots",
            "statsmodels",
            "yearly sunspot activity, 1700-2008: [309, 1]",
            _sunspots,
        ),
        BundledDataset(
            "macrodata",
            "statsmodels",
            "quarterly US macroeconomic series (realgdp, cpi, unemp, ...), 1959-2009: [203, 12]",
            _macrodata,
        ),
        BundledDataset(
            "elnino",
            "statsmodels",
            "monthly Pacific sea surface temperature (deg C), 1950-2010: [732, 1]",
            _elnino,
        ),
        BundledDataset(
            "diabetes",
            "scikit-learn",
            "diabetes patients: 10 standardized features, target disease progression: [442, 10]",
            _sklearn("load_diabetes"),
        ),
        BundledDataset(
            "wine",
            "scikit-learn",
            "wines: 13 chemical measurements, target cultivar 0-2: [178, 13]",
            _sklearn("load_wine"),
        ),
    )
}
"""The known datasets by name; ``load_bundled(name)`` loads one."""


def load_bundled(name: str, *, nan_policy: BundledNanPolicy = "mask") -> Batch:
    """Load a dataset shipped with statsmodels or scikit-learn as a ``Batch``.

    Args:
        name: one of ``BUNDLED`` (co2, sunspots, macrodata, elnino, diabetes, wine).
        nan_policy: what to do with missing values (only ``co2`` has any): ``"mask"``
            keeps the rows, with NaN and a False ``mask`` there (the spacing of the time
            series is kept); ``"drop"`` removes the rows; ``"raise"`` refuses them.

    Returns:
        A ``Batch`` of float32 values with metric names, ``timestamps`` for the time
        series, ``target`` for scikit-learn's tables, and ``mask`` with ``"mask"``.

    Example:
        >>> from liam_core.data import load_bundled
        >>> co2 = load_bundled("co2")
        >>> co2.values.shape, int((~co2.mask).sum()), str(co2.timestamps[0])
        ((2284, 1), 59, '1958-03-29T00:00:00')
        >>> load_bundled("co2", nan_policy="drop").n_rows
        2225
        >>> load_bundled("iris")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: load_bundled: `name` must be one of 'co2', 'sunspots', 'macrodata', 'elnino', 'diabetes', 'wine', got 'iris'
    """
    check_choice(name, "name", tuple(BUNDLED), owner="load_bundled")
    check_choice(nan_policy, "nan_policy", BundledNanPolicy, owner="load_bundled")
    values, names, stamps, target = BUNDLED[name].load()
    valid = np.isfinite(values)
    mask = None
    if not valid.all():
        if nan_policy == "raise":
            row, column = (int(i) for i in np.argwhere(~valid)[0])
            raise InvalidValueError(
                f"bundled dataset {name!r}, row {row + 1} (1-based), metric {names[column]!r}: "
                "missing value; pass nan_policy='mask' or 'drop'"
            )
        if nan_policy == "drop":
            keep = valid.all(axis=1)
            values, valid = values[keep], valid[keep]
            stamps = None if stamps is None else stamps[keep]
            target = None if target is None else target[keep]
    if nan_policy == "mask":
        mask = valid
    return Batch(
        values.astype(np.float32),
        names,
        mask=mask,
        timestamps=stamps,
        target=target,
        source=f"{BUNDLED[name].package}:{name}",
    )
