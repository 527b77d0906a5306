"""Data sources: deterministic synthetic telemetry, CSV/Parquet readers, bundled datasets."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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
    read_csv,
    read_parquet,
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
    np.testing.assert_array_equal(batch.team, np.tile(np.arange(3), 2 * STEPS_PER_DAY))
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
        assert (eight_weeks.team[rows] == events.team[e]).all()
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
        ({"kind": "excel"}, r"`data.kind` must be one of 'synthetic', 'csv', 'parquet', 'bundled'"),
        ({"kind": "csv"}, r"`data.settings.path` must name a file for data.kind='csv', got None"),
        ({"kind": "bundled", "settings": {"name": "iris"}}, r"`data.settings.name` must be one of"),
        ({"kind": "synthetic", "n_teams": 0}, r"`data.n_teams` must be an int >= 1, got 0"),
        ({"kind": "synthetic", "period_s": -1.0}, r"`data.period_s` must be a finite number > 0"),
        ({"kind": "synthetic", "settings": [1]}, r"`data.settings` must map setting names"),
    ],
)
def test_a_bad_data_spec_names_the_config_field(settings, message):
    with pytest.raises(ConfigError, match=message):
        DataSpec(**settings)


def test_a_data_spec_opens_the_source_it_names():
    spec = DataSpec("synthetic", {"n_records": 300, "n_teams": 3, "seed": 4})
    opened = open_source(spec, batch_size=128)
    whole = concat_batches(opened.batches())
    assert (opened.n_teams, opened.n_records) == (3, 300)
    assert digest(whole.arrays()) == digest(
        SyntheticTelemetry(300, n_teams=3, seed=4).rows().arrays()
    )


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


def test_concat_batches_refuses_batches_of_different_metrics():
    first = Batch(np.zeros((1, 1), np.float32), ("x",))
    with pytest.raises(ShapeError, match="metrics"):
        concat_batches([first, Batch(np.zeros((1, 1), np.float32), ("y",))])
    with pytest.raises(EmptyInputError):
        concat_batches([])


# -- readers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def telemetry_frame() -> pd.DataFrame:
    """1000 synthetic records as a DataFrame whose columns carry file-style names."""
    batch = SyntheticTelemetry(
        1_000, seed=3, metrics=("productivity", "quality", "error_rate")
    ).rows()
    frame = pd.DataFrame(batch.values, columns=["prod_u_h", "quality_pct", "err"])
    frame.insert(0, "team", batch.team)
    return frame


MAPPING = {"quality_pct": "quality", "prod_u_h": "productivity"}


def test_csv_round_trip_gives_the_same_float32_values(tmp_path, telemetry_frame):
    path = tmp_path / "telemetry.csv"
    telemetry_frame.to_csv(path, index=False)
    batch = read_csv(path, MAPPING)
    assert batch.metric_names == ("quality", "productivity")
    assert batch.mask is None and batch.start == 0 and batch.source == str(path)
    np.testing.assert_array_equal(batch.values, telemetry_frame[list(MAPPING)].to_numpy())


def test_parquet_round_trip_gives_the_same_float32_values(tmp_path, telemetry_frame):
    path = tmp_path / "telemetry.parquet"
    telemetry_frame.to_parquet(path, row_group_size=300)
    batch = read_parquet(path, MAPPING)
    assert batch.metric_names == ("quality", "productivity")
    np.testing.assert_array_equal(batch.values, telemetry_frame[list(MAPPING)].to_numpy())


def test_columns_none_reads_every_column_and_a_list_keeps_their_names(tmp_path, telemetry_frame):
    path = tmp_path / "telemetry.csv"
    telemetry_frame.to_csv(path, index=False)
    assert read_csv(path).metric_names == ("team", "prod_u_h", "quality_pct", "err")
    assert read_csv(path, ["err", "team"]).metric_names == ("err", "team")


@pytest.mark.parametrize("reader", ["csv", "parquet"])
def test_streaming_yields_batches_of_at_most_batch_size_with_the_same_rows(
    tmp_path, telemetry_frame, reader
):
    path = tmp_path / f"telemetry.{reader}"
    if reader == "csv":
        telemetry_frame.to_csv(path, index=False)
        batches = list(read_csv(path, MAPPING, batch_size=128))
        whole = read_csv(path, MAPPING)
    else:
        telemetry_frame.to_parquet(path, row_group_size=300)
        batches = list(read_parquet(path, MAPPING, batch_size=128))
        whole = read_parquet(path, MAPPING)
    assert max(batch.n_rows for batch in batches) <= 128
    assert [batch.start for batch in batches[1:]] == [batch.stop for batch in batches[:-1]]
    assert digest(concat_batches(batches).arrays()) == digest(whole.arrays())


CSV_WITH_TEXT = "team,productivity,quality\n1,85.5,88.7\n2,90.1,n/a?\n3,80.0,87.0\n"
CSV_WITH_GAP = "team,productivity,quality\n1,85.5,88.7\n2,,88.0\n3,80.0,87.0\n"


def test_a_text_cell_in_a_csv_raises_naming_file_data_row_and_column(tmp_path):
    path = tmp_path / "shifts.csv"
    path.write_text(CSV_WITH_TEXT)
    with pytest.raises(InvalidTypeError) as error:
        read_csv(path, {"productivity": "productivity", "quality": "quality"})
    message = str(error.value)
    assert str(path) in message
    assert "data row 2 (1-based, header not counted)" in message
    assert "column 'quality'" in message and "'n/a?' is not a number" in message


def test_a_missing_value_in_a_csv_raises_naming_file_data_row_and_column(tmp_path):
    path = tmp_path / "shifts.csv"
    path.write_text(CSV_WITH_GAP)
    with pytest.raises(InvalidValueError) as error:
        read_csv(path, ["quality", "productivity"])
    message = str(error.value)
    assert str(path) in message and "data row 2 " in message and "column 'productivity'" in message
    assert "missing value" in message


def test_a_bad_cell_in_a_later_chunk_is_reported_by_its_row_in_the_whole_file(tmp_path):
    rows = [f"{i},{80 + i % 7}.5" for i in range(1, 301)]
    rows[249] = "250,oops"
    path = tmp_path / "long.csv"
    path.write_text("team,productivity\n" + "\n".join(rows) + "\n")
    batches = read_csv(path, ["productivity"], batch_size=64)
    assert [batch.n_rows for batch in [next(batches), next(batches), next(batches)]] == [64] * 3
    with pytest.raises(InvalidTypeError, match=r"data row 250 .*'oops'"):
        next(batches)


def test_a_blank_line_in_a_csv_counts_as_a_row_of_missing_values(tmp_path):
    path = tmp_path / "gap.csv"
    path.write_text("productivity\n1.0\n\n3.0\n")
    with pytest.raises(InvalidValueError, match="data row 2 "):
        read_csv(path)
    assert read_csv(path, nan_policy="mask").mask.ravel().tolist() == [True, False, True]


@pytest.mark.parametrize("content", [CSV_WITH_TEXT, CSV_WITH_GAP])
def test_nan_policy_mask_masks_the_bad_cell_and_keeps_the_row(tmp_path, content):
    path = tmp_path / "shifts.csv"
    path.write_text(content)
    batch = read_csv(path, ["productivity", "quality"], nan_policy="mask")
    assert batch.n_rows == 3
    assert batch.mask.tolist() == [
        [True, True],
        [content == CSV_WITH_TEXT, content == CSV_WITH_GAP],
        [True, True],
    ]
    assert np.isnan(batch.values[~batch.mask]).all() and np.isfinite(batch.values[batch.mask]).all()
    assert batch.filled()[~batch.mask].tolist() == [0.0]


def test_a_text_cell_or_null_in_parquet_raises_naming_file_row_and_column(tmp_path):
    path = tmp_path / "shifts.parquet"
    table = pa.table({"productivity": [85.5, None, 80.0], "quality": ["88.7", "88.0", "high"]})
    pq.write_table(table, path)
    with pytest.raises(
        InvalidValueError, match=f"{path}, row 2 \\(1-based\\), column 'productivity': missing"
    ):
        read_parquet(path)
    with pytest.raises(
        InvalidTypeError, match="row 3 \\(1-based\\), column 'quality': 'high' is not a number"
    ):
        read_parquet(path, ["quality"])
    batch = read_parquet(path, nan_policy="mask")
    assert batch.mask.tolist() == [[True, True], [False, True], [True, False]]
    assert batch.values[0].tolist() == [85.5, np.float32(88.7)]


def test_an_infinite_value_is_a_bad_cell(tmp_path):
    path = tmp_path / "inf.csv"
    path.write_text("productivity\n1.0\ninf\n")
    with pytest.raises(InvalidValueError, match=r"data row 2 .*not finite"):
        read_csv(path)


@pytest.mark.parametrize("reader", ["csv", "parquet"])
def test_unknown_columns_raise_listing_the_available_columns(tmp_path, telemetry_frame, reader):
    path = tmp_path / f"telemetry.{reader}"
    if reader == "csv":
        telemetry_frame.to_csv(path, index=False)
        read = read_csv
    else:
        telemetry_frame.to_parquet(path)
        read = read_parquet
    with pytest.raises(ConfigError) as error:
        read(path, {"prod_u_h": "productivity", "speed": "throughput"}, batch_size=10)
    message = str(error.value)
    assert message.startswith(f"read_{reader}: `columns` must name columns of {path}")
    assert "available columns: ['team', 'prod_u_h', 'quality_pct', 'err']" in message
    assert message.endswith("got ['speed'], which the file does not have")


def test_bad_reader_options_raise_config_error_naming_them(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n")
    with pytest.raises(ConfigError, match="read_csv: `nan_policy` must be one of 'raise', 'mask'"):
        read_csv(path, nan_policy="drop")
    with pytest.raises(ConfigError, match="read_csv: `batch_size` must be an int >= 1 or None"):
        read_csv(path, batch_size=0)
    path.write_text("a,b\n1,2\n")
    with pytest.raises(
        ConfigError, match=r"read_csv: `columns` must name each entry once, got \['m'\]"
    ):
        read_csv(path, {"a": "m", "b": "m"})


def test_a_file_without_data_rows_raises_empty_input_error(tmp_path):
    header_only = tmp_path / "header.csv"
    header_only.write_text("productivity,quality\n")
    with pytest.raises(EmptyInputError, match="no data rows"):
        read_csv(header_only)
    nothing = tmp_path / "nothing.csv"
    nothing.write_text("")
    with pytest.raises(EmptyInputError, match="empty"):
        read_csv(nothing)


def test_readers_write_nothing(tmp_path, telemetry_frame):
    telemetry_frame.to_csv(tmp_path / "t.csv", index=False)
    telemetry_frame.to_parquet(tmp_path / "t.parquet")
    before = sorted(p.name for p in tmp_path.iterdir())
    read_csv(tmp_path / "t.csv", nan_policy="mask")
    list(read_parquet(tmp_path / "t.parquet", batch_size=100))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_missing_optional_extra_raises_config_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ConfigError, match="liam-core\\[datasets\\]"):
        read_csv(tmp_path / "any.csv")


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
