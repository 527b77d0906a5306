"""Packaging: the top-level ``conf/`` ships as ``liam_core.conf``, and an installed wheel composes
every entry point's config without the repository (as on Colab or after ``pip install``)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
from _helpers import ROOT, clean_env, run_python

ENTRY_POINTS = ("analyze", "train")
"""The primary configs of the shipped entry points (``benchmark`` stays in the repository)."""

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

COMPOSE_EVERY_ENTRY_POINT = f"""
import json, sys
import liam_core, liam_core.conf
from hydra import compose, initialize_config_module
from liam_core.config import CONFIG_MODULE, analyze_settings, train_settings
from hydra.core.hydra_config import HydraConfig

settings_of = {{"analyze": analyze_settings, "train": train_settings}}
composed = {{}}
with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
    for name in {ENTRY_POINTS!r}:
        cfg = compose(name, overrides=["paths.output_dir=."], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        composed[name] = type(settings_of[name](cfg)).__name__
print(json.dumps({{"conf": liam_core.conf.__file__, "version": liam_core.__version__,
                  "composed": composed}}))
"""


def _packages_on_disk() -> set[str]:
    code = {
        ".".join(path.parent.relative_to(ROOT / "src").parts)
        for path in (ROOT / "src" / "liam_core").rglob("__init__.py")
    }
    groups = {
        ".".join(("liam_core", "conf", *path.relative_to(ROOT / "conf").parts))
        for path in (ROOT / "conf").rglob("*")
        if path.is_dir() and path.name not in ("local", "__pycache__")
    }
    return code | groups | {"liam_core.conf"}


def test_every_package_and_config_group_is_listed_for_the_wheel():
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == _packages_on_disk()


def test_the_configs_live_at_the_top_level_and_map_to_liam_core_conf():
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {
        "": "src",
        "liam_core.conf": "conf",
    }
    assert (ROOT / "conf" / "__init__.py").is_file()
    assert not (ROOT / "src" / "liam_core" / "conf").exists()


def test_local_overrides_are_git_ignored():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "conf/local/default.yaml"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0


def test_an_editable_install_composes_every_entry_point(tmp_path):
    result = run_python("-c", [COMPOSE_EVERY_ENTRY_POINT], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"composed": {"analyze": "AnalyzeSettings", "train": "TrainSettings"}' in result.stdout
    assert str(ROOT / "conf") in result.stdout


@pytest.mark.slow
def test_a_built_wheel_in_a_fresh_venv_composes_every_entry_point(tmp_path):
    wheels = tmp_path / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run(
        [*pip_wheel, "--wheel-dir", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = wheels.glob("liam_core-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "liam_core/conf/analyze.yaml" in names
    assert "liam_core/conf/hparams_search/anomaly_optuna.yaml" in names
    assert not [name for name in names if "/local/" in name or name.endswith("benchmark.yaml")]

    # A fresh venv holding only the wheel; the dependencies come from this venv's
    # site-packages through a .pth file (which does not run this venv's editable finder).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    zipfile.ZipFile(wheel).extractall(site)
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", COMPOSE_EVERY_ENTRY_POINT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"composed": {"analyze": "AnalyzeSettings", "train": "TrainSettings"}' in result.stdout
    assert str(site / "liam_core" / "conf") in result.stdout
