"""The analysis as a specification: per-entity baselines, named anomalies, spectra in time
units, drift windows from the data, validated settings, per-kind quality, mesh-free bits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from liam_core import ConfigError
from liam_core._evidence import plot_score_points
from liam_core.alda import LaborArray
from liam_core.algebra import track_changes
from liam_core.analysis import (
    PipelineSpec,
    analyze,
    detection_by_kind,
    format_period,
    span_steps,
)
from liam_core.data import Batch, SyntheticTelemetry
from liam_core.engine import Schema

HOSTS = ("api", "db", "web1", "web2")
START = np.datetime64("2026-01-05T00:00:00", "s")
HOUR = 3600


def _fleet(n_steps: int = 600, *, seed: int = 0, outlier_step: int | None = None) -> dict:
    """Hourly cpu/latency of four hosts sharing a daily cycle; db is quiet (cpu ~20) and gets
    one reading of 45, ordinary for the fleet, extraordinary for db."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n_steps)
    daily = np.sin(2 * np.pi * steps / 24)[:, None]
    levels = np.array([60.0, 20.0, 55.0, 65.0])
    cpu = levels + 10 * daily * levels / 60 + rng.normal(0, 1.0, (n_steps, 4))
    latency = 30 + 0.5 * cpu + rng.normal(0, 1.0, (n_steps, 4))
    outlier_step = 2 * n_steps // 3 if outlier_step is None else outlier_step
    cpu[outlier_step, 1] = 45.0
    anomaly = np.zeros((n_steps, 4, 2), np.int8)
    anomaly[outlier_step, 1, 0] = 1
    return {
        "values": np.stack([cpu, latency], axis=-1).reshape(-1, 2).astype(np.float32),
        "anomaly": anomaly.reshape(-1, 2),
        "n_steps": n_steps,
        "outlier_row": outlier_step * 4 + 1,
    }


