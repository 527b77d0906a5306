"""Data sources: deterministic synthetic telemetry, DataSpec, Batch, bundled datasets.

The readers of your own files and frames are specified in tests/test_readers.py."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from liam_core import (
    ConfigError,
    EmptyInputError,
    InvalidTypeError,
    InvalidValueError,
    LaborIntelligenceEngine,
    LiamError,
    ShapeError,
    digest,
)
from liam_core.data import (
    ANOMALY_KINDS,
    BUNDLED,
    METRICS,
    SHIFTS,
    Batch,
    DataSpec,
    SyntheticTelemetry,
    concat_batches,
    load_bundled,
    open_source,
)

TEAMS = 8
STEPS_PER_DAY = 96  # the default period is 15 minutes
STEPS_PER_WEEK = 7 * STEPS_PER_DAY
WEEKS = 8
N_WEEKS_OF_RECORDS = TEAMS * STEPS_PER_WEEK * WEEKS
NO_ANOMALIES = {"spike_rate": 0.0, "level_shift_rate": 0.0, "dropout_rate": 0.0}
SPIKE, LEVEL_SHIFT, DROPOUT = (ANOMALY_KINDS.index(k) for k in ("spike", "level_shift", "dropout"))


def by_step(values: np.ndarray, teams: int = TEAMS) -> np.ndarray:
    """``[rows, ...]`` -> ``[steps, teams, ...]`` (rows are time-major)."""
    return values.reshape(-1, teams, *values.shape[1:])


def deseasonalise(series: np.ndarray) -> np.ndarray:
    """Subtract from ``[steps, ...]`` its mean at each time of the week."""
    slot = np.arange(series.shape[0]) % STEPS_PER_WEEK
    sums = np.zeros((STEPS_PER_WEEK, *series.shape[1:]))
    np.add.at(sums, slot, series)
    return (
        series
        - (
            sums / np.bincount(slot, minlength=STEPS_PER_WEEK).reshape(-1, *[1] * (series.ndim - 1))
        )[slot]
    )


def robust_z(series: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD) along axis 0."""
    median = np.median(series, axis=0)
    return (series - median) / (1.4826 * np.median(np.abs(series - median), axis=0))


@pytest.fixture(scope="module")
def eight_weeks() -> Batch:
    """Eight weeks of eight teams, no drift, default anomalies."""
    return SyntheticTelemetry(N_WEEKS_OF_RECORDS, seed=11, drift_start=N_WEEKS_OF_RECORDS).rows()


@pytest.fixture(scope="module")
def eight_clean_weeks() -> Batch:
    """The same eight weeks without anomalies."""
    telemetry = SyntheticTelemetry(
        N_WEEKS_OF_RECORDS, seed=11, drift_start=N_WEEKS_OF_RECORDS, **NO_ANOMALIES
    )
    return telemetry.rows()


# -- synthetic telemetry: determinism ------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1000, 4096, 70_001])
def test_rows_are_bit_identical_whatever_the_batch_size(batch_size):
    telemetry = SyntheticTelemetry(70_001, n_teams=TEAMS, seed=5)  # three blocks, the last partial
    batches = list(telemetry.batches(batch_size))
    assert all(batch.n_rows <= batch_size for batch in batches)
    assert [batch.start for batch in batches] == list(range(0, 70_001, batch_size))
    whole = concat_batches(batches)
    assert whole.n_rows == 70_001
    assert digest(whole.arrays()) == digest(telemetry.rows().arrays())


def test_a_row_depends_on_the_settings_and_its_index_not_on_how_many_rows_follow():
    short = SyntheticTelemetry(5_000, seed=5, drift_start=2_000).rows()
    long = SyntheticTelemetry(50_000, seed=5, drift_start=2_000).rows(0, 5_000)
    assert digest(short.arrays()) == digest(long.arrays())


def test_any_slice_of_rows_equals_the_same_rows_of_the_whole():
    telemetry = SyntheticTelemetry(40_000, seed=2)
    whole = telemetry.rows()
    part = telemetry.rows(32_000, 33_500)  # crosses a block boundary
    assert part.start == 32_000
    assert digest(part.arrays()) == digest(whole.take(32_000, 33_500).arrays())


