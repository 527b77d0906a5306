"""Deterministic synthetic workforce telemetry with injected anomalies and their ground truth.

Row ``i`` is the record of team ``i % n_teams`` at time step ``i // n_teams`` (rows are
time-major), one step every ``period_s`` seconds. Each metric is a sum of

* a team level and a per-(team, work shift) offset,
* a daily cycle (two harmonics) and a weekly cycle, shared by all teams,
* latent factors shared by all teams (slow random Fourier series plus per-step shocks),
  which make teams correlated beyond their common cycles,
* independent noise per record,
* drift: from record ``drift_start`` on, a level change plus a linear trend, in the
  direction in which the metric gets worse,
* anomalies: spikes (one cell), level shifts (one team and metric for some steps) and
  dropouts (every metric of one team reads 0 for some steps), each labelled per cell,

then clipped to the metric's valid range. Randomness is counter-based: values are computed
in fixed blocks of whole time steps, each block drawing from ``Philox(key=(seed, stream))``
with the block index in the counter, so row ``i`` depends only on the settings and ``i``,
never on how the rows are batched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from .._checks import check_choice, check_int, check_names, check_number, quote
from .._errors import ConfigError, ConfigTypeError
from ..engine import Schema
from ._batch import Batch

__all__ = [
    "ANOMALY_KINDS",
    "METRICS",
    "SHIFTS",
    "AnomalyEvents",
    "SyntheticTelemetry",
]

ANOMALY_KINDS = ("none", "spike", "level_shift", "dropout")
"""Names of the codes in ``Batch.anomaly`` and ``AnomalyEvents.kind`` (code = index)."""

SHIFTS = ("night", "day", "evening")
"""Work shifts, codes of ``Batch.shift``: night 22:00-06:00, day 06:00-14:00, evening 14:00-22:00."""

_SPIKE, _LEVEL_SHIFT, _DROPOUT = 1, 2, 3


class _Metric(NamedTuple):
    unit: str
    low: float
    high: float
    base: float
    noise: float  # standard deviation of the per-record noise
    daily: float  # amplitude of the daily cycle (sign: phase relative to productivity)
    weekly: float  # amplitude of the weekly cycle
    spike_sign: int  # direction of spikes and level shifts; 0 = either
    worse: int  # direction of drift (the metric degrades)


_CATALOG: dict[str, _Metric] = {
    "productivity": _Metric("units/h", 0.0, 250.0, 85.0, 3.0, 12.0, 5.0, 0, -1),
    "efficiency": _Metric("%", 0.0, 100.0, 84.0, 1.5, 3.0, 1.5, -1, -1),
    "quality": _Metric("%", 0.0, 100.0, 88.0, 1.2, 2.0, 1.0, -1, -1),
    "throughput": _Metric("items/h", 0.0, 500.0, 120.0, 5.0, 20.0, 8.0, 0, -1),
    "utilization": _Metric("fraction", 0.0, 1.0, 0.70, 0.025, 0.08, 0.03, -1, -1),
    "overtime_hours": _Metric("h", 0.0, 24.0, 2.0, 0.15, -0.3, 0.25, 1, 1),
    "error_rate": _Metric("fraction", 0.0, 1.0, 0.04, 0.003, -0.006, 0.002, 1, 1),
    "idle_time": _Metric("min/h", 0.0, 60.0, 12.0, 0.8, -2.5, 1.0, 1, 1),
}

METRICS: tuple[str, ...] = tuple(_CATALOG)
"""Every metric the generator knows, in its default column order."""

_N_ALL = len(METRICS)
_BLOCK_ROWS = 1 << 15  # rows per block of fixed size (rounded to whole time steps)
_SECONDS_PER_DAY = 86_400
_SECONDS_PER_WEEK = 7 * _SECONDS_PER_DAY
_EPOCH_TO_MONDAY_S = 3 * _SECONDS_PER_DAY  # 1970-01-01 was a Thursday
_FOURIER_TERMS = 6  # terms of each latent factor's slow random Fourier series
_SLOW_PERIOD_DAYS = (2.0, 30.0)  # periods of those terms
_SECOND_HARMONIC = 0.3  # relative amplitude of the daily cycle's second harmonic

# Random streams: one Philox key per purpose, so enabling one feature never moves another.
_STREAM_PARAMS, _STREAM_NOISE, _STREAM_SHOCKS, _STREAM_EVENTS = 1, 2, 3, 4


def _philox(seed: int, stream: int, counter: int) -> np.random.Generator:
    """A generator for (seed, stream) whose counter starts at ``counter`` in its second word.

    Each block uses counter words ``[0, counter, 0, 0]`` upwards; a block draws far fewer
    than 2**64 values, so blocks never share random numbers.
    """
    key = np.array([seed, stream], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key, counter=counter << 64))


@dataclass(frozen=True, eq=False)
class AnomalyEvents:
    """Ground truth of the injected anomalies, one entry per event.

    Event ``e`` affects rows ``first_row[e] + j * n_teams`` for ``j < n_steps[e]`` (rows
    past the end of the data excepted), in column ``metric[e]`` (``-1``: every metric).

    Attributes:
        kind: ``int8`` code, an index into ``ANOMALY_KINDS``.
        entity: ``int32`` team id (the entity code of ``Batch.entity``).
        metric: ``int32`` column in ``metric_names``, or -1 for all (dropouts).
        first_row: ``int64`` first affected row.
        n_steps: ``int32`` number of time steps (1 for a spike).
        magnitude: ``float32`` value added (0 for a dropout, whose values read 0).
        metric_names: the generator's metric names.
    """

    kind: np.ndarray
    entity: np.ndarray
    metric: np.ndarray
    first_row: np.ndarray
    n_steps: np.ndarray
    magnitude: np.ndarray
    metric_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def counts(self) -> dict[str, int]:
        """Number of events of each kind (``"none"`` excluded)."""
        return {
            name: int(np.count_nonzero(self.kind == code))
            for code, name in enumerate(ANOMALY_KINDS)
            if code
        }


@dataclass(frozen=True, eq=False)
class _Params:
    """Everything drawn once from the seed: levels, offsets, loadings, Fourier terms."""

    level: np.ndarray  # float32 [T, 8]
    amplitude: np.ndarray  # float32 [T, 8]  team scaling of the shared cycles
    shift_offset: np.ndarray  # float32 [3, T, 8]
    factor_load: np.ndarray  # float32 [F, T, 8]  team loading * metric weight * size
    frequency: np.ndarray  # float64 [F, J]  cycles per day
    phase: np.ndarray  # float64 [F, J]
    fourier_amplitude: float
    noise: np.ndarray  # float32 [8]
    daily: np.ndarray  # float64 [8]
    weekly: np.ndarray  # float64 [8]
    scale: np.ndarray  # float64 [8]  typical spread of each metric
    low: np.ndarray  # float32 [8]
    high: np.ndarray  # float32 [8]
    spike_sign: np.ndarray  # int8 [8]
    worse: np.ndarray  # float32 [8]


_OWNER = "SyntheticTelemetry"


def _check_range(name: str, value: Any, kind: str, low: float) -> tuple:
    """A ``(low, high)`` pair of ints or numbers ``>= low`` with ``low <= high``."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigTypeError(
            f"{_OWNER}: `{name}` must be a pair ({kind} low, {kind} high), "
            f"got {type(value).__name__}: {quote(value)}"
        )
    if kind == "int":
        pair = tuple(check_int(item, name, minimum=int(low), owner=_OWNER) for item in value)
    else:
        pair = tuple(check_number(item, name, minimum=low, owner=_OWNER) for item in value)
    if pair[0] > pair[1]:
        raise ConfigError(
            f"{_OWNER}: `{name}` must be a pair (low, high) with low <= high, got {quote(value)}"
        )
    return pair