def _batches(values: np.ndarray, *, n_entities: int, batch_size: int, **extra) -> list[Batch]:
    rows = np.arange(values.shape[0])
    stamps = START + (rows // n_entities * HOUR).astype("timedelta64[s]")
    names = HOSTS[:n_entities] if n_entities > 1 else ("only",)
    metric_names = ("cpu", "latency_ms")[: values.shape[1]]
    out = []
    for start in range(0, values.shape[0], batch_size):
        stop = min(start + batch_size, values.shape[0])
        fields = {key: value[start:stop] for key, value in extra.items()}
        out.append(
            Batch(
                values[start:stop],
                metric_names,
                start=start,
                timestamps=stamps[start:stop],
                entity=(rows[start:stop] % n_entities).astype(np.int32),
                entity_names=names,
                **fields,
            )
        )
    return out


def _analyze(batches, *, n_entities, labor=None, names=("cpu", "latency_ms"), **settings):
    pipeline = PipelineSpec(**{"batch_size": 1000, "segment_steps": 96, **settings})
    return analyze(
        lambda: batches,
        labor=labor or LaborArray(1),
        pipeline=pipeline,
        schema=Schema(names[: batches[0].n_metrics]),
        n_entities=n_entities,
        period_s=float(HOUR),
    )


# --------------------------------------------------------------------- per-entity baselines


def test_an_outlier_of_one_entity_that_a_global_baseline_misses_is_found_and_named():
    fleet = _fleet()
    values = fleet["values"]
    global_z = (45.0 - values[:, 0].mean()) / values[:, 0].std()
    assert abs(global_z) < 1  # against the whole fleet, 45% cpu is unremarkable
    # batches of 1002 rows cut steps in two: the analysis regroups them into whole steps
    batches = _batches(values, n_entities=4, batch_size=1002, anomaly=fleet["anomaly"])
    report = _analyze(batches, n_entities=4)
    top = report["anomalies"]["top"][0]
    assert top["row"] == fleet["outlier_row"]
    assert top["time"] == "2026-01-21T16:00:00Z"  # step 400, hourly from 2026-01-05
    assert top["entity"] == "db" and top["metric"] == "cpu"
    assert top["score"] > 10 and 0.5 < top["contribution"] <= 1
    assert report["anomalies"]["recall"] == 1.0
    assert report["anomalies"]["by_kind"]["spike"]["recall"] == 1.0
    db = report["baselines"]["db"]["cpu"]
    assert 15 < db["mean"] < 25  # db's own baseline, not the fleet's


def test_without_timestamps_an_anomaly_is_placed_by_its_row():
    fleet = _fleet()
    batches = [
        Batch(b.values, b.metric_names, start=b.start, entity=b.entity, entity_names=b.entity_names)
        for b in _batches(fleet["values"], n_entities=4, batch_size=1200)
    ]
    top = _analyze(batches, n_entities=4)["anomalies"]["top"][0]
    assert top["time"] == fleet["outlier_row"] == top["row"]


@pytest.mark.parametrize("keep_mib", [1024, 0])
def test_pass_two_reuses_pass_one_blocks_when_they_fit_and_reads_again_otherwise(keep_mib):
    fleet = _fleet(n_steps=900)
    batches = _batches(fleet["values"], n_entities=4, batch_size=1002, anomaly=fleet["anomaly"])
    calls, labels = [], []

    def source():
        calls.append(len(calls))
        return batches

    def progress(items, label):
        labels.append(label)
        for item in items:
            yield item
            labels.append(item.n_rows)

    report = analyze(
        source,
        labor=LaborArray(1),
        pipeline=PipelineSpec(batch_size=1000, segment_steps=96, keep_mib=keep_mib),
        schema=Schema(("cpu", "latency_ms")),
        n_entities=4,
        period_s=float(HOUR),
        progress=progress,
    )
    reused = keep_mib > 0
    # _first_batch_names peeks at the source once; the passes read it once or twice more
    assert len(calls) == (2 if reused else 3)
    assert report["throughput"]["pass_2_read_the_source"] is not reused
    second = labels.index(next(label for label in labels[1:] if isinstance(label, str)))
    assert labels[second].startswith("pass 2/2") and ("kept in memory" in labels[second]) is reused
    assert sum(labels[1:second]) == sum(labels[second + 1 :]) == 3600  # every row, both passes
    # Reading again gives the same bits: the digests of both settings are the same.
    other = _analyze(batches, n_entities=4, keep_mib=1024 if keep_mib == 0 else 0)
    assert report["digests"] == other["digests"]


def test_blocks_beyond_keep_mib_are_let_go_and_pass_two_reads_the_source_again():
    values = np.random.default_rng(2).normal(50, 5, (120_000, 2)).astype(np.float32)
    batches = _batches(values, n_entities=4, batch_size=30_000)
    report = _analyze(batches, n_entities=4, keep_mib=1, batch_size=30_000, segment_steps=2000)
    assert report["throughput"]["pass_2_read_the_source"] is True  # 120,000 rows > 1 MiB
    again = _analyze(batches, n_entities=4, keep_mib=64, batch_size=30_000, segment_steps=2000)
    assert again["throughput"]["pass_2_read_the_source"] is False
    assert report["digests"] == again["digests"]


# --------------------------------------------------------------------------- spectral peaks


def test_spectral_peaks_leave_out_dc_and_long_periods_and_come_in_time_units():
    n_steps = 24 * 40
    steps = np.arange(n_steps)
    rng = np.random.default_rng(1)
    # a daily cycle under a much stronger slow wave (480 h, half the series) and a trend:
    # the slow power sits in the DC-adjacent bins, and only periods up to n_steps / 3 count
    series = (
        5 * np.sin(2 * np.pi * steps / 24)
        + 50 * np.sin(2 * np.pi * steps / 480)
        + 0.01 * steps
        + rng.normal(0, 0.1, n_steps)
    )
    values = series[:, None].astype(np.float32)
    batches = _batches(values, n_entities=1, batch_size=500)
    report = _analyze(batches, n_entities=1, names=("cpu",), segment_steps=n_steps)
    peaks = report["spectrum"]["cpu"]
    assert peaks[0]["period"] == "24h" and peaks[0]["period_s"] == 86_400
    assert peaks[0]["period_hours"] == 24
    assert all(peak["period_s"] <= n_steps * HOUR / 3 for peak in peaks)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(604_800, "7d"), (86_400, "24h"), (43_200, "12h"), (5400, "90min"), (45, "45s")],
)
def test_periods_read_in_the_largest_unit_that_reads_well(seconds, text):
    assert format_period(seconds) == text


