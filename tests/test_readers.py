"""Your own metrics: CSV, Parquet, DataFrames and Arrow tables as time series of entities.

The contract: a time column, entity columns and metric columns (wide or long) become
time-major rows on a regular step, one row per entity in sorted order at every step, with
every bad input a typed error naming the file, the line or row, and the column.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from liam_core import ConfigError, ConfigTypeError, EmptyInputError, InvalidValueError, LiamError
from liam_core.data import (
    Batch,
    DataError,
    DataFileNotFoundError,
    DataSpec,
    EmptyDataError,
    concat_batches,
    open_source,
    read_csv,
    read_frame,
    read_parquet,
)

REPO = Path(__file__).resolve().parents[1]
SERIES = {"time_column": "time", "entity_columns": ["host"]}


def wide_frame() -> pd.DataFrame:
    """Two hosts, three 5-minute steps, two metrics; rows in time-major order."""
    return pd.DataFrame(
        {
            "time": pd.to_datetime(["2024-03-01T00:00:00Z"] * 2 + ["2024-03-01T00:05:00Z"] * 2
                                   + ["2024-03-01T00:10:00Z"] * 2),
            "host": ["a", "b"] * 3,
            "cpu": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "errors": [0.0, 1.0, 0.0, 2.0, 1.0, 0.0],
        }
    )  # fmt: skip


def write_csv(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def same(first: Batch, second: Batch) -> None:
    """Two batches hold the same rows, names and per-row arrays."""
    assert first.metric_names == second.metric_names
    assert first.entity_names == second.entity_names
    assert first.arrays().keys() == second.arrays().keys()
    for name, array in first.arrays().items():
        np.testing.assert_array_equal(array, second.arrays()[name], err_msg=name)


# -- the data model --------------------------------------------------------------------------


def test_rows_are_time_major_one_per_entity_in_sorted_order_at_every_step():
    frame = wide_frame().iloc[::-1]  # hosts b before a, latest first
    batch = read_frame(frame, **SERIES)
    assert batch.entity_names == ("a", "b")
    assert batch.entity.tolist() == [0, 1, 0, 1, 0, 1]
    assert batch.entity.dtype == np.int32
    assert [str(t) for t in batch.timestamps[::2]] == [
        "2024-03-01T00:00:00",
        "2024-03-01T00:05:00",
        "2024-03-01T00:10:00",
    ]
    assert batch.values[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert batch.mask is None  # nan_policy="raise": nothing is missing


def test_metrics_default_to_every_other_column_and_a_list_selects_and_orders_them():
    assert read_frame(wide_frame(), **SERIES).metric_names == ("cpu", "errors")
    batch = read_frame(wide_frame(), **SERIES, metrics=["errors", "cpu"])
    assert batch.metric_names == ("errors", "cpu")
    assert batch.values[:, 1].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_wide_and_long_layouts_give_the_same_batch():
    wide = wide_frame()
    long = wide.melt(id_vars=["time", "host"], var_name="metric", value_name="value")
    same(read_frame(wide, **SERIES), read_frame(long.sample(frac=1, random_state=0), **SERIES,
                                                layout="long"))  # fmt: skip
    renamed = long.rename(columns={"metric": "name", "value": "reading"})
    batch = read_frame(renamed, **SERIES, layout="long", metric_column="name",
                       value_column="reading", metrics=["errors"])  # fmt: skip
    assert batch.metric_names == ("errors",)


def test_unsorted_input_gives_the_same_batch_as_sorted_input():
    frame = wide_frame()
    shuffled = frame.sample(frac=1, random_state=3)
    same(read_frame(frame, **SERIES), read_frame(shuffled, **SERIES))


def test_several_entity_columns_form_one_key_named_with_slashes():
    frame = pd.DataFrame(
        {
            "time": [0, 0, 0, 300, 300, 300],
            "region": ["eu", "us", "eu"] * 2,
            "host": ["b", "a", "a"] * 2,
            "cpu": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    batch = read_frame(frame, time_column="time", entity_columns=["region", "host"],
                       time_unit="s")  # fmt: skip
    assert batch.entity_names == ("eu/a", "eu/b", "us/a")
    assert batch.values[:, 0].tolist() == [3.0, 1.0, 2.0, 6.0, 4.0, 5.0]


def test_numeric_entities_sort_as_numbers():
    frame = pd.DataFrame({"t": [0, 0, 0, 60], "host": [10, 2, 1, 1], "cpu": [1.0, 2.0, 3.0, 4]})
    batch = read_frame(
        frame, time_column="t", entity_columns=["host"], time_unit="s", nan_policy="mask"
    )
    assert batch.entity_names == ("1", "2", "10")


def test_a_csv_a_parquet_file_a_dataframe_and_an_arrow_table_give_the_same_batch(tmp_path):
    frame = wide_frame()
    csv_path, parquet_path = tmp_path / "m.csv", tmp_path / "m.parquet"
    frame.to_csv(csv_path, index=False)
    frame.to_parquet(parquet_path)
    expected = read_frame(frame, **SERIES)
    table = pa.Table.from_pandas(frame)
    for batch in (
        read_csv(csv_path, **SERIES),
        read_parquet(parquet_path, **SERIES),
        read_frame(table, **SERIES),
        read_frame(table.to_batches()[0], **SERIES),
        read_frame(frame.set_index("time"), **SERIES),  # the time in the index
    ):
        same(batch, expected)


def test_batch_size_cuts_the_same_rows_into_batches(tmp_path):
    path = tmp_path / "m.csv"
    wide_frame().to_csv(path, index=False)
    batches = list(read_csv(path, **SERIES, batch_size=4))
    assert [(batch.start, batch.n_rows) for batch in batches] == [(0, 4), (4, 2)]
    same(concat_batches(batches), read_csv(path, **SERIES))


def test_without_a_time_column_rows_are_records_in_file_order(tmp_path):
    path = write_csv(tmp_path, "b,a\n2,1\n1,2\n3,3\n")
    batch = read_csv(path)
    assert batch.metric_names == ("b", "a") and batch.timestamps is None and batch.entity is None
    assert batch.values.tolist() == [[2.0, 1.0], [1.0, 2.0], [3.0, 3.0]]


# -- times ------------------------------------------------------------------------------------


def test_iso_times_with_a_zone_are_converted_to_utc_and_without_one_are_utc(tmp_path):
    path = write_csv(
        tmp_path,
        "time,cpu\n2024-03-01T02:00:00+02:00,1\n2024-03-01 00:05:00,2\n2024-03-01T00:10:00Z,3\n"
        "2024-02-29T19:15:00-05:00,4\n",
    )
    batch = read_csv(path, time_column="time")
    assert [str(t) for t in batch.timestamps] == [
        "2024-03-01T00:00:00",
        "2024-03-01T00:05:00",
        "2024-03-01T00:10:00",
        "2024-03-01T00:15:00",
    ]


@pytest.mark.parametrize(
    ("times", "unit"),
    [
        ([1709251200, 1709251500, 1709251800], None),  # epoch seconds, detected
        ([1709251200000, 1709251500000, 1709251800000], None),  # milliseconds, detected
        ([1709251200.0, 1709251500.0, 1709251800.0], "s"),
        (["1709251200", "1709251500", "1709251800"], None),  # numbers as text
    ],
)
def test_epoch_seconds_and_milliseconds_are_times(times, unit):
    batch = read_frame(pd.DataFrame({"t": times, "cpu": [1.0, 2.0, 3.0]}), time_column="t",
                       time_unit=unit)  # fmt: skip
    assert str(batch.timestamps[0]) == "2024-03-01T00:00:00"
    assert str(batch.timestamps[2]) == "2024-03-01T00:10:00"


def test_epoch_numbers_that_could_be_seconds_or_milliseconds_ask_for_time_unit():
    frame = pd.DataFrame({"t": [50_000_000_000, 50_000_000_300], "cpu": [1.0, 2.0]})
    with pytest.raises(DataError, match=r"`t` holds numbers .* set `time_unit` to 's', 'ms'"):
        read_frame(frame, time_column="t")
    batch = read_frame(frame, time_column="t", time_unit="ms")
    assert str(batch.timestamps[0]).startswith("1971-08-02T16:53:20")  # sub-second step: ns


@pytest.mark.parametrize("zone", [None, "UTC", "America/New_York"])
def test_pandas_datetimes_naive_or_with_a_zone_are_times_in_utc(zone):
    times = pd.date_range("2024-03-01T00:00:00", periods=3, freq="5min", tz=zone)
    batch = read_frame(pd.DataFrame({"t": times, "cpu": [1.0, 2.0, 3.0]}), time_column="t")
    expected = times.tz_convert("UTC").tz_localize(None) if zone else times
    np.testing.assert_array_equal(batch.timestamps, expected.to_numpy().astype("datetime64[s]"))


# -- resampling ---------------------------------------------------------------------------------


def irregular_frame() -> pd.DataFrame:
    """One host, irregular times over an hour, a missing cell, an empty 5-minute bin."""
    rng = np.random.default_rng(0)
    seconds = np.sort(rng.choice(3600, size=40, replace=False))
    seconds = seconds[(seconds < 1200) | (seconds >= 1500)]  # 20:00-25:00 is empty
    values = rng.normal(50, 10, size=seconds.shape)
    values[3] = np.nan
    times = pd.Timestamp("2024-03-01T00:00:00") + pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({"time": times, "cpu": values})


@pytest.mark.parametrize("how", ["mean", "max", "min", "sum", "last"])
def test_resampling_equals_pandas_resample_of_the_same_frame(how):
    frame = irregular_frame()
    batch = read_frame(frame, time_column="time", step="5min", aggregate=how, nan_policy="mask")
    resampled = getattr(frame.set_index("time")["cpu"].resample("5min"), how)
    expected = resampled(min_count=1) if how == "sum" else resampled()  # an empty bin: missing
    np.testing.assert_array_equal(
        batch.timestamps, expected.index.to_numpy().astype("datetime64[s]")
    )
    np.testing.assert_array_equal(batch.values[:, 0], expected.to_numpy().astype(np.float32))
    assert batch.mask[:, 0].tolist() == expected.notna().tolist()
    assert not batch.mask[4, 0]  # the empty bin is masked


def test_aggregate_can_differ_per_metric_and_defaults_to_mean():
    frame = pd.DataFrame(
        {"t": pd.to_datetime(["2024-03-01T00:00:00", "2024-03-01T00:01:00", "2024-03-01T00:02:00"]),
         "cpu": [1.0, 5.0, 3.0], "errors": [1.0, 2.0, 3.0], "latency": [1.0, 2.0, 6.0]}
    )  # fmt: skip
    batch = read_frame(frame, time_column="t", step="5min",
                       aggregate={"cpu": "max", "errors": "sum"})  # fmt: skip
    assert batch.values.tolist() == [[5.0, 6.0, 3.0]]
    with pytest.raises(ConfigError, match=r"`aggregate` must map metrics of the data .*\['disk'\]"):
        read_frame(frame, time_column="t", step="5min", aggregate={"disk": "max"})


def test_step_none_infers_the_step_of_regular_data_and_masks_missing_steps():
    times = pd.to_datetime(["2024-03-01T00:00", "2024-03-01T00:05", "2024-03-01T00:15"])
    frame = pd.DataFrame({"t": times, "cpu": [1.0, 2.0, 3.0]})
    batch = read_frame(frame, time_column="t", nan_policy="mask")
    assert batch.n_rows == 4 and batch.mask[:, 0].tolist() == [True, True, False, True]
    assert str(batch.timestamps[2]) == "2024-03-01T00:10:00" and np.isnan(batch.values[2, 0])


def test_step_none_refuses_irregular_times_and_says_to_set_step(tmp_path):
    path = write_csv(tmp_path, "time,cpu\n0,1\n300,2\n600,3\n700,4\n900,5\n")
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time", time_unit="s")
    message = str(error.value)
    assert f"{path}, line 5: `time` must lie on a regular grid of 5min" in message
    assert "got 1970-01-01T00:11:40Z; set `step`" in message
    assert read_csv(path, time_column="time", time_unit="s", step="5min").n_rows == 4


def test_a_gap_of_one_entity_is_masked_or_refused_naming_entity_and_time():
    frame = wide_frame().drop(index=3)  # host b at 00:05
    batch = read_frame(frame, **SERIES, nan_policy="mask")
    assert batch.mask[:, 0].tolist() == [True, True, True, False, True, True]
    with pytest.raises(DataError, match=r"`cpu` has no value at 2024-03-01T00:05:00Z for entity "
                                        r"'b' .* set `nan_policy` to 'mask'"):  # fmt: skip
        read_frame(frame, **SERIES)


def test_duplicate_rows_are_refused_naming_both_lines(tmp_path):
    path = write_csv(tmp_path, "time,host,cpu\n0,a,1\n300,a,2\n0,a,3\n")
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time", entity_columns=["host"], time_unit="s")
    message = str(error.value)
    assert message.startswith(f"{path}, line 2 and line 4: rows must have distinct times")
    assert "time 1970-01-01T00:00:00Z and entity 'a'" in message
    assert "set `duplicates` to 'aggregate'" in message


@pytest.mark.parametrize(("how", "first"), [("mean", 2.0), ("sum", 4.0), ("last", 3.0)])
def test_duplicate_rows_are_aggregated_when_asked_never_both_kept(tmp_path, how, first):
    path = write_csv(tmp_path, "time,host,cpu\n0,a,1\n300,a,2\n0,a,3\n")
    batch = read_csv(path, time_column="time", entity_columns=["host"], time_unit="s",
                     duplicates="aggregate", aggregate=how)  # fmt: skip
    assert batch.values[:, 0].tolist() == [first, 2.0]


def test_a_duplicate_metric_row_of_a_long_table_is_refused_naming_the_metric():
    frame = pd.DataFrame({"time": [0, 0, 0], "metric": ["cpu", "cpu", "mem"],
                          "value": [1.0, 2.0, 3.0]})  # fmt: skip
    with pytest.raises(DataError, match=r"row 1 and row 2: .* and metric 'cpu'"):
        read_frame(frame, time_column="time", layout="long", time_unit="s")


def test_a_label_column_becomes_the_anomaly_codes_and_their_names(tmp_path):
    path = write_csv(
        tmp_path,
        "time,host,cpu,incident\n0,a,1,0\n0,b,2,spike\n300,a,3,\n300,b,4,dropout\n",
    )
    batch = read_csv(path, time_column="time", entity_columns=["host"], time_unit="s",
                     label_column="incident")  # fmt: skip
    assert batch.metric_names == ("cpu",)  # the label is not a metric
    assert batch.anomaly_names == ("none", "dropout", "spike")
    assert batch.anomaly[:, 0].tolist() == [0, 2, 0, 1]
    assert batch.anomaly.dtype == np.int8


def test_a_step_holding_an_incident_is_labelled_with_it():
    frame = pd.DataFrame({"t": [0, 60, 120, 300], "cpu": [1.0, 2.0, 3.0, 4.0],
                          "label": [0, 0, 1, 0]})  # fmt: skip
    batch = read_frame(frame, time_column="t", time_unit="s", step="5min", label_column="label")
    assert batch.anomaly[:, 0].tolist() == [1, 0] and batch.anomaly_names == ("none", "1")


def test_an_infinite_value_is_refused_or_masked(tmp_path):
    path = write_csv(tmp_path, "time,cpu\n0,1\n300,inf\n600,3\n")
    with pytest.raises(DataError, match=r"line 3: `cpu` must be a finite number, got inf"):
        read_csv(path, time_column="time", time_unit="s")
    batch = read_csv(path, time_column="time", time_unit="s", nan_policy="mask")
    assert batch.mask[:, 0].tolist() == [True, False, True]


# -- the example ----------------------------------------------------------------------------------


def _example_module():
    spec = importlib.util.spec_from_file_location(
        "make_metrics", REPO / "examples" / "make_metrics.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_generator_reproduces_the_committed_csv_byte_for_byte(tmp_path):
    _example_module().write(tmp_path / "metrics.csv")
    committed = (REPO / "examples" / "metrics.csv").read_bytes()
    assert (tmp_path / "metrics.csv").read_bytes() == committed
    assert len(committed) < 1_000_000


def test_the_example_config_reads_four_hosts_at_five_minutes_with_labelled_incidents(monkeypatch):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    monkeypatch.chdir(REPO)  # the path is relative to the repository root
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("analyze", overrides=["experiment=example"])
    spec = DataSpec(**OmegaConf.to_container(cfg.data, resolve=True))
    opened = open_source(spec, batch_size=4096)
    assert (opened.n_entities, opened.period_s) == (4, 300.0)
    assert opened.entity_names == ("api1", "db1", "web1", "web2")
    assert opened.schema.names == ("cpu", "latency_ms", "errors")
    batch = concat_batches(opened.batches())
    assert batch.n_rows == 28 * 288 * 4
    assert set(batch.anomaly_names) == {"none", "cpu_saturation", "latency_spike", "dropout",
                                        "level_shift"}  # fmt: skip
    assert 0 < (~batch.mask).any(axis=1).sum() < 0.02 * batch.n_rows


# -- every failure is a typed error naming file, line and column -------------------------------


def test_a_missing_file_is_a_file_not_found_error_naming_it(tmp_path):
    with pytest.raises(DataFileNotFoundError, match=f"{tmp_path / 'nope.csv'}: no such file"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError):
        read_parquet(tmp_path / "nope.parquet")


def test_a_directory_is_refused_naming_it(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="is a directory; expected a CSV file"):
        read_csv(tmp_path)


def test_undecodable_bytes_name_line_column_and_the_encoding_option(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("time,host,cpu\n0,a,1\n300,caf\xe9,2\n".encode("latin-1"))
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time", entity_columns=["host"], time_unit="s")
    message = str(error.value)
    assert (
        f"{path}, line 3, column 'host': the bytes must be text in the encoding 'utf-8'" in message
    )
    assert "set `encoding` (`data.encoding` in a config)" in message
    batch = read_csv(path, time_column="time", entity_columns=["host"], time_unit="s",
                     encoding="latin-1", nan_policy="mask")  # fmt: skip
    assert batch.entity_names == ("a", "café")


@pytest.mark.parametrize(("row", "fields"), [("300,2,9", 3), ("300", 1)])
def test_a_ragged_row_is_an_error_naming_its_line_never_padded_or_dropped(tmp_path, row, fields):
    path = write_csv(tmp_path, f"time,cpu\n0,1\n\n{row}\n600,3\n")  # a blank line before it
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time", time_unit="s")
    assert str(error.value).startswith(
        f"{path}, line 4: a row must have 2 fields like the header, got {fields}"
    )


def test_a_duplicate_header_is_an_error_naming_the_column(tmp_path):
    path = write_csv(tmp_path, "time,cpu,cpu\n0,1,2\n")
    with pytest.raises(
        DataError, match=r"line 1: column names must be distinct, got 'cpu' 2 times"
    ):
        read_csv(path)


def test_a_header_of_numbers_is_an_error_asking_for_a_header(tmp_path):
    path = write_csv(tmp_path, "1.5,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"line 1: the first line must name the columns .* got "
                                        r"numbers \['1.5', '2', '3'\]"):  # fmt: skip
        read_csv(path)


@pytest.mark.parametrize("nan_policy", ["raise", "mask"])
def test_a_value_beyond_float32_is_an_error_never_an_infinity(tmp_path, nan_policy):
    path = write_csv(tmp_path, "time,cpu\n0,1\n300,1e39\n")
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time", time_unit="s", nan_policy=nan_policy)
    message = str(error.value)
    assert f"{path}, line 3: `cpu` must be a number within float32's range" in message
    assert "got 1e+39" in message


def test_a_sum_beyond_float32_is_an_error_naming_metric_and_time():
    frame = pd.DataFrame({"t": [0, 1], "cpu": [3e38, 3e38]})
    with pytest.raises(DataError, match=r"`cpu` aggregated by 'sum' at 1970-01-01T00:00:00Z"):
        read_frame(frame, time_column="t", time_unit="s", step="5min", aggregate="sum")


def test_text_in_a_metric_column_is_an_error_naming_line_and_column_in_either_policy(tmp_path):
    path = write_csv(tmp_path, "time,host,cpu\n0,a,1\n300,a,n/a?\n")
    for policy in ("raise", "mask"):
        with pytest.raises(DataError) as error:
            read_csv(path, time_column="time", entity_columns=["host"], time_unit="s",
                     nan_policy=policy)  # fmt: skip
        assert str(error.value) == f"{path}, line 3: `cpu` must be a number, got 'n/a?'"


def test_a_forgotten_time_column_is_named_as_such(tmp_path):
    path = write_csv(tmp_path, "time,cpu\n2024-03-01T00:00:00Z,1\n")
    with pytest.raises(DataError, match=f"{path}: `time` must hold numbers, got times; is it "
                                        "the time column"):  # fmt: skip
        read_csv(path)
    frame = pd.DataFrame({"when": ["2024-03-01 00:00", "2024-03-01 00:05"], "cpu": [1, 2]})
    with pytest.raises(DataError, match=r"row 1: `when` must be a number, got '2024-03-01 00:00'; "
                                        r"is it the time column\? set `time_column`"):  # fmt: skip
        read_frame(frame)


def test_an_empty_file_or_one_without_rows_is_an_empty_data_error(tmp_path):
    with pytest.raises(EmptyDataError, match="the file is empty; expected a header line"):
        read_csv(write_csv(tmp_path, ""))
    with pytest.raises(EmptyInputError, match="no data rows; expected at least one"):
        read_csv(write_csv(tmp_path, "time,cpu\n", "header.csv"), time_column="time")


def test_a_corrupt_parquet_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "m.parquet"
    wide_frame().to_parquet(path)
    path.write_bytes(path.read_bytes()[:-200] + b"\0" * 200)
    with pytest.raises(DataError, match=f"{path}: not a readable Parquet file"):
        read_parquet(path, **SERIES)
    text = write_csv(tmp_path, "not parquet", "text.parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_parquet(text)


def test_a_column_name_damaged_anywhere_in_a_parquet_file_is_a_data_error(tmp_path):
    # A name is in the schema, in the column chunks' paths and in the pandas metadata;
    # 'c' ^ 0xFF is not UTF-8 (the column paths once raised a raw UnicodeDecodeError).
    path = tmp_path / "m.parquet"
    wide_frame().to_parquet(path)
    original = path.read_bytes()
    positions = [i for i in range(len(original)) if original.startswith(b"cpu", i)]
    assert len(positions) >= 3
    for position in positions:
        damaged = bytearray(original)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            read_parquet(path, **SERIES)
        except DataError as error:
            assert str(error).startswith(f"{path}: not a readable Parquet file")


def test_read_frame_says_what_a_mapping_holds_rather_than_printing_it():
    columns = {"time": np.arange(3), "cpu": np.arange(10_000.0)}
    with pytest.raises(ConfigTypeError) as error:
        read_frame(columns, **SERIES)
    assert str(error.value) == (
        "read_frame: `frame` must be a pandas DataFrame or a pyarrow Table or RecordBatch, "
        "got dict of the keys ['time', 'cpu']: pass pandas.DataFrame(it)"
    )


def test_a_time_that_does_not_parse_is_an_error_naming_line_and_value(tmp_path):
    path = write_csv(tmp_path, "time,cpu\n2024-03-01T00:00:00Z,1\n2024-03-01T25:00:00Z,2\n")
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time")
    message = str(error.value)
    assert message.startswith(f"{path}, line 3: `time` must be a time: ISO 8601 text")
    assert message.endswith("got '2024-03-01T25:00:00Z'")


def test_a_missing_time_is_an_error_naming_its_line(tmp_path):
    path = write_csv(tmp_path, "time,cpu\n2024-03-01T00:00:00Z,1\n,2\n")
    with pytest.raises(DataError, match=r"line 3: `time` must be a time.*got a missing value"):
        read_csv(path, time_column="time")


@pytest.mark.parametrize(
    ("settings", "setting", "column"),
    [
        ({"time_column": "when"}, "time_column", "when"),
        ({"time_column": "time", "entity_columns": ["hostname"]}, "entity_columns", "hostname"),
        ({"time_column": "time", "metrics": ["memory"]}, "metrics", "memory"),
        ({"time_column": "time", "label_column": "incident"}, "label_column", "incident"),
    ],
)
def test_a_missing_column_is_an_error_listing_the_columns_there_are(
    tmp_path, settings, setting, column
):
    path = tmp_path / "m.csv"
    wide_frame().to_csv(path, index=False)
    with pytest.raises(DataError) as error:
        read_csv(path, **settings)
    assert str(error.value) == (
        f"{path}: `{setting}` must name columns of the data, got {column!r}, which it does not "
        "have; the columns are ['time', 'host', 'cpu', 'errors']"
    )


def test_a_missing_value_is_an_error_naming_line_and_column_unless_masked(tmp_path):
    path = write_csv(tmp_path, "time,cpu,mem\n0,1,2\n300,,3\n")
    with pytest.raises(DataError, match=r"line 3: `cpu` must be a finite number, got a missing"):
        read_csv(path, time_column="time", time_unit="s")
    assert read_csv(path, time_column="time", time_unit="s", nan_policy="mask").mask.tolist() == [
        [True, True],
        [False, True],
    ]


def test_lines_are_physical_lines_past_blank_lines_and_quoted_line_breaks(tmp_path):
    path = write_csv(tmp_path, 'time,note,cpu\n0,"two\nlines",1\n\n300,x,oops\n')
    with pytest.raises(DataError, match=r"line 5: `cpu` must be a number, got 'oops'"):
        read_csv(path, time_column="time", time_unit="s", metrics=["cpu"])


def test_a_huge_bad_value_is_quoted_with_at_most_200_characters(tmp_path):
    path = write_csv(tmp_path, "time,cpu\n0," + "x" * 5000 + "\n")
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time", time_unit="s")
    message = str(error.value)
    assert "x" * 200 not in message and len(message) < len(str(path)) + 260
    assert message.endswith("...")


def test_a_metric_a_long_table_does_not_hold_is_an_error_listing_those_it_holds():
    long = wide_frame().melt(id_vars=["time", "host"], var_name="metric", value_name="value")
    with pytest.raises(DataError, match=r"got \['disk'\], which it does not hold; it holds "
                                        r"\['cpu', 'errors'\]"):  # fmt: skip
        read_frame(long, **SERIES, layout="long", metrics=["disk"])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"step": "1M"}, r"read_csv: `step` must be a fixed duration"),
        ({"step": "0min"}, r"read_csv: `step` must be a fixed duration"),
        ({"aggregate": "median"}, r"read_csv: `aggregate` must be one of 'mean', 'max'"),
        ({"aggregate": {"cpu": "p99"}}, r"read_csv: `aggregate.cpu` must be one of"),
        ({"duplicates": "keep"}, r"read_csv: `duplicates` must be one of 'aggregate', 'raise'"),
        ({"nan_policy": "drop"}, r"read_csv: `nan_policy` must be one of 'raise', 'mask'"),
        ({"layout": "tall"}, r"read_csv: `layout` must be one of 'wide', 'long'"),
        ({"time_unit": "h"}, r"read_csv: `time_unit` must be one of 's', 'ms', 'us', 'ns'"),
        ({"encoding": "klingon"}, r"read_csv: `encoding` must be a text encoding Python knows"),
        ({"batch_size": 0}, r"read_csv: `batch_size` must be an int >= 1 or None"),
        ({"entity_columns": ["time"]}, r"distinct columns, got \['time'\] in more than one role"),
    ],
)
def test_bad_reader_settings_are_config_errors_naming_them(tmp_path, settings, message):
    path = tmp_path / "m.csv"
    wide_frame().to_csv(path, index=False)
    with pytest.raises(ConfigError, match=message):
        read_csv(path, time_column="time", **settings)


def test_every_reader_error_is_a_liam_error_and_the_builtin_users_expect(tmp_path):
    path = write_csv(tmp_path, "time,cpu\n0,x\n")
    with pytest.raises(DataError) as error:
        read_csv(path, time_column="time", time_unit="s")
    assert isinstance(error.value, LiamError | InvalidValueError | ValueError)
    assert issubclass(DataFileNotFoundError, LiamError) and issubclass(EmptyDataError, ValueError)


def test_readers_write_nothing(tmp_path):
    wide_frame().to_csv(tmp_path / "t.csv", index=False)
    wide_frame().to_parquet(tmp_path / "t.parquet")
    before = sorted(p.name for p in tmp_path.iterdir())
    read_csv(tmp_path / "t.csv", **SERIES)
    list(read_parquet(tmp_path / "t.parquet", **SERIES, batch_size=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_missing_optional_extra_raises_config_error_naming_it(tmp_path, monkeypatch):
    path = write_csv(tmp_path, "a\n1\n")
    monkeypatch.setitem(sys.modules, "pyarrow.csv", None)  # makes the import fail
    with pytest.raises(ConfigError, match="liam-core\\[datasets\\]"):
        read_csv(path)