def test_a_different_seed_gives_different_data():
    first = SyntheticTelemetry(2_000, seed=0).rows().values
    second = SyntheticTelemetry(2_000, seed=1).rows().values
    assert digest(first) != digest(second)
    assert np.mean(first != second) > 0.99


def test_a_metric_subset_holds_the_same_columns_as_the_full_set():
    full = SyntheticTelemetry(3_000, seed=4).rows()
    subset = SyntheticTelemetry(3_000, seed=4, metrics=("error_rate", "productivity")).rows()
    columns = [METRICS.index("error_rate"), METRICS.index("productivity")]
    assert subset.metric_names == ("error_rate", "productivity")
    np.testing.assert_array_equal(subset.values, full.values[:, columns])
    np.testing.assert_array_equal(subset.anomaly, full.anomaly[:, columns])


# -- synthetic telemetry: layout and schema ---------------------------------------------------------


def test_rows_are_time_major_with_team_timestamp_and_shift():
    telemetry = SyntheticTelemetry(2 * STEPS_PER_DAY * 3, n_teams=3, start="2026-03-02T00:00:00")
    batch = telemetry.rows()
    np.testing.assert_array_equal(batch.entity, np.tile(np.arange(3), 2 * STEPS_PER_DAY))
    assert batch.entity_names == ("team-0", "team-1", "team-2")
    assert str(batch.timestamps[0]) == "2026-03-02T00:00:00"
    assert str(batch.timestamps[3]) == "2026-03-02T00:15:00"
    hours = by_step(batch.timestamps, 3)[:, 0].astype("datetime64[h]").astype(int) % 24
    expected = np.where(
        (hours >= 6) & (hours < 14), 1, np.where((hours >= 14) & (hours < 22), 2, 0)
    )
    np.testing.assert_array_equal(by_step(batch.shift, 3)[:, 0], expected)
    assert SHIFTS[batch.shift[0]] == "night"
    assert batch.values.dtype == np.float32 and batch.values.shape == (batch.n_rows, len(METRICS))


def test_values_pass_the_engine_validation_against_the_exported_schema(eight_weeks):
    telemetry = SyntheticTelemetry(10, seed=11)
    schema = telemetry.schema()
    assert schema.names == telemetry.metric_names == METRICS
    assert schema.ranges["utilization"] == (0.0, 1.0) and schema.units["quality"] == "%"
    engine = LaborIntelligenceEngine(dimensions=len(METRICS), schema=schema)
    tensors = engine.ingest_columns(eight_weeks.columns(), source="synthetic telemetry")
    expected = np.zeros(eight_weeks.values.shape, np.float32)
    for column, name in enumerate(METRICS):
        slot, sign = engine.slot_of(name)
        expected[:, slot] = eight_weeks.values[:, column] * np.float32(sign)
    np.testing.assert_array_equal(np.asarray(tensors), expected)


# -- synthetic telemetry: cycles, correlated teams, drift -----------------------------------------


def test_the_dominant_period_of_productivity_is_one_day(eight_weeks):
    productivity = by_step(eight_weeks.values[:, METRICS.index("productivity")])
    for team in range(TEAMS):
        series = productivity[:, team] - productivity[:, team].mean()
        power = np.abs(np.fft.rfft(series)) ** 2
        frequency = np.fft.rfftfreq(series.shape[0])  # cycles per step
        assert 1.0 / frequency[1 + np.argmax(power[1:])] == STEPS_PER_DAY


def test_the_weekly_cycle_stands_out_of_the_spectrum(eight_weeks):
    throughput = by_step(eight_weeks.values[:, METRICS.index("throughput")])[:, 0]
    power = np.abs(np.fft.rfft(throughput - throughput.mean())) ** 2
    weekly = WEEKS  # the bin of one cycle per week
    daily = WEEKS * 7  # the bin of one cycle per day
    assert power[weekly] > 100 * np.median(power)
    assert np.argmax(power[1:daily]) + 1 == weekly  # the strongest cycle slower than a day


def test_teams_share_latent_factors_beyond_their_common_cycles(eight_clean_weeks):
    residual = deseasonalise(by_step(eight_clean_weeks.values[:, METRICS.index("productivity")]))
    pairs = np.triu_indices(TEAMS, 1)
    assert np.corrcoef(residual.T)[pairs].min() > 0.5

    independent = SyntheticTelemetry(
        N_WEEKS_OF_RECORDS, seed=11, drift_start=N_WEEKS_OF_RECORDS, n_factors=0, **NO_ANOMALIES
    ).rows()
    residual = deseasonalise(by_step(independent.values[:, METRICS.index("productivity")]))
    assert np.abs(np.corrcoef(residual.T)[pairs]).max() < 0.1


