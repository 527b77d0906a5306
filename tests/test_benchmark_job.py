"""The benchmarks run from Hydra, each suite in its own process, and leave JSON behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _helpers import EXPERIMENTS, run_python

BENCHMARK = EXPERIMENTS / "benchmark.py"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_python(BENCHMARK, args, cwd=cwd, timeout=400)


@pytest.mark.slow
def test_small_suites_run_and_write_their_json(tmp_path):
    result = _run(
        [
            "suites=[algebra,alda]",
            "algebra.sizes=[4096]",
            "alda.rows=8192",
            "alda.repeats=2",
            f"hydra.run.dir={tmp_path}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    algebra = json.loads((tmp_path / "algebra.json").read_text())
    assert {case["stage"] for case in algebra["cases"]} == {
        "spectrum",
        "patterns",
        "pca",
        "pipeline",
        "welch",
    }
    welch = next(case for case in algebra["cases"] if case["stage"] == "welch")
    assert set(welch["contenders"]) == {"liam-core", "jax.scipy.signal", "scipy"}
    assert all(len(case["contenders"]["liam-core"]["seconds"]) == 7 for case in algebra["cases"])
    assert (tmp_path / "alda.json").exists()


@pytest.mark.slow
def test_an_unknown_suite_is_one_error_line(tmp_path):
    result = _run(["suites=[gpu_magic]", f"hydra.run.dir={tmp_path}"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: suites ['gpu_magic'] are unknown; choose from ['algebra', 'alda', 'train']"
    ]


@pytest.mark.slow
def test_the_drift_benchmark_checks_every_contender_against_its_oracle(tmp_path):
    from _helpers import ROOT

    out = tmp_path / "drift.json"
    script = ROOT / "benchmarks" / "drift.py"
    result = run_python(
        script, ["--rows", "700", "--repeats", "1", "--out", str(out)], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sizes = json.loads(out.read_text())["sizes"]
    for statistic in ("ks_statistic", "wasserstein_1d", "psi"):
        case = sizes["700"][statistic]
        assert set(case["median_ms"]) == {"liam", "oracle", "plain_jax"}
        assert all(case["agrees_with_oracle"].values()), (statistic, case)
