"""The evidence both jobs leave: atomic JSON files, the mesh summary, quality, plots, the bar."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from liam_core import ShapeError
from liam_core._evidence import (
    detection_quality,
    downsample_max,
    mesh_summary,
    plot_scores,
    plot_scree,
    plot_spectra,
    plot_training_curves,
    progress_bar,
    to_jsonable,
    write_atomically,
    write_json,
)
from liam_core.mesh import MeshSpec

SRC = Path(__file__).resolve().parents[1] / "src" / "liam_core"
PNG = b"\x89PNG\r\n\x1a\n"


def test_an_atomic_write_leaves_the_old_file_when_it_fails_and_no_temporary_file(tmp_path):
    path = write_atomically(tmp_path / "report.json", b"old")
    with pytest.raises(TypeError):  # the write fails half-way: a binary file takes no text
        write_atomically(path, "text, not bytes")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_json_evidence_turns_arrays_and_non_finite_numbers_into_json_values(tmp_path):
    value = {
        "rank": np.int32(3),
        "cond": math.inf,
        "missing": math.nan,
        "s": np.array([1.5, 2.0]),
        "where": tmp_path,
        "nested": ({"x": np.float32(0.25)},),
    }
    expected = {
        "rank": 3,
        "cond": "inf",
        "missing": "nan",
        "s": [1.5, 2.0],
        "where": str(tmp_path),
        "nested": [{"x": 0.25}],
    }
    assert to_jsonable(value) == expected
    path = write_json(tmp_path / "sub" / "report.json", value)
    assert json.loads(path.read_text()) == expected


def test_detection_quality_matches_scikit_learn(rng):
    for _ in range(5):
        flagged = rng.random(200) < 0.1
        truth = rng.random(200) < 0.05
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, flagged, average="binary", zero_division=0
        )
        quality = detection_quality(flagged, truth)
        assert quality["precision"] == pytest.approx(precision, abs=1e-15)
        assert quality["recall"] == pytest.approx(recall, abs=1e-15)
        assert quality["f1"] == pytest.approx(f1, abs=1e-12)
        assert quality["true_positives"] == int(np.sum(flagged & truth))


def test_detection_quality_refuses_arrays_that_do_not_line_up():
    with pytest.raises(ShapeError, match=r"detection_quality: `flagged` must be 1-D"):
        detection_quality(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    with pytest.raises(ShapeError, match=r"`truth` must have the shape of `flagged` \(3,\)"):
        detection_quality(np.zeros(3, bool), np.zeros(4, bool))


@pytest.mark.parametrize(("n", "points"), [(10, 3), (10, 10), (7, 20), (2000, 7), (1, 1)])
def test_downsample_max_keeps_the_maximum_of_each_run(n, points, rng):
    values = rng.random(n)
    width = -(-n // points)
    expected = [values[i : i + width].max() for i in range(0, n, width)]
    assert downsample_max(values, points).tolist() == expected
    assert len(expected) <= points


def test_the_mesh_summary_lists_device_names_or_counts_them():
    mesh = MeshSpec(axes={"data": -1}, name="cpu8")
    named = mesh_summary(mesh, 256, devices="names")
    assert named == {
        "name": "cpu8",
        "axes": {"data": 8},
        "executor": "pmap",
        "chunk_size": 256,
        "devices": [str(device) for device in mesh.devices()],
        "process_count": 1,
    }
    counted = mesh_summary(mesh, 256, devices="count")
    assert counted == {
        **{k: named[k] for k in ("name", "axes", "executor", "chunk_size")},
        "devices": 8,
    }


def test_every_plot_is_a_png_written_atomically(tmp_path):
    paths = [
        plot_scree([3.0, 1.0, 0.5], tmp_path / "scree.png"),
        plot_spectra(np.linspace(0, 1, 5), np.ones((5, 2)), ["a", "b"], tmp_path / "spectra.png"),
        plot_scores([1.0, 5.0, 2.0], 4.0, tmp_path / "scores.png", ylabel="score", truth=[0, 1, 0]),
        plot_scores([1.0, 5.0], math.inf, tmp_path / "log.png", ylabel="error", log_scale=True),
        plot_training_curves(
            [[5, 1.0, math.nan], [10, 0.5, 0.6]], 10, tmp_path / "training_curves.png"
        ),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_library_code_never_uses_pyplot_or_switches_the_matplotlib_backend():
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(
            r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", line
        )
    ]
    assert offenders == []


def test_the_progress_bar_shows_its_label_on_stderr_unless_disabled(capsys):
    with progress_bar(10, unit="step", label="pass 1/2: moments", initial=2, enabled=True) as bar:
        bar.update(3)
        assert bar.n == 5
    shown = capsys.readouterr().err
    assert "pass 1/2: moments" in shown and "step" in shown
    with progress_bar(10, unit="step", label="training", enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""


def test_written_files_respect_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        path = write_atomically(tmp_path / "report.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