@pytest.mark.parametrize(("metric", "direction"), [("quality", -1), ("error_rate", +1)])
def test_drift_moves_the_mean_after_drift_start_the_way_the_metric_gets_worse(metric, direction):
    half = N_WEEKS_OF_RECORDS // 2  # whole weeks on each side
    drifting = SyntheticTelemetry(N_WEEKS_OF_RECORDS, seed=11, **NO_ANOMALIES)
    assert drifting.first_drifted_record == half
    values = drifting.rows().values[:, METRICS.index(metric)]
    change = values[half:].mean() - values[:half].mean()
    spread = values[:half].std()
    assert direction * change > 0.5 * spread

    steady = dataclasses.replace(drifting, drift_level=0.0).rows().values[:, METRICS.index(metric)]
    np.testing.assert_array_equal(steady[:half], values[:half])
    assert abs(steady[half:].mean() - steady[:half].mean()) < 0.2 * spread


def test_drift_trend_grows_with_time_after_drift_start():
    telemetry = SyntheticTelemetry(
        N_WEEKS_OF_RECORDS, seed=11, drift_level=0.0, drift_trend=0.05, **NO_ANOMALIES
    )
    flat = dataclasses.replace(telemetry, drift_trend=0.0)
    change = telemetry.rows().values - flat.rows().values
    quarter = N_WEEKS_OF_RECORDS // 4
    productivity = METRICS.index("productivity")
    assert (change[: 2 * quarter] == 0).all()
    assert (
        change[3 * quarter :, productivity].mean()
        < change[2 * quarter : 3 * quarter, productivity].mean()
        < 0
    )


# -- synthetic telemetry: anomalies and their ground truth ----------------------------------------


def test_anomaly_labels_mark_exactly_the_cells_that_differ_from_clean_data(
    eight_weeks, eight_clean_weeks
):
    changed = eight_weeks.values != eight_clean_weeks.values
    labelled = eight_weeks.anomaly != 0
    assert {SPIKE, LEVEL_SHIFT, DROPOUT} <= set(np.unique(eight_weeks.anomaly))
    np.testing.assert_array_equal(changed, labelled)


def test_injected_spikes_exceed_a_robust_z_score_threshold(eight_weeks):
    values = by_step(eight_weeks.values.astype(np.float64))
    labels = by_step(eight_weeks.anomaly)
    raw = robust_z(values)
    assert np.abs(raw[labels == SPIKE]).min() > 3.5
    # After removing the cycles, a plain threshold finds the spikes and little else.
    residual = np.abs(robust_z(deseasonalise(values)))
    assert residual[labels == SPIKE].min() > 6.0
    assert np.mean(residual[labels == 0] > 6.0) < 1e-3


def test_dropouts_read_zero_in_every_metric_of_one_team(eight_weeks):
    dropped = eight_weeks.anomaly == DROPOUT
    assert dropped.any()
    np.testing.assert_array_equal(dropped, dropped[:, :1].repeat(dropped.shape[1], axis=1))
    assert (eight_weeks.values[dropped] == 0).all()


def test_anomaly_events_list_the_labelled_cells(eight_weeks):
    telemetry = SyntheticTelemetry(N_WEEKS_OF_RECORDS, seed=11, drift_start=N_WEEKS_OF_RECORDS)
    events = telemetry.anomaly_events()
    covered = np.zeros(eight_weeks.values.shape, dtype=bool)
    for e in range(len(events)):
        rows = events.first_row[e] + TEAMS * np.arange(events.n_steps[e])
        rows = rows[rows < N_WEEKS_OF_RECORDS]
        assert (eight_weeks.entity[rows] == events.entity[e]).all()
        columns = slice(None) if events.metric[e] < 0 else events.metric[e]
        covered[rows, columns] = True
        if events.kind[e] == DROPOUT:
            assert (eight_weeks.anomaly[rows] == DROPOUT).all()
    np.testing.assert_array_equal(covered, eight_weeks.anomaly != 0)
    counts = events.counts()
    assert counts["spike"] > 0 and counts["level_shift"] > 0 and counts["dropout"] > 0