# ------------------------------------------------------------------------------------ drift


def test_drift_windows_default_to_the_first_and_last_fifth_of_the_time_span():
    fleet = _fleet(n_steps=500)
    report = _analyze(_batches(fleet["values"], n_entities=4, batch_size=1000), n_entities=4)
    windows = report["drift"]["windows"]
    assert windows["reference"]["steps"] == windows["current"]["steps"] == 100
    assert windows["reference"]["start"] == "2026-01-05T00:00:00Z"
    assert windows["current"]["stop_step"] == 500 and windows["current"]["rows"] == 400
    assert set(report["drift"]["ks"]) == {"cpu", "latency_ms"}


def test_drift_windows_may_be_durations():
    assert span_steps("2d", 1000, 3600.0) == 48 and span_steps(0.25, 1000, 60.0) == 250
    fleet = _fleet(n_steps=500)
    batches = _batches(fleet["values"], n_entities=4, batch_size=1000)
    report = _analyze(batches, n_entities=4, drift={"reference": "1d", "current": "36h"})
    windows = report["drift"]["windows"]
    assert (windows["reference"]["steps"], windows["current"]["steps"]) == (24, 36)


def test_a_long_window_keeps_every_kth_row_so_drift_memory_is_bounded_and_mesh_free():
    fleet = _fleet(n_steps=500)
    values = fleet["values"]
    values[np.arange(7, values.shape[0], 13)] = np.nan  # masked rows inside both windows
    mask = ~np.isnan(values)
    batches = _batches(values, n_entities=4, batch_size=1000, mask=mask)
    report = _analyze(batches, n_entities=4, drift={"max_rows": 150})
    # the windows hold 100 steps x 4 hosts = 400 rows: each host's every 3rd step, the
    # hosts taking turns ((step + host) % 3 == 0, from each window's first step), then
    # the valid ones
    windows = report["drift"]["windows"]
    assert windows["reference"]["every"] == windows["current"]["every"] == 3
    turn = (np.arange(400) // 4 + np.arange(400) % 4) % 3 == 0
    assert [int(turn[host::4].sum()) for host in range(4)] == [34, 33, 33, 34]  # all hosts
    reference, current = values[:400][turn], values[-400:][turn]
    reference = reference[~np.isnan(reference).any(axis=1)]
    current = current[~np.isnan(current).any(axis=1)]
    assert windows["reference"]["rows"] == reference.shape[0] < 134
    assert windows["current"]["rows"] == current.shape[0]
    expected = scipy.stats.ks_2samp(reference, current, axis=0).statistic
    np.testing.assert_allclose(list(report["drift"]["ks"].values()), expected, rtol=1e-6)
    # the same rows whatever the batches and the mesh
    other = _analyze(
        _batches(values, n_entities=4, batch_size=333, mask=mask),
        n_entities=4,
        labor=LaborArray(2),
        drift={"max_rows": 150},
        batch_size=777,
    )
    assert other["digests"]["drift"] == report["digests"]["drift"]
    # a window within max_rows keeps every row
    assert _analyze(batches, n_entities=4)["drift"]["windows"]["current"]["every"] == 1


def test_overlapping_drift_windows_are_refused_not_reported_as_zero():
    batches = _batches(_fleet(n_steps=100)["values"], n_entities=4, batch_size=1000)
    with pytest.raises(ConfigError, match=r"`pipeline.drift.reference` .* must not overlap"):
        _analyze(batches, n_entities=4, drift={"reference": 0.6, "current": 0.5})


def test_a_drift_window_with_too_few_rows_is_an_error_naming_the_setting():
    batches = _batches(_fleet(n_steps=100)["values"], n_entities=4, batch_size=1000)
    with pytest.raises(ConfigError, match=r"`pipeline.drift.current` must cover at least"):
        _analyze(batches, n_entities=4, drift={"current": "1h"})


# --------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"batch_size": 0}, "pipeline.batch_size"),
        ({"segment_steps": -4}, "pipeline.segment_steps"),
        ({"top_peaks": 0}, "pipeline.top_peaks"),
        ({"top_anomalies": 0}, "pipeline.top_anomalies"),
        ({"anomaly_threshold": 0.0}, "pipeline.anomaly_threshold"),
        ({"batch_size": 2**60}, "pipeline.batch_size"),  # more memory than the machine has
        ({"score_points": 2**62}, "pipeline.score_points"),
        ({"drift": {"bins": 1}}, "pipeline.drift.bins"),
        ({"drift": {"max_rows": 5}}, "pipeline.drift.max_rows"),
        ({"drift": {"max_rows": 2.5}}, "pipeline.drift.max_rows"),
        ({"drift": {"bins": 2**62}}, "pipeline.drift.bins"),
        ({"drift": {"reference": 0}}, "pipeline.drift.reference"),
        ({"drift": {"current": "2 fortnights"}}, "pipeline.drift.current"),
        ({"drift": {"window": 3}}, "pipeline.drift has unknown fields"),
        ({"detector": {"baseline": "0d"}}, "pipeline.detector.baseline"),
        ({"detector": {"clip": -1.0}}, "pipeline.detector.clip"),
        ({"detector": {"cusum_threshold": 0}}, "pipeline.detector.cusum_threshold"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        PipelineSpec(**settings)


def test_more_components_than_metrics_are_refused():
    batches = _batches(_fleet(n_steps=50)["values"], n_entities=4, batch_size=1000)
    with pytest.raises(ConfigError, match=r"`pipeline.n_components` must be an int in \[1, 2\]"):
        _analyze(batches, n_entities=4, n_components=3)


# --------------------------------------------------------------------- quality per kind


def test_precision_and_recall_per_kind_on_a_tiny_labelled_series():
    flagged = np.array([1, 1, 0, 1, 1, 0, 0, 1], bool)
    # columns: spike, dropout; row 3 and 7 are false alarms (no label)
    kinds = np.array([[1, 0], [0, 1], [0, 1], [0, 0], [1, 0], [1, 0], [0, 0], [0, 0]], bool)
    quality = detection_by_kind(flagged, kinds, ["spike", "dropout"])
    # spike: 2 of 3 rows found; 2 hits against 2 false alarms
    assert quality["spike"] == {"precision": 0.5, "recall": 2 / 3, "n": 3, "detected": 2}
    # dropout: 1 of 2 found; 1 hit against the same 2 false alarms
    assert quality["dropout"] == {"precision": 1 / 3, "recall": 0.5, "n": 2, "detected": 1}
    assert detection_by_kind(flagged, kinds[:, :1] & False, ["x"])["x"]["recall"] is None


def test_the_synthetic_kinds_are_each_measured():
    telemetry = SyntheticTelemetry(40_000, n_teams=8, seed=3, level_shift_rate=2e-4)
    report = _synthetic_report(telemetry, LaborArray(1))
    by_kind = report["anomalies"]["by_kind"]
    assert set(by_kind) == {"spike", "level_shift", "dropout"}
    for kind in ("spike", "level_shift"):
        assert by_kind[kind]["n"] > 0
        assert by_kind[kind]["precision"] >= 0.8 and by_kind[kind]["recall"] >= 0.8, by_kind


# --------------------------------------------------------------------------- change scores


def test_track_changes_matches_a_python_loop_and_runs_in_pieces():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1, (200, 3)).astype(np.float32)
    z[80:120, 1] += 3.0
    settings = {"alpha": 0.05, "clip": 1.0, "drift": 0.5, "threshold": 5.0}
    u, change, _ = track_changes(z, **settings)
    baseline = np.zeros(3, np.float32)
    upper = np.zeros(3, np.float32)
    lower = np.zeros(3, np.float32)
    for t in range(200):
        expected_u = z[t] - baseline
        baseline = baseline + np.float32(0.05) * np.clip(expected_u, -1, 1)
        upper = np.minimum(5, np.maximum(0, upper + expected_u - np.float32(0.5)))
        lower = np.minimum(5, np.maximum(0, lower - expected_u - np.float32(0.5)))
        np.testing.assert_allclose(u[t], expected_u, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(change[t], np.maximum(upper, lower) / 5, rtol=1e-5, atol=1e-5)
    assert np.mean(np.asarray(change[85:120, 1]) == 1) > 0.9  # the shift alarms while it lasts
    first_u, first_change, state = track_changes(z[:77], **settings)
    rest_u, rest_change, _ = track_changes(z[77:], None, state, **settings)
    assert np.array_equal(np.concatenate([first_u, rest_u]), u)
    assert np.array_equal(np.concatenate([first_change, rest_change]), change)


# --------------------------------------------------------------------------------- the plot


def test_the_score_plot_draws_points_over_time(tmp_path):
    times = START + np.arange(5).astype("timedelta64[h]")
    path = plot_score_points(
        times,
        [1.0, 2.0, 9.0, 1.5, 0.5],
        [False, False, True, False, False],
        6.0,
        tmp_path / "scores.png",
        ylabel="score",
        truth=[False, False, True, False, False],
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ determinism


def _synthetic_report(telemetry: SyntheticTelemetry, labor: LaborArray) -> dict:
    return analyze(
        lambda: telemetry.batches(8192),
        labor=labor,
        pipeline=PipelineSpec(batch_size=8192, segment_steps=672),
        schema=telemetry.schema(),
        n_entities=telemetry.n_teams,
        entity_names=telemetry.entity_names,
        period_s=float(telemetry.period_s),
    )


def test_the_report_digest_is_the_same_on_one_and_eight_devices():
    telemetry = SyntheticTelemetry(20_000, n_teams=8, seed=11)
    one = _synthetic_report(telemetry, LaborArray(1))
    eight = _synthetic_report(telemetry, LaborArray(8))
    assert one["digests"] == eight["digests"] and one["digest"] == eight["digest"]
    assert one["anomalies"]["top"] == eight["anomalies"]["top"]


# --------------------------------------------------------------------------- the fleet median


@pytest.mark.parametrize("n_entities", [1, 2, 3, 5, 8, 13, 16, 31, 32])
def test_the_fleet_median_is_nanmedian_bit_for_bit_with_gaps_ties_and_empty_steps(n_entities):
    import jax
    import jax.numpy as jnp

    from liam_core._detect import masked_median

    rng = np.random.default_rng(n_entities)
    z = np.round(rng.normal(size=(700, n_entities, 3)), 1).astype(np.float32)  # many ties
    valid = rng.random((700, n_entities)) > 0.3
    valid[:4] = False  # steps without a valid entity give 0
    valid[4:8] = True
    reference = jnp.nanmedian(jnp.where(valid[..., None], z, jnp.nan), axis=1)
    reference = np.where(np.isnan(reference), np.float32(0), reference)
    median = np.asarray(jax.jit(masked_median)(z, valid))
    np.testing.assert_array_equal(median, reference)
    # Bit for bit, but for the sign of a zero: nanmedian's stable sort keeps tied -0.0 and
    # +0.0 in input order, the network's min/max may swap them (data rarely holds -0.0).
    nonzero = reference != 0
    np.testing.assert_array_equal(
        median[nonzero].view(np.uint32), reference[nonzero].view(np.uint32)
    )


def test_the_sorting_network_sorts_every_zero_one_input_so_every_input():
    from liam_core._detect import NETWORK_MAX_ENTITIES, sorting_network

    assert NETWORK_MAX_ENTITIES >= 16
    for n in range(1, 17):  # the 0-1 principle: a network that sorts all 2^n bit vectors sorts
        bits = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int8)
        for a, b in sorting_network(n):
            assert a < b < n
            bits[:, a], bits[:, b] = (
                np.minimum(bits[:, a], bits[:, b]),
                np.maximum(bits[:, a], bits[:, b]),
            )
        assert (np.diff(bits, axis=1) >= 0).all(), n


def test_a_second_analysis_of_other_data_at_the_same_shapes_compiles_nothing():
    from liam_core.testing import CompileCounter

    first, second = (_fleet(seed=seed) for seed in (3, 4))
    labor = LaborArray(2)
    _analyze(_batches(first["values"], n_entities=4, batch_size=1000), n_entities=4, labor=labor)
    with CompileCounter() as again:  # the kernels take the baselines as arguments
        report = _analyze(
            _batches(second["values"], n_entities=4, batch_size=1000), n_entities=4, labor=labor
        )
    assert again.count == 0
    assert report["anomalies"]["top"][0]["row"] == second["outlier_row"]
