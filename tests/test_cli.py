"""The ``liam-core`` command: one Hydra app per job, its own help, one-line errors, its logs."""

from __future__ import annotations

import json
import os
import stat

import pytest
from _helpers import ROOT, run_python
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

from liam_core import ConfigError
from liam_core.config import CONFIG_MODULE, analyze_settings, serve_settings, train_settings

GROUPS = {
    "analyze": ("mesh", "alda", "data", "pipeline", "experiment"),
    "train": ("mesh", "alda", "data", "model", "optim", "tracking", "experiment", "hparams_search"),
    "serve": ("paths",),
}
SETTINGS = {"analyze": analyze_settings, "train": train_settings, "serve": serve_settings}


def _liam_core(*args: str, cwd=None, timeout: float = 120):
    """``python -m liam_core ARGS`` (what the ``liam-core`` console script runs)."""
    return run_python("-m", ["liam_core", *args], cwd=cwd, timeout=timeout)


def _options_for(app: str, group: str, tmp_path) -> list[str]:
    """The options of ``group`` on disk that ``app`` accepts (an experiment belongs to one job)."""
    options = sorted(path.stem for path in (ROOT / "conf" / group).glob("*.yaml"))
    if group != "experiment":
        return options
    accepted = []
    for option in options:
        GlobalHydra.instance().clear()
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            cfg = compose(
                app,
                overrides=[f"experiment={option}", f"hydra.runtime.output_dir={tmp_path}"],
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        try:
            SETTINGS[app](cfg)
        except ConfigError:
            continue
        accepted.append(option)
    return accepted


def test_the_command_without_a_job_prints_its_usage():
    assert _liam_core("--help").returncode == 0
    bare = _liam_core()
    assert bare.returncode == 2 and "usage: liam-core {analyze,train,serve}" in bare.stdout


def test_an_unknown_job_is_one_error_line():
    result = _liam_core("serve-me")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown command 'serve-me'; choose one of ['analyze', 'serve', 'train']"
    ]


def test_serve_without_a_repository_is_one_error_line_naming_the_key(tmp_path):
    result = _liam_core("serve", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "serve.repository" in line, line


@pytest.mark.parametrize("app", sorted(GROUPS))
def test_each_job_s_help_lists_its_own_groups_and_every_option_of_them(app, tmp_path):
    result = _liam_core(app, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    listed = text[text.index("== Groups") : text.index("== Config")].splitlines()[1:]
    shown = {
        line.split(":")[0]: [option.strip() for option in line.split(":")[1].split(",")]
        for line in listed
        if ":" in line
    }
    assert list(shown) == list(GROUPS[app])
    for group, options in shown.items():
        assert options == _options_for(app, group, tmp_path), group


def test_a_bad_override_from_the_command_is_one_error_line_and_exit_2(tmp_path):
    result = _liam_core("analyze", "pipeline.batch_size=0", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: `pipeline.batch_size` must be an int >= 1, got 0"
    ]


@pytest.mark.slow
def test_a_run_writes_its_log_and_files_readable_as_the_umask_says(tmp_path):
    # The child inherits the umask; every file must get 0o666 & ~umask, not mkstemp's 0o600.
    previous = os.umask(0o022)
    try:
        result = run_python(
            "-m",
            [
                "liam_core",
                "analyze",
                "mesh=cpu1",
                "experiment=small",
                "data.n_records=20000",
                "progress=false",
                f"hydra.run.dir={tmp_path}",
            ],
            cwd=tmp_path,
            timeout=300,
        )
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr[-2000:]
    log = (tmp_path / "analyze.log").read_text()
    assert "analyzed 20,000 rows" in log and "digest:" in log
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["digest"] in result.stdout
    for name in ("report.json", "config.json", "scree.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