def test_no_anomalies_when_every_rate_is_zero(eight_clean_weeks):
    assert not eight_clean_weeks.anomaly.any()


# -- synthetic telemetry: settings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"n_records": 0}, "n_records"),
        ({"n_records": -5}, "n_records"),
        ({"n_records": 10.0}, "n_records"),
        ({"n_records": True}, "n_records"),
        ({"n_teams": 0}, "n_teams"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"metrics": ("productivity", "speed")}, "metrics"),
        ({"metrics": "productivity"}, "metrics"),
        ({"metrics": ()}, "metrics"),
        ({"metrics": ("quality", "quality")}, "metrics"),
        ({"period_s": 0}, "period_s"),
        ({"start": "yesterday"}, "start"),
        ({"n_factors": -1}, "n_factors"),
        ({"factor_strength": float("nan")}, "factor_strength"),
        ({"noise_scale": -1.0}, "noise_scale"),
        ({"drift_start": -1}, "drift_start"),
        ({"spike_rate": 1.5}, "spike_rate"),
        ({"spike_size": (8.0, 2.0)}, "spike_size"),
        ({"level_shift_size": 3.0}, "level_shift_size"),
        ({"level_shift_steps": (0, 4)}, "level_shift_steps"),
        ({"dropout_steps": (2.5, 4)}, "dropout_steps"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_field(settings, field):
    arguments = {"n_records": 100} | settings
    with pytest.raises(ConfigError, match=f"^SyntheticTelemetry: `{field}` must "):
        SyntheticTelemetry(**arguments)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"n_records": 0}, r"`n_records` must be an int >= 1, got 0"),
        ({"n_records": 10.0}, r"`n_records` must be an int >= 1, got float: 10.0"),
        (
            {"seed": 2**64},
            r"`seed` must be an int in \[0, 18446744073709551615\], got 18446744073709551616",
        ),
        ({"metrics": ("productivity", "speed")}, r"`metrics` must be one of 'productivity', "),
        ({"metrics": ()}, r"`metrics` must name at least one metric"),
        ({"metrics": ("quality", "quality")}, r"`metrics` must name each entry once"),
        ({"start": "yesterday"}, r"`start` must be an ISO date-time such as '2026-01-05T00:00:00'"),
        ({"spike_rate": 1.5}, r"`spike_rate` must be a finite number in \[0.0, 1.0\], got 1.5"),
        ({"factor_strength": float("nan")}, r"`factor_strength` must be a finite number >= 0.0"),
        ({"spike_size": (8.0, 2.0)}, r"`spike_size` must be a pair \(low, high\) with low <= high"),
        ({"level_shift_size": 3.0}, r"`level_shift_size` must be a pair \(float low, float high\)"),
        ({"dropout_steps": (2.5, 4)}, r"`dropout_steps` must be an int >= 1, got float: 2.5"),
    ],
)
def test_bad_settings_say_what_was_expected_and_what_was_given(settings, message):
    with pytest.raises(ConfigError, match=message):
        SyntheticTelemetry(**({"n_records": 100} | settings))


def test_bad_batch_size_or_row_range_raise_config_error():
    telemetry = SyntheticTelemetry(100)
    for batch_size in (0, -3, 2.5):
        with pytest.raises(ConfigError, match="`batch_size`"):
            telemetry.batches(batch_size)  # refused at the call, before iterating
    with pytest.raises(ConfigError, match="start < stop <= n_records=100, got start=50, stop=101"):
        telemetry.rows(50, 101)
    with pytest.raises(ConfigError, match=r"SyntheticTelemetry.rows: `start` must be an int >= 0"):
        telemetry.rows(-1)


