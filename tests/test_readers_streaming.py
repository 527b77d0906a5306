"""Streaming CSV and Parquet files: the same batches as the whole-file path, in bounded memory.

A file (rows in time order) is read in chunks; a step spanning two chunks is carried over,
so values, masks, labels, duplicates and gaps are those of the whole-file path. Unsorted
files fall back to the whole-file path (or, too large for memory, ask to sort them).
"""

from __future__ import annotations

import dataclasses
import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from liam_core.alda import LaborArray
from liam_core.analysis import PipelineSpec, analyze
from liam_core.data import (
    DataError,
    DataSpec,
    concat_batches,
    open_source,
    read_csv,
    read_parquet,
    readers,
)

START = pd.Timestamp("2024-03-01T00:00:00Z")
EXAMPLE = Path(__file__).parents[1] / "examples" / "metrics.csv"


def metrics_frame(n: int = 120, seed: int = 0, regular: bool = False) -> pd.DataFrame:
    """Three hosts in two regions, irregular sorted times with duplicates, gaps, NaN, labels."""
    rng = np.random.default_rng(seed)
    if regular:  # on a 1-minute grid, some minutes missing (gaps), some rows twice
        minutes = np.sort(rng.choice(np.arange(n // 2), size=n, replace=True))
        seconds = minutes * 60
    else:
        seconds = np.sort(rng.integers(0, 40 * n, size=n))
        seconds[5:8] = seconds[5]  # one time, several rows
        seconds[(seconds > 10 * n) & (seconds < 14 * n)] += 0  # keep order
        seconds = seconds[(seconds < 12 * n) | (seconds > 16 * n)]  # a gap of several steps
    rows = seconds.shape[0]
    frame = pd.DataFrame(
        {
            "time": (START + pd.to_timedelta(seconds, unit="s")).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": rng.choice(["eu", "us"], size=rows),
            "host": rng.choice(["web-1", "db-1"], size=rows),
            "cpu": rng.normal(50, 10, size=rows).round(3),
            "errors": rng.integers(0, 5, size=rows).astype(float),
            "incident": rng.choice(["", "", "", "spike", "0"], size=rows),
        }
    )
    frame.loc[rng.choice(rows, size=rows // 10, replace=False), "cpu"] = np.nan
    return frame


def long_of(frame: pd.DataFrame) -> pd.DataFrame:
    long = frame.melt(id_vars=["time", "region", "host", "incident"], var_name="metric",
                      value_name="value", value_vars=["cpu", "errors"])  # fmt: skip
    return long.sort_values("time", kind="stable").reset_index(drop=True)


def whole(monkeypatch, reader, path, **settings):
    monkeypatch.setattr(readers, "_STREAM_BYTES", 1 << 62)
    return list(reader(path, **settings))


def streamed(monkeypatch, reader, path, chunk=7, **settings):
    monkeypatch.setattr(readers, "_STREAM_BYTES", 0)
    monkeypatch.setattr(readers, "_CHUNK_ROWS", chunk)
    monkeypatch.setattr(readers, "_BLOCK_BYTES", 4096)
    return list(reader(path, **settings))


def same_batches(first: list, second: list) -> None:
    assert [(b.start, b.n_rows) for b in first] == [(b.start, b.n_rows) for b in second]
    for one, two in zip(first, second, strict=True):
        assert one.metric_names == two.metric_names
        assert one.entity_names == two.entity_names
        assert one.anomaly_names == two.anomaly_names
        assert one.source == two.source
        assert one.arrays().keys() == two.arrays().keys()
        for name, array in one.arrays().items():
            other = two.arrays()[name]
            assert array.dtype == other.dtype, name
            np.testing.assert_array_equal(array, other, err_msg=name)


def write(frame: pd.DataFrame, tmp_path: Path, kind: str) -> tuple:
    if kind == "csv":
        path = tmp_path / "m.csv"
        frame.to_csv(path, index=False)
        return read_csv, path
    path = tmp_path / "m.parquet"
    frame.to_parquet(path, row_group_size=13)
    return read_parquet, path


SETTINGS = [
    {"step": "5min", "aggregate": "mean"},
    {"step": "5min", "aggregate": "max"},
    {"step": "10min", "aggregate": "sum"},
    {"step": "3min", "aggregate": "last"},
    {"step": "1h", "aggregate": {"cpu": "max", "errors": "sum"}},
    {"step": "1min", "aggregate": "mean"},  # many steps per chunk, gaps
]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("layout", ["wide", "long"])
@pytest.mark.parametrize("settings", SETTINGS)
def test_a_streamed_file_gives_the_batches_of_the_whole_file(
    tmp_path, monkeypatch, caplog, kind, layout, settings
):
    frame = metrics_frame()
    reader, path = write(frame if layout == "wide" else long_of(frame), tmp_path, kind)
    options = dict(time_column="time", entity_columns=["region", "host"], layout=layout,
                   label_column="incident", duplicates="aggregate", nan_policy="mask",
                   batch_size=5, **settings)  # fmt: skip
    expected = whole(monkeypatch, reader, path, **options)
    with caplog.at_level(logging.INFO, logger="liam_core.data"):
        got = streamed(monkeypatch, reader, path, **options)
    assert "read whole" not in caplog.text  # really streamed
    same_batches(got, expected)
    assert expected[0].anomaly_names == ("none", "spike")
    if settings["step"] == "1min":
        assert not concat_batches(expected).mask.all()  # gaps and missing cells


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("chunk", [1, 2, 7, 50, 10_000])
def test_an_inferred_step_with_gaps_and_one_entity_streams_alike(
    tmp_path, monkeypatch, kind, chunk
):
    frame = metrics_frame(regular=True).drop(columns=["region"])
    frame = frame.drop_duplicates(["time", "host"])
    reader, path = write(frame, tmp_path, kind)
    options = dict(time_column="time", entity_columns=["host"], nan_policy="mask",
                   metrics=["errors", "cpu"], batch_size=4)  # fmt: skip
    expected = whole(monkeypatch, reader, path, **options)
    same_batches(streamed(monkeypatch, reader, path, chunk=chunk, **options), expected)
    assert expected[0].timestamps[2] - expected[0].timestamps[0] == np.timedelta64(60, "s")


def test_epoch_seconds_without_entities_and_one_batch_stream_alike(tmp_path, monkeypatch):
    seconds = 1_709_251_200 + np.sort(np.random.default_rng(1).integers(0, 7200, size=90))
    frame = pd.DataFrame({"t": seconds, "cpu": np.arange(90.0)})
    _, path = write(frame, tmp_path, "csv")
    options = dict(time_column="t", step="7min", aggregate="sum", nan_policy="mask")
    monkeypatch.setattr(readers, "_STREAM_BYTES", 1 << 62)
    expected = read_csv(path, **options)
    monkeypatch.setattr(readers, "_STREAM_BYTES", 0)
    monkeypatch.setattr(readers, "_CHUNK_ROWS", 7)
    same_batches([read_csv(path, **options)], [expected])


def test_a_plain_table_streams_in_file_order(tmp_path, monkeypatch):
    frame = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0)[::-1], "lab": [0, 1] * 15})
    _, path = write(frame, tmp_path, "csv")
    options = dict(label_column="lab", batch_size=8)
    same_batches(streamed(monkeypatch, read_csv, path, **options),
                 whole(monkeypatch, read_csv, path, **options))  # fmt: skip


@pytest.mark.parametrize("duplicates", ["raise", "aggregate"])
def test_duplicates_across_a_chunk_boundary_behave_as_in_the_whole_file(
    tmp_path, monkeypatch, duplicates
):
    times = [60 * i for i in range(14)]
    times[7] = times[6]  # lines 8 and 9 share a time: the first chunk of 7 rows ends between
    text = "time,host,cpu\n" + "".join(f"{t},a,{i}\n" for i, t in enumerate(times))
    path = tmp_path / "m.csv"
    path.write_text(text)
    options = dict(time_column="time", entity_columns=["host"], time_unit="s",
                   duplicates=duplicates, nan_policy="mask", batch_size=3)  # fmt: skip
    if duplicates == "aggregate":
        same_batches(streamed(monkeypatch, read_csv, path, **options),
                     whole(monkeypatch, read_csv, path, **options))  # fmt: skip
        return
    monkeypatch.setattr(readers, "_fits_in_memory", lambda file: False)  # the streamed error
    with pytest.raises(DataError) as error:
        streamed(monkeypatch, read_csv, path, **options)
    assert str(error.value).startswith(f"{path}, line 8 and line 9: rows must have distinct")


def test_a_gap_refused_by_a_stream_names_entity_and_time(tmp_path, monkeypatch):
    text = "time,host,cpu\n" + "".join(f"{60 * i},a,{i}\n" for i in range(20) if i != 11)
    path = tmp_path / "m.csv"
    path.write_text(text)
    monkeypatch.setattr(readers, "_fits_in_memory", lambda file: False)
    with pytest.raises(DataError, match=r"`cpu` has no value at 1970-01-01T00:11:00Z for entity "
                                        r"'a' \(a gap"):  # fmt: skip
        streamed(monkeypatch, read_csv, path, time_column="time", entity_columns=["host"],
                 time_unit="s", step="1min", batch_size=4)  # fmt: skip


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_an_unsorted_file_falls_back_to_the_whole_file_path(tmp_path, monkeypatch, caplog, kind):
    frame = metrics_frame().sample(frac=1, random_state=2)
    reader, path = write(frame, tmp_path, kind)
    options = dict(time_column="time", entity_columns=["host"], step="5min", batch_size=6,
                   duplicates="aggregate", nan_policy="mask", metrics=["cpu"])  # fmt: skip
    expected = whole(monkeypatch, reader, path, **options)
    with caplog.at_level(logging.INFO, logger="liam_core.data"):
        got = streamed(monkeypatch, reader, path, **options)
    assert "read whole, not streamed: the rows are not in time order" in caplog.text
    same_batches(got, expected)


def test_an_unsorted_file_too_large_for_memory_asks_to_sort_it(tmp_path, monkeypatch):
    reader, path = write(metrics_frame().iloc[::-1], tmp_path, "csv")
    monkeypatch.setattr(readers, "_fits_in_memory", lambda file: False)
    with pytest.raises(DataError, match=r"m.csv: the rows are not in time order \(by `time`\), "
                                        r"so the file cannot be streamed.*sort the file"):  # fmt: skip
        streamed(monkeypatch, reader, path, time_column="time", step="5min", batch_size=6,
                 duplicates="aggregate", nan_policy="mask", metrics=["cpu"])  # fmt: skip


def test_text_in_a_streamed_metric_column_names_line_and_column(tmp_path, monkeypatch):
    text = "time,cpu\n" + "".join(f"{60 * i},{i}\n" for i in range(20)) + "1200,n/a?\n"
    path = tmp_path / "m.csv"
    path.write_text(text)
    monkeypatch.setattr(readers, "_fits_in_memory", lambda file: False)
    with pytest.raises(DataError) as error:
        streamed(monkeypatch, read_csv, path, time_column="time", time_unit="s", batch_size=4)
    assert str(error.value) == f"{path}, line 22: `cpu` must be a number, got 'n/a?'"


def test_streaming_a_large_file_keeps_memory_well_below_its_size(tmp_path, monkeypatch):
    n = 300_000
    rng = np.random.default_rng(0)
    path = tmp_path / "big.csv"
    seconds = 1_709_251_200 + np.arange(n) // 4 * 15
    frame = pd.DataFrame({"time": seconds, "host": np.tile(["a", "b", "c", "d"], n // 4),
                          "cpu": rng.normal(50, 9, n).round(4),
                          "latency": rng.gamma(2.0, 30.0, n).round(4)})  # fmt: skip
    frame.to_csv(path, index=False)
    del frame
    size = path.stat().st_size
    monkeypatch.setattr(readers, "_STREAM_BYTES", 0)
    monkeypatch.setattr(readers, "_CHUNK_ROWS", 8192)
    monkeypatch.setattr(readers, "_BLOCK_BYTES", 256 << 10)
    options = dict(time_column="time", entity_columns=["host"], step="1min", aggregate="max",
                   batch_size=1024)  # fmt: skip
    pool = pa.default_memory_pool()  # Arrow's buffers, which tracemalloc does not see
    rows, arrow_peak = 0, 0
    next(iter(read_csv(path, **options)))  # the reader's one-time set-up is not the stream's
    tracemalloc.start()
    try:
        for batch in read_csv(path, **options):
            rows += batch.n_rows
            arrow_peak = max(arrow_peak, pool.bytes_allocated())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == (n // 16) * 4  # 16 records per minute: 4 per host
    assert peak < size / 4, (peak, size)
    assert arrow_peak < size / 4, (arrow_peak, size)  # no read-ahead of the whole file


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_the_analysis_of_a_large_file_streams_it_once_per_pass_with_the_same_report(
    tmp_path, monkeypatch, kind
):
    example = pd.read_csv(EXAMPLE).iloc[-4 * 288 * 9 :]  # the last nine days of the example
    path = tmp_path / f"m.{kind}"
    example.to_csv(path, index=False) if kind == "csv" else example.to_parquet(path)
    spec = DataSpec(kind, path=str(path), time_column="timestamp", entity_columns=["host"],
                    label_column="incident", step="5min", nan_policy="mask",
                    aggregate={"cpu": "mean", "latency_ms": "max", "errors": "sum"})  # fmt: skip
    pipeline = PipelineSpec(batch_size=1500, segment_steps=576, anomaly_threshold=8.0, keep_mib=0)

    def report(opened) -> dict:
        return analyze(opened.batches, labor=LaborArray(1), pipeline=pipeline,
                       schema=opened.schema, n_entities=opened.n_entities,
                       entity_names=opened.entity_names, period_s=opened.period_s)  # fmt: skip

    monkeypatch.setattr(readers, "_STREAM_BYTES", 1 << 62)
    whole_file = open_source(spec, batch_size=pipeline.batch_size)
    expected = report(whole_file)
    file_class = readers._CsvFile if kind == "csv" else readers._ParquetFile
    reads: list[tuple[list[str], list[int]]] = []  # per read: the columns, the rows per chunk
    chunks = file_class.chunks

    def counted(self, columns, numeric):
        reads.append((columns, []))
        for base, chunk in chunks(self, columns, numeric):
            reads[-1][1].append(len(chunk))
            yield base, chunk

    monkeypatch.setattr(file_class, "chunks", counted)
    monkeypatch.setattr(file_class, "whole", lambda self: pytest.fail("read whole"))
    monkeypatch.setattr(readers, "_STREAM_BYTES", 0)
    monkeypatch.setattr(readers, "_CHUNK_ROWS", 1000)
    opened = open_source(spec, batch_size=pipeline.batch_size)
    assert [set(columns) for columns, _ in reads] == [{"timestamp", "host", "incident"}]
    assert (opened.n_entities, opened.period_s, opened.description) == (
        4, 300.0, whole_file.description)  # fmt: skip
    assert opened.n_records == whole_file.n_records == 4 * 288 * 9
    got = report(opened)
    rows_read = [sum(rows) for _, rows in reads]
    # a peek at the first batch's names, then the analysis' two passes, each the whole file
    assert rows_read[1] < 3 * pipeline.batch_size
    assert rows_read[2:] == [len(example)] * 2 == rows_read[:1] * 2
    assert got["digest"] == expected["digest"] and got["anomalies"] == expected["anomalies"]
    assert got["anomalies"]["by_kind"]["level_shift"]["n"] > 0
    # With pass 1's blocks kept in memory (pipeline.keep_mib, on by default) the file is read
    # once, for the same report.
    pipeline = dataclasses.replace(pipeline, keep_mib=64)
    del reads[:]
    kept = report(opened)
    assert [sum(rows) for _, rows in reads][1:] == [len(example)]
    assert kept["digest"] == expected["digest"]


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1", "utf-8-sig"])
def test_a_file_in_another_encoding_streams_alike(tmp_path, monkeypatch, caplog, encoding):
    frame = metrics_frame().assign(host=lambda f: f["host"].str.replace("db", "dé"))
    path = tmp_path / "m.csv"
    path.write_bytes(frame.to_csv(index=False).encode(encoding))
    options = dict(time_column="time", entity_columns=["host"], step="5min", encoding=encoding,
                   metrics=["cpu", "errors"],
                   duplicates="aggregate", nan_policy="mask", batch_size=6)  # fmt: skip
    expected = whole(monkeypatch, read_csv, path, **options)
    assert expected[0].entity_names == ("dé-1", "web-1")
    with caplog.at_level(logging.INFO, logger="liam_core.data"):
        same_batches(streamed(monkeypatch, read_csv, path, **options), expected)
    assert "read whole" not in caplog.text
