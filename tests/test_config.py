"""Hydra configs: every group composes into typed settings; bad configs fail in one line."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _helpers import EXPERIMENTS, ROOT, run_python
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from liam_core import ConfigError
from liam_core.alda import SchedulerSpec
from liam_core.analysis import AnalyzeSettings, PipelineSpec
from liam_core.config import CONFIG_MODULE, analyze_settings
from liam_core.data import DataSpec, open_source
from liam_core.mesh import MeshSpec

ANALYZE = EXPERIMENTS / "analyze.py"
GROUP_OPTIONS = {
    group: sorted(path.stem for path in (ROOT / "conf" / group).glob("*.yaml"))
    for group in ("mesh", "data", "pipeline", "experiment")
}


def _compose(overrides: list[str], config: str = "analyze"):
    GlobalHydra.instance().clear()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return compose(config, overrides=overrides, return_hydra_config=True)


def _settings(overrides: list[str], tmp_path: Path) -> AnalyzeSettings:
    cfg = _compose([*overrides, f"hydra.runtime.output_dir={tmp_path}"])
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    return analyze_settings(cfg)


def test_the_groups_hold_the_configs_the_project_promises():
    assert {"cpu1", "cpu8", "cpu4x2", "gpu", "multihost"} <= set(GROUP_OPTIONS["mesh"])
    assert {"synthetic", "csv", "parquet", "co2"} <= set(GROUP_OPTIONS["data"])


def test_run_and_sweep_folders_are_defined_once_in_the_hydra_group(tmp_path):
    for config in ("analyze", "train"):
        hydra = _compose([], config).hydra
        assert hydra.run.dir.startswith(f"outputs/{config}/")
        assert hydra.sweep.dir.startswith(f"outputs/{config}/multirun/")
        assert hydra.job.chdir is False
    primaries = [ROOT / "conf" / f"{name}.yaml" for name in ("analyze", "train", "benchmark")]
    assert not [path.name for path in primaries if "run:" in path.read_text()]


def test_every_mesh_config_inherits_the_default_mesh():
    for mesh in set(GROUP_OPTIONS["mesh"]) - {"default"}:
        text = (ROOT / "conf" / "mesh" / f"{mesh}.yaml").read_text()
        assert "defaults:\n  - default\n" in text, mesh


def test_the_chunk_size_is_a_scheduler_setting_not_a_mesh_field(tmp_path):
    settings = _settings(["alda.chunk_size=128"], tmp_path)
    assert settings.alda == SchedulerSpec(chunk_size=128)
    with pytest.raises(ConfigError, match=r"mesh has unknown fields \['chunk_size'\]"):
        _settings(["+mesh.chunk_size=256"], tmp_path)


@pytest.mark.parametrize("mesh", GROUP_OPTIONS["mesh"])
def test_every_mesh_config_composes_into_a_mesh_spec(mesh, tmp_path):
    settings = _settings([f"mesh={mesh}"], tmp_path)
    assert isinstance(settings.mesh, MeshSpec) and settings.mesh.name == mesh


def test_the_cpu_meshes_resolve_on_eight_devices(tmp_path):
    resolved = {
        mesh: _settings([f"mesh={mesh}"], tmp_path).mesh.resolve(8) for mesh in ("cpu8", "cpu4x2")
    }
    assert resolved == {"cpu8": {"data": 8}, "cpu4x2": {"data": 4, "model": 2}}


def test_the_multihost_config_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LIAM_NUM_PROCESSES", "4")
    monkeypatch.setenv("LIAM_PROCESS_ID", "3")
    processes = _settings(["mesh=multihost"], tmp_path).mesh.processes
    assert (processes.num_processes, processes.process_id) == (4, 3)


@pytest.mark.parametrize("data", GROUP_OPTIONS["data"])
def test_every_data_config_composes_into_a_data_spec(data, tmp_path):
    overrides = [f"data={data}"]
    if data in ("csv", "parquet"):
        overrides.append(f"data.path={tmp_path / 'metrics'}")
    assert isinstance(_settings(overrides, tmp_path).data, DataSpec)


ANALYZE_EXPERIMENTS = ("co2", "example", "small")


@pytest.mark.parametrize("experiment", ANALYZE_EXPERIMENTS)
def test_every_analysis_experiment_composes_and_opens_its_data(experiment, tmp_path):
    settings = _settings([f"experiment={experiment}"], tmp_path)
    assert isinstance(settings.pipeline, PipelineSpec)
    opened = open_source(settings.data, batch_size=settings.pipeline.batch_size)
    first = next(iter(opened.batches()))
    assert first.n_rows > 0 and set(first.metric_names) == set(opened.schema.names)


@pytest.mark.parametrize("experiment", GROUP_OPTIONS["experiment"])
def test_every_experiment_belongs_to_one_job_and_the_other_refuses_it(experiment, tmp_path):
    from liam_core.config import train_settings

    composes = {}
    for config, settings_of in (("analyze", analyze_settings), ("train", train_settings)):
        cfg = _compose([f"experiment={experiment}", f"hydra.runtime.output_dir={tmp_path}"], config)
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
        try:
            settings_of(cfg)
            composes[config] = True
        except ConfigError as error:
            assert "does not use the top-level keys" in str(error)
            composes[config] = False
    assert composes == {
        "analyze": experiment in ANALYZE_EXPERIMENTS,
        "train": experiment not in ANALYZE_EXPERIMENTS,
    }


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("pipeline.batch_size=0", "`pipeline.batch_size` must be an int >= 1, got 0"),
        ("pipeline.keep_mib=-1", "`pipeline.keep_mib` must be an int >= 0, got -1"),
        ("pipeline.keep_mib=1e12", "`pipeline.keep_mib` must be an int >= 0, got float"),
        ("+pipeline.bogus=1", r"pipeline has unknown fields \['bogus'\]"),
        ("data.kind=excel", "`data.kind` must be one of 'synthetic'"),
        ("mesh.executor=vmap", "`mesh.executor` must be one of 'pmap', 'shard_map', got 'vmap'"),
    ],
)
def test_invalid_overrides_raise_a_config_error_naming_the_field(override, match, tmp_path):
    with pytest.raises(ConfigError, match=match):
        _settings([override], tmp_path)


@pytest.mark.parametrize(
    ("overrides", "unknown"),
    [(["experiment=anomaly"], "['task', 'train']"), (["+epochs=3"], "['epochs']")],
)
def test_keys_the_analysis_does_not_use_are_refused_not_dropped(overrides, unknown, tmp_path):
    with pytest.raises(ConfigError, match=rf"does not use the top-level keys {re.escape(unknown)}"):
        _settings(overrides, tmp_path)


def _run(args: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return run_python(ANALYZE, args, cwd=cwd, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mesh.axes.data=3", "error: `mesh.axes` must use exactly the 8 devices present"),
        ("pipeline.top_peaks=-5", "error: `pipeline.top_peaks` must be an int >= 1, got -5"),
    ],
)
def test_an_invalid_config_prints_one_clear_line_and_exits_non_zero(override, message, tmp_path):
    result = _run([override, f"hydra.run.dir={tmp_path}", "progress=false"], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message)
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_a_csv_with_a_bad_row_fails_naming_file_row_and_column_unless_masked(tmp_path):
    rows = np.random.default_rng(0).normal(50, 5, size=(300, 2))
    lines = ["productivity,quality", *(f"{a:.3f},{b:.3f}" for a, b in rows)]
    lines[120] = "51.0,"  # a missing value (text is always an error, even with mask)
    path = tmp_path / "metrics.csv"
    path.write_text("\n".join(lines) + "\n")
    common = ["data=csv", f"data.path={path}", "progress=false", "mesh=cpu1"]
    common += ["pipeline.batch_size=128", "pipeline.segment_steps=64"]
    failed = _run([*common, f"hydra.run.dir={tmp_path / 'raise'}"], tmp_path)
    assert failed.returncode == 2, failed.stderr
    assert "metrics.csv" in failed.stderr and "line 121" in failed.stderr
    assert "`quality`" in failed.stderr
    assert not (tmp_path / "raise" / "report.json").exists()
    masked = _run([*common, "data.nan_policy=mask", f"hydra.run.dir={tmp_path / 'mask'}"], tmp_path)
    assert masked.returncode == 0, masked.stderr
    report = json.loads((tmp_path / "mask" / "report.json").read_text())
    assert report["masked_rows"] == 1 and report["n_rows"] == 299


@pytest.mark.slow
def test_a_multirun_over_the_meshes_gives_equal_digests(tmp_path):
    result = _run(
        [
            "-m",
            "mesh=cpu1,cpu8,cpu4x2",
            "experiment=small",
            "data.n_records=20000",
            "progress=false",
            f"hydra.sweep.dir={tmp_path}",
        ],
        tmp_path,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    reports = sorted(tmp_path.glob("*/report.json"))
    assert len(reports) == 3
    loaded = [json.loads(path.read_text()) for path in reports]
    assert {report["mesh"]["name"] for report in loaded} == {"cpu1", "cpu8", "cpu4x2"}
    assert len({report["digest"] for report in loaded}) == 1
    for path in reports:
        assert {"scree.png", "spectra.png", "anomaly_scores.png", "config.json"} <= {
            output.name for output in path.parent.iterdir()
        }


@pytest.mark.slow
def test_the_main_job_runs_with_its_defaults(tmp_path):
    result = _run(["progress=false", f"hydra.run.dir={tmp_path}"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n_rows"] == 1_000_000 and report["mesh"]["name"] == "cpu8"
    assert "outputs:" in result.stdout