def test_settings_are_frozen_and_unknown_metric_error_lists_the_known_ones():
    telemetry = SyntheticTelemetry(100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        telemetry.seed = 3
    with pytest.raises(
        ConfigError, match=r"`metrics` must be one of 'productivity', .*got 'speed'"
    ):
        SyntheticTelemetry(100, metrics=("speed",))


# -- DataSpec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"kind": "synthetic"}, r"`data.n_records` must be an int >= 1 .*, got None"),
        ({"kind": "excel"}, r"`data.kind` must be one of 'synthetic', 'csv', 'parquet', 'bundled'"),
        ({"kind": "csv"}, r"`data.path` must name a file for data.kind='csv', got None"),
        ({"kind": "bundled", "name": "iris"}, r"`data.name` must be one of"),
        (
            {"kind": "synthetic", "n_records": 10, "n_teams": 0},
            r"`data.n_teams` must be an int >= 1",
        ),
        (
            {"kind": "synthetic", "n_records": 10, "period_s": 0},
            r"`data.period_s` must be an int >= 1, got 0",
        ),
        ({"kind": "csv", "path": "m.csv", "step": "1M"}, r"`data.step` must be a fixed duration"),
        ({"kind": "csv", "path": "m.csv", "aggregate": "median"}, r"`data.aggregate` must be one"),
        ({"kind": "csv", "path": "m.csv", "nan_policy": "drop"}, r"`data.nan_policy` must be one"),
        ({"kind": "csv", "path": "m.csv", "encoding": "klingon"}, r"`data.encoding` must be a"),
        (
            {"kind": "csv", "path": "m.csv", "entity_columns": ["host"]},
            r"`data.entity_columns` needs a time column: set `data.time_column`",
        ),
    ],
)
def test_a_bad_data_spec_names_the_config_field(settings, message):
    with pytest.raises(ConfigError, match=message):
        DataSpec(**settings)


@pytest.mark.parametrize(
    ("settings", "field", "owner"),
    [
        ({"kind": "csv", "path": "m.csv", "n_records": 10}, "n_records", "'synthetic'"),
        ({"kind": "parquet", "path": "m.parquet", "encoding": "utf-8"}, "encoding", "'csv'"),
        ({"kind": "synthetic", "path": "m.csv"}, "path", "'csv' or data.kind='parquet'"),
        ({"kind": "bundled", "name": "co2", "step": "5min"}, "step", "'csv'"),
    ],
)
def test_a_data_spec_refuses_a_field_of_another_kind_naming_it(settings, field, owner):
    with pytest.raises(ConfigError, match=f"`data.{field}` is a setting of data.kind={owner}"):
        DataSpec(**settings)


def test_data_spec_fields_are_the_union_of_the_readers_keyword_arguments():
    import inspect

    from liam_core.data import KIND_FIELDS, read_csv, read_parquet

    fields = {field.name for field in dataclasses.fields(DataSpec)} - {"kind"}
    assert fields == {name for names in KIND_FIELDS.values() for name in names}
    for kind, reader in (("csv", read_csv), ("parquet", read_parquet)):
        arguments = set(inspect.signature(reader).parameters) - {"batch_size"}
        assert arguments == set(KIND_FIELDS[kind])
    synthetic = {f.name for f in dataclasses.fields(SyntheticTelemetry) if f.init}
    assert synthetic == set(KIND_FIELDS["synthetic"])


def test_a_data_spec_opens_the_source_it_names():
    spec = DataSpec("synthetic", n_records=300, n_teams=3, seed=4)
    opened = open_source(spec, batch_size=128)
    whole = concat_batches(opened.batches())
    assert (opened.n_entities, opened.n_records) == (3, 300)
    assert opened.entity_names == ("team-0", "team-1", "team-2")
    assert digest(whole.arrays()) == digest(
        SyntheticTelemetry(300, n_teams=3, seed=4).rows().arrays()
    )


def test_a_data_spec_opens_a_csv_time_series_with_its_entities_and_step(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "time,host,cpu\n"
        "2024-01-01T00:00:00Z,b,1\n2024-01-01T00:00:00Z,a,2\n"
        "2024-01-01T00:05:00Z,a,3\n2024-01-01T00:05:00Z,b,4\n"
    )
    spec = DataSpec("csv", path=str(path), time_column="time", entity_columns=["host"])
    opened = open_source(spec, batch_size=3)
    assert (opened.n_entities, opened.period_s, opened.n_records) == (2, 300.0, 4)
    assert opened.entity_names == ("a", "b") and opened.schema.names == ("cpu",)
    assert [batch.n_rows for batch in opened.batches()] == [3, 1]
    assert concat_batches(opened.batches()).values.ravel().tolist() == [2.0, 1.0, 3.0, 4.0]


# -- Batch ------------------------------------------------------------------------------------