@dataclass(frozen=True)
class SyntheticTelemetry:
    """A deterministic stream of workforce telemetry: labor metrics per team and time step.

    Settings are validated on construction (a bad one raises ``ConfigError`` naming it).
    Sizes of anomalies and drift are in units of each metric's typical spread (the
    standard deviation of its normal variation).

    Args:
        n_records: number of rows (records) in the stream.
        n_teams: teams reporting at each time step.
        seed: an int in ``[0, 2**64)``; the data are a pure function of the settings.
        metrics: which of ``METRICS`` to produce, in this column order. A subset holds the
            same columns as the full set.
        period_s: seconds between time steps (900: one record per team per 15 minutes).
        start: ISO time of step 0 (UTC; the default is a Monday at midnight).
        n_factors: latent factors shared by the teams (0: teams vary independently).
        factor_strength: size of the shared factors relative to each metric's noise.
        noise_scale: multiplier of the per-record noise.
        daily_amplitude, weekly_amplitude: multipliers of the daily and weekly cycles.
        drift_start: first drifted record (default ``n_records // 2``); drift happens at
            the records with index ``>= drift_start``.
        drift_level: level change at ``drift_start`` (spreads; 0 for none).
        drift_trend: further change per day after ``drift_start`` (spreads per day).
        spike_rate: expected spikes per record (each in one metric).
        spike_size: ``(low, high)`` range of a spike's size.
        level_shift_rate: expected level shifts starting per record.
        level_shift_size: ``(low, high)`` range of a level shift's size.
        level_shift_steps: ``(low, high)`` range of a level shift's duration in steps.
        dropout_rate: expected dropouts starting per record.
        dropout_steps: ``(low, high)`` range of a dropout's duration in steps.

    Example:
        >>> from liam_core.data import SyntheticTelemetry
        >>> telemetry = SyntheticTelemetry(10_000, n_teams=4, seed=7)
        >>> batches = list(telemetry.batches(4096))
        >>> [batch.n_rows for batch in batches], batches[0].values.dtype
        ([4096, 4096, 1808], dtype('float32'))
        >>> telemetry.metric_names[:3]
        ('productivity', 'efficiency', 'quality')
        >>> print(batches[0].timestamps[4], batches[0].entity_names[batches[0].entity[4]])
        2026-01-05T00:15:00 team-0
    """

    n_records: int
    _: KW_ONLY
    n_teams: int = 8
    seed: int = 0
    metrics: tuple[str, ...] = METRICS
    period_s: int = 900
    start: str = "2026-01-05T00:00:00"
    n_factors: int = 2
    factor_strength: float = 1.5
    noise_scale: float = 1.0
    daily_amplitude: float = 1.0
    weekly_amplitude: float = 1.0
    drift_start: int | None = None
    drift_level: float = 1.0
    drift_trend: float = 0.0
    spike_rate: float = 5e-4
    spike_size: tuple[float, float] = (6.0, 10.0)
    level_shift_rate: float = 5e-5
    level_shift_size: tuple[float, float] = (2.0, 4.0)
    level_shift_steps: tuple[int, int] = (8, 96)
    dropout_rate: float = 2e-5
    dropout_steps: tuple[int, int] = (4, 32)
    _start_s: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise validated settings in place
        set_(self, "n_records", check_int(self.n_records, "n_records", owner=_OWNER))
        set_(self, "n_teams", check_int(self.n_teams, "n_teams", owner=_OWNER))
        set_(self, "seed", check_int(self.seed, "seed", minimum=0, maximum=2**64 - 1, owner=_OWNER))
        metrics = check_names(self.metrics, "metrics", owner=_OWNER)
        if not metrics:
            raise ConfigError(f"{_OWNER}: `metrics` must name at least one metric, got ()")
        for name in metrics:
            check_choice(name, "metrics", METRICS, owner=_OWNER)
        set_(self, "metrics", metrics)
        set_(self, "period_s", check_int(self.period_s, "period_s", owner=_OWNER))
        try:
            start_s = int(np.datetime64(self.start, "s").astype(np.int64))
        except (TypeError, ValueError):
            raise ConfigError(
                f"{_OWNER}: `start` must be an ISO date-time such as '2026-01-05T00:00:00', "
                f"got {quote(self.start)}"
            ) from None
        set_(self, "_start_s", start_s)
        n_factors = check_int(self.n_factors, "n_factors", minimum=0, maximum=64, owner=_OWNER)
        set_(self, "n_factors", n_factors)
        for name in (
            "factor_strength",
            "noise_scale",
            "daily_amplitude",
            "weekly_amplitude",
            "drift_level",
        ):
            set_(self, name, check_number(getattr(self, name), name, minimum=0.0, owner=_OWNER))
        set_(self, "drift_trend", check_number(self.drift_trend, "drift_trend", owner=_OWNER))
        if self.drift_start is not None:
            drift_start = check_int(self.drift_start, "drift_start", minimum=0, owner=_OWNER)
            set_(self, "drift_start", drift_start)
        for name in ("spike_rate", "level_shift_rate", "dropout_rate"):
            rate = check_number(getattr(self, name), name, minimum=0.0, maximum=1.0, owner=_OWNER)
            set_(self, name, rate)
        for name in ("spike_size", "level_shift_size"):
            set_(self, name, _check_range(name, getattr(self, name), "float", 0.0))
        for name in ("level_shift_steps", "dropout_steps"):
            set_(self, name, _check_range(name, getattr(self, name), "int", 1))

    # -- public views --------------------------------------------------------------------------

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Names of the columns of every batch."""
        return self.metrics

    @property
    def entity_names(self) -> tuple[str, ...]:
        """Names of the teams, the entities of ``Batch.entity``: ``team-0``, ``team-1``, ..."""
        return tuple(f"team-{team}" for team in range(self.n_teams))

    @property
    def n_steps(self) -> int:
        """Number of time steps the records span (the last one may be partial)."""
        return -(-self.n_records // self.n_teams)

    @property
    def steps_per_day(self) -> float:
        """Time steps per day (96 at the default 15-minute period)."""
        return _SECONDS_PER_DAY / self.period_s

    @property
    def first_drifted_record(self) -> int:
        """``drift_start``, or its default ``n_records // 2``."""
        return self.n_records // 2 if self.drift_start is None else self.drift_start

    def schema(self) -> Schema:
        """The metrics' names, units and valid ranges, for ``LaborIntelligenceEngine``.

        Example:
            >>> from liam_core.data import SyntheticTelemetry
            >>> schema = SyntheticTelemetry(10, metrics=("quality", "error_rate")).schema()
            >>> schema.names, schema.units["quality"], schema.ranges["error_rate"]
            (('quality', 'error_rate'), '%', (0.0, 1.0))
        """
        specs = {name: _CATALOG[name] for name in self.metrics}
        return Schema(
            self.metrics,
            units={name: spec.unit for name, spec in specs.items()},
            ranges={name: (spec.low, spec.high) for name, spec in specs.items()},
        )

    def rows(self, start: int = 0, stop: int | None = None) -> Batch:
        """Rows ``start:stop`` (default: all) as one ``Batch``.

        Example:
            >>> from liam_core.data import SyntheticTelemetry
            >>> telemetry = SyntheticTelemetry(1000, seed=1)
            >>> (telemetry.rows(10, 20).values == telemetry.rows().values[10:20]).all()
            np.True_
        """
        owner = f"{_OWNER}.rows"
        start = check_int(start, "start", minimum=0, owner=owner)
        stop = check_int(self.n_records if stop is None else stop, "stop", owner=owner)
        if not start < stop <= self.n_records:
            raise ConfigError(
                f"{owner}: `start, stop` must satisfy 0 <= start < stop <= "
                f"n_records={self.n_records}, got start={start}, stop={stop}"
            )
        return self._rows(start, stop, _BlockCache(self))

    def batches(self, batch_size: int = 65_536) -> Iterator[Batch]:
        """Yield consecutive batches of at most ``batch_size`` rows covering every record.

        The bytes of each row do not depend on ``batch_size``.

        Args:
            batch_size: rows per batch (the last one may be smaller).

        Returns:
            An iterator of ``Batch`` with ``values``, ``timestamps``, ``entity``, ``shift``
            and ``anomaly``.

        Example:
            >>> from liam_core.data import SyntheticTelemetry
            >>> [batch.n_rows for batch in SyntheticTelemetry(10, n_teams=2).batches(4)]
            [4, 4, 2]
        """
        batch_size = check_int(batch_size, "batch_size", owner=f"{_OWNER}.batches")
        return self._batches(batch_size)

    def _batches(self, batch_size: int) -> Iterator[Batch]:
        cache = _BlockCache(self)
        for start in range(0, self.n_records, batch_size):
            yield self._rows(start, min(start + batch_size, self.n_records), cache)

    def anomaly_events(self) -> AnomalyEvents:
        """Every injected anomaly of the stream, in block order, with its extent.

        Example:
            >>> from liam_core.data import SyntheticTelemetry
            >>> SyntheticTelemetry(100_000, seed=3).anomaly_events().counts()
            {'spike': 52, 'level_shift': 2, 'dropout': 1}
        """
        parts = [self._block_events(block) for block in range(self._n_blocks)]
        events = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        first_row = events["step"] * self.n_teams + events["team"]
        # A metric outside the selection is not in the data; -1 (every metric) always is.
        column = np.full(_N_ALL + 1, -1, dtype=np.int32)
        column[[METRICS.index(name) for name in self.metrics]] = np.arange(len(self.metrics))
        selected = np.isin(events["metric"], [METRICS.index(name) for name in self.metrics])
        keep = (first_row < self.n_records) & (selected | (events["metric"] < 0))
        return AnomalyEvents(
            kind=events["kind"][keep],
            entity=events["team"][keep].astype(np.int32),
            metric=column[events["metric"][keep]],
            first_row=first_row[keep],
            n_steps=events["n_steps"][keep],
            magnitude=events["magnitude"][keep],
            metric_names=self.metrics,
        )

    # -- blocks --------------------------------------------------------------------------------

    @property
    def _block_steps(self) -> int:
        return max(1, _BLOCK_ROWS // self.n_teams)

    @property
    def _block_rows(self) -> int:
        return self._block_steps * self.n_teams

    @property
    def _n_blocks(self) -> int:
        return -(-self.n_records // self._block_rows)

    @cached_property
    def _params(self) -> _Params:
        teams, factors = self.n_teams, self.n_factors
        spec = np.array([_CATALOG[name][3:] for name in METRICS], dtype=np.float64).T
        base, noise, daily, weekly, spike_sign, worse = spec
        daily = daily * self.daily_amplitude
        weekly = weekly * self.weekly_amplitude

        def draw(counter: int, shape: tuple[int, ...]) -> np.ndarray:
            return _philox(self.seed, _STREAM_PARAMS, counter).standard_normal(shape)

        level = base + draw(0, (teams, _N_ALL)) * noise
        amplitude = 1.0 + 0.1 * draw(1, (teams, _N_ALL))
        shift_offset = 0.5 * draw(2, (len(SHIFTS), teams, _N_ALL)) * noise
        loading = 1.0 + 0.2 * draw(3, (factors, teams))
        weight = draw(4, (factors, _N_ALL))
        weight /= np.maximum(np.sqrt((weight**2).sum(axis=0)), 1e-12)  # unit norm per metric
        factor_load = (
            loading[:, :, None] * weight[:, None, :] * (self.factor_strength * noise)[None, None]
        )
        slow = _philox(self.seed, _STREAM_PARAMS, 5)
        low_f, high_f = (1.0 / days for days in reversed(_SLOW_PERIOD_DAYS))
        frequency = np.exp(slow.uniform(np.log(low_f), np.log(high_f), (factors, _FOURIER_TERMS)))
        phase = slow.uniform(0.0, 2.0 * np.pi, (factors, _FOURIER_TERMS))
        cycle_var = 0.5 * daily**2 * (1.0 + _SECOND_HARMONIC**2) + 0.5 * weekly**2
        noise = noise * self.noise_scale
        factor_var = (self.factor_strength * spec[1]) ** 2 if factors else 0.0
        scale = np.sqrt(noise**2 + factor_var + cycle_var)
        lows = np.array([_CATALOG[name].low for name in METRICS], dtype=np.float32)
        highs = np.array([_CATALOG[name].high for name in METRICS], dtype=np.float32)
        return _Params(
            level=level.astype(np.float32),
            amplitude=amplitude.astype(np.float32),
            shift_offset=shift_offset.astype(np.float32),
            factor_load=factor_load.astype(np.float32),
            frequency=frequency,
            phase=phase,
            # Half the variance of each factor is slow, half is per-step shocks.
            fourier_amplitude=math.sqrt(2.0 * 0.5 / _FOURIER_TERMS),
            noise=noise.astype(np.float32),
            daily=daily,
            weekly=weekly,
            scale=scale,
            low=lows,
            high=highs,
            spike_sign=spike_sign.astype(np.int8),
            worse=worse.astype(np.float32),
        )

    def _block_events(self, block: int) -> dict[str, np.ndarray]:
        """The anomalies that start in ``block``, drawn from the block's own counter."""
        p = self._params
        steps, teams = self._block_steps, self.n_teams
        rng = _philox(self.seed, _STREAM_EVENTS, block)
        rows = steps * teams
        counts = rng.poisson(
            [self.spike_rate * rows, self.level_shift_rate * rows, self.dropout_rate * rows]
        )
        kinds, cells, metrics, lengths, sizes = [], [], [], [], []
        for kind, count, size, duration in (
            (_SPIKE, counts[0], self.spike_size, (1, 1)),
            (_LEVEL_SHIFT, counts[1], self.level_shift_size, self.level_shift_steps),
            (_DROPOUT, counts[2], (0.0, 0.0), self.dropout_steps),
        ):
            kinds.append(np.full(count, kind, dtype=np.int8))
            cells.append(rng.integers(0, rows, count))
            metric = rng.integers(0, _N_ALL, count)
            metrics.append(metric if kind != _DROPOUT else np.full(count, -1, dtype=np.int64))
            lengths.append(rng.integers(duration[0], duration[1] + 1, count).astype(np.int32))
            sign = np.where(rng.integers(0, 2, count) == 1, 1, -1)
            if kind != _DROPOUT:
                sign = np.where(p.spike_sign[metric] != 0, p.spike_sign[metric], sign)
                sizes.append(
                    (sign * rng.uniform(*size, count) * p.scale[metric]).astype(np.float32)
                )
            else:
                sizes.append(np.zeros(count, dtype=np.float32))
        cell = np.concatenate(cells)
        return {
            "kind": np.concatenate(kinds),
            "step": block * steps + cell // teams,
            "team": cell % teams,
            "metric": np.concatenate(metrics),
            "n_steps": np.concatenate(lengths),
            "magnitude": np.concatenate(sizes),
        }

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """``values`` (float32) and ``anomaly`` codes (int8), ``[block_rows, 8]``, all metrics."""
        p = self._params
        steps, teams = self._block_steps, self.n_teams
        step = block * steps + np.arange(steps, dtype=np.int64)
        week_s = (self._start_s + _EPOCH_TO_MONDAY_S + step * self.period_s) % _SECONDS_PER_WEEK
        day_s = week_s % _SECONDS_PER_DAY
        day = day_s / _SECONDS_PER_DAY
        daily = np.cos(2.0 * np.pi * (day - 14.0 / 24.0)) + _SECOND_HARMONIC * np.cos(
            4.0 * np.pi * (day - 10.0 / 24.0)
        )
        weekly = np.cos(2.0 * np.pi * (week_s / _SECONDS_PER_WEEK - 2.5 / 7.0))
        cycles = (daily[:, None] * p.daily + weekly[:, None] * p.weekly).astype(np.float32)
        shift = _shift_of(day_s)

        values = p.level[None] + cycles[:, None, :] * p.amplitude[None]
        values += p.shift_offset[shift]
        if self.n_factors:
            days = step * (self.period_s / _SECONDS_PER_DAY)
            shocks = _philox(self.seed, _STREAM_SHOCKS, block).standard_normal(
                (steps, self.n_factors)
            )
            for f in range(self.n_factors):
                factor = shocks[:, f] * math.sqrt(0.5)
                for j in range(_FOURIER_TERMS):
                    factor += p.fourier_amplitude * np.cos(
                        2.0 * np.pi * p.frequency[f, j] * days + p.phase[f, j]
                    )
                values += factor.astype(np.float32)[:, None, None] * p.factor_load[f][None]
        noise = _philox(self.seed, _STREAM_NOISE, block).standard_normal(
            (steps, teams, _N_ALL), dtype=np.float32
        )
        values += noise * p.noise

        drift_row = self.first_drifted_record
        row = block * steps * teams + np.arange(steps * teams, dtype=np.int64).reshape(steps, teams)
        if (self.drift_level or self.drift_trend) and row[-1, -1] >= drift_row:
            elapsed = (step - drift_row // teams) * (self.period_s / _SECONDS_PER_DAY)
            drift = (self.drift_level + self.drift_trend * elapsed).astype(np.float32)
            drift = np.where(row >= drift_row, drift[:, None], np.float32(0.0))
            values += drift[:, :, None] * (p.worse * p.scale.astype(np.float32))[None, None]

        anomaly = np.zeros(values.shape, dtype=np.int8)
        self._inject(block, values, anomaly)
        np.clip(values, p.low, p.high, out=values)
        return values.reshape(-1, _N_ALL), anomaly.reshape(-1, _N_ALL)

    def _inject(self, block: int, values: np.ndarray, anomaly: np.ndarray) -> None:
        """Add the anomalies that touch ``block`` (some started in earlier blocks), in place."""
        steps = self._block_steps
        longest = max(self.level_shift_steps[1], self.dropout_steps[1])
        lookback = -(-(longest - 1) // steps)
        parts = [self._block_events(b) for b in range(max(0, block - lookback), block + 1)]
        events = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
        first = np.maximum(events["step"], block * steps)
        last = np.minimum(events["step"] + events["n_steps"], (block + 1) * steps)
        length = np.maximum(last - first, 0)
        # One entry per (event, affected step), without a loop over steps.
        event = np.repeat(np.arange(length.shape[0]), length)
        offset = np.arange(event.shape[0]) - np.repeat(np.cumsum(length) - length, length)
        step = first[event] - block * steps + offset
        team = events["team"][event]
        metric = events["metric"][event]
        kind = events["kind"][event]
        for code in (_LEVEL_SHIFT, _SPIKE):  # spikes on top of shifts
            at = kind == code
            cells = (step[at], team[at], metric[at])
            np.add.at(values, cells, events["magnitude"][event][at])
            anomaly[cells] = code
        at = kind == _DROPOUT
        values[step[at], team[at]] = 0.0
        anomaly[step[at], team[at]] = _DROPOUT

    def _rows(self, start: int, stop: int, cache: _BlockCache) -> Batch:
        size = self._block_rows
        columns = [METRICS.index(name) for name in self.metrics]
        values, anomaly = [], []
        for block in range(start // size, -(-stop // size)):
            block_values, block_anomaly = cache.get(block)
            lo, hi = max(start - block * size, 0), min(stop - block * size, size)
            values.append(block_values[lo:hi])
            anomaly.append(block_anomaly[lo:hi])
        values = np.concatenate(values) if len(values) > 1 else values[0]
        anomaly = np.concatenate(anomaly) if len(anomaly) > 1 else anomaly[0]
        if columns != list(range(_N_ALL)):
            values, anomaly = values[:, columns], anomaly[:, columns]
        row = np.arange(start, stop, dtype=np.int64)
        step = row // self.n_teams
        seconds = self._start_s + step * self.period_s
        day_s = (seconds + _EPOCH_TO_MONDAY_S) % _SECONDS_PER_DAY
        return Batch(
            values=np.array(values, dtype=np.float32, copy=True),
            metric_names=self.metrics,
            start=start,
            timestamps=seconds.astype("datetime64[s]"),
            entity=(row % self.n_teams).astype(np.int32),
            shift=_shift_of(day_s),
            anomaly=np.array(anomaly, copy=True),
            source=f"SyntheticTelemetry(seed={self.seed})",
            entity_names=self.entity_names,
            anomaly_names=ANOMALY_KINDS,
        )


def _shift_of(day_s: np.ndarray) -> np.ndarray:
    """Shift code of a time of day in seconds: night 22-06, day 06-14, evening 14-22."""
    hour = day_s // 3600
    return (((hour + 2) // 8) % 3).astype(np.int8)


class _BlockCache:
    """Remembers the last block computed, so consecutive small batches compute each once."""

    def __init__(self, telemetry: SyntheticTelemetry) -> None:
        self._telemetry = telemetry
        self._block = -1
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None

    def get(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        if block != self._block or self._arrays is None:
            self._arrays = self._telemetry._block(block)
            self._block = block
        return self._arrays