def test_batch_refuses_values_that_are_not_a_float32_matrix_or_mismatched_names():
    with pytest.raises(ShapeError, match="float32"):
        Batch(np.zeros((2, 1)), ("x",))
    with pytest.raises(ShapeError, match="`metric_names` must name the 2 value columns, got 1"):
        Batch(np.zeros((3, 2), np.float32), ("x",))
    with pytest.raises(ShapeError, match=r"`mask` must have the shape \(3, 2\) of `values`"):
        Batch(np.zeros((3, 2), np.float32), ("x", "y"), mask=np.ones((3, 1), bool))
    with pytest.raises(InvalidTypeError, match="Batch: `metric_names` must be a list of names"):
        Batch(np.zeros((3, 1), np.float32), "x")
    with pytest.raises(ConfigError, match="Batch: `start` must be an int >= 0, got -1"):
        Batch(np.zeros((3, 1), np.float32), ("x",), start=-1)
    with pytest.raises(ShapeError, match="`entity` and `entity_names` must be given together"):
        Batch(np.zeros((3, 1), np.float32), ("x",), entity=np.zeros(3, np.int32))


def test_concat_batches_refuses_batches_of_different_metrics():
    first = Batch(np.zeros((1, 1), np.float32), ("x",))
    with pytest.raises(ShapeError, match="metrics"):
        concat_batches([first, Batch(np.zeros((1, 1), np.float32), ("y",))])
    with pytest.raises(EmptyInputError):
        concat_batches([])


def test_batches_carry_their_entity_names_through_take_and_concat():
    batch = SyntheticTelemetry(12, n_teams=3).rows()
    parts = [batch.take(0, 5), batch.take(5, 12)]
    assert all(part.entity_names == ("team-0", "team-1", "team-2") for part in parts)
    assert digest(concat_batches(parts).arrays()) == digest(batch.arrays())


# -- bundled datasets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape", "has_timestamps", "has_target"),
    [
        ("co2", (2284, 1), True, False),
        ("sunspots", (309, 1), True, False),
        ("macrodata", (203, 12), True, False),
        ("elnino", (732, 1), True, False),
        ("diabetes", (442, 10), False, True),
        ("wine", (178, 13), False, True),
    ],
)
def test_every_bundled_dataset_loads_with_finite_or_masked_values(
    name, shape, has_timestamps, has_target
):
    batch = load_bundled(name)
    assert batch.values.shape == shape and batch.values.dtype == np.float32
    raw, names, _, target = BUNDLED[name].load()
    assert batch.metric_names == names
    np.testing.assert_array_equal(batch.values[batch.mask], raw[batch.mask].astype(np.float32))
    if has_target:
        np.testing.assert_array_equal(batch.target, target)
    assert len(batch.metric_names) == shape[1]
    assert np.isfinite(batch.values[batch.mask]).all()
    assert np.isnan(batch.values[~batch.mask]).all()
    assert (batch.timestamps is not None) == has_timestamps
    assert (batch.target is not None) == has_target
    if has_timestamps:
        assert (np.diff(batch.timestamps) > np.timedelta64(0, "s")).all()


def test_the_registry_lists_every_bundled_dataset():
    assert list(BUNDLED) == ["co2", "sunspots", "macrodata", "elnino", "diabetes", "wine"]


def test_co2_missing_weeks_can_be_masked_dropped_or_refused():
    masked = load_bundled("co2", nan_policy="mask")
    assert (~masked.mask).sum() == 59
    dropped = load_bundled("co2", nan_policy="drop")
    assert dropped.n_rows == 2284 - 59 and np.isfinite(dropped.values).all()
    np.testing.assert_array_equal(dropped.values, masked.values[masked.mask[:, 0]])
    with pytest.raises(InvalidValueError, match=r"'co2', row \d+ \(1-based\), metric 'co2'"):
        load_bundled("co2", nan_policy="raise")


def test_an_unknown_bundled_name_raises_listing_the_known_names():
    with pytest.raises(ConfigError, match="load_bundled: `name` must be one of 'co2', 'sunspots'"):
        load_bundled("iris")
    with pytest.raises(
        LiamError, match="load_bundled: `nan_policy` must be one of 'raise', 'mask'"
    ):
        load_bundled("wine", nan_policy="zero")
