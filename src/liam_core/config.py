"""The only Hydra-aware module: a composed ``DictConfig`` becomes typed dataclasses.

Everything below takes plain typed arguments, so whatever a Hydra command line does can be
done from Python or a notebook with :class:`~liam_core.mesh.MeshSpec`,
:class:`~liam_core.data.DataSpec` and :class:`~liam_core.analysis.PipelineSpec`.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ._errors import ConfigError, LiamError
from .analysis import AnalyzeSettings, PipelineSpec
from .data import DataSpec
from .mesh import MeshSpec

# Shipped inside the package, so installed wheels (Colab) compose the same configs.
CONFIG_DIR = Path(__file__).resolve().parent / "conf"


def _plain(cfg: Any, where: str) -> Any:
    """Resolve interpolations and return plain containers, naming the group that failed.

    Hydra's own ``hydra`` node is left out: it is Hydra's business, not the job's.
    """
    try:
        if isinstance(cfg, DictConfig):
            return {
                key: _plain(cfg[key], f"{where}.{key}" if where else key)
                for key in cfg
                if not (where == "" and key == "hydra")
            }
        if OmegaConf.is_config(cfg):
            return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        return cfg
    except OmegaConfBaseException as error:
        message = str(error).splitlines()[0]
        raise ConfigError(f"{where or 'config'}: {message}") from None


def _build(cls: type, settings: Mapping[str, Any], group: str) -> Any:
    fields = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ConfigError(f"{group} has unknown fields {unknown}; allowed: {sorted(fields)}")
    try:
        return cls(**settings)
    except TypeError as error:
        raise ConfigError(f"{group}: {error}") from None


def mesh_spec(cfg: DictConfig | Mapping[str, Any]) -> MeshSpec:
    """``cfg.mesh`` (or a mesh mapping) as a :class:`MeshSpec`."""
    return MeshSpec.from_dict(_plain(cfg, "mesh") if isinstance(cfg, DictConfig) else cfg)


def analyze_settings(cfg: DictConfig) -> AnalyzeSettings:
    """The typed settings of ``experiments/analyze.py`` from its composed config."""
    plain = _plain(cfg, "")
    for group in ("mesh", "data", "pipeline"):
        if not isinstance(plain.get(group), Mapping):
            raise ConfigError(f"the config has no `{group}` group; choose one, e.g. {group}=...")
    return AnalyzeSettings(
        mesh=MeshSpec.from_dict(plain["mesh"]),
        data=_build(DataSpec, plain["data"], "data"),
        pipeline=_build(PipelineSpec, plain["pipeline"], "pipeline"),
        output_dir=Path(plain.get("output_dir") or "."),
        progress=bool(plain.get("progress", True)),
        compilation_cache_dir=plain.get("compilation_cache_dir"),
        resolved_config=plain,
    )


def _factory(group: str, node: Mapping[str, Any]) -> Any:
    """A zero-argument function that instantiates ``node`` (``_target_``) when called.

    Building is deferred: a model computes with JAX when it is built, and the training job
    must configure the devices first. Errors of the target come back as they were raised
    (a ``LiamError`` names the setting), others as a ``ConfigError`` naming the group.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from ._errors import LiamError

    if not isinstance(node, Mapping) or not isinstance(node.get("_target_"), str):
        raise ConfigError(
            f"{group} must name what to build with `_target_` (see conf/{group}/), got {node!r}"
        )
    frozen = OmegaConf.create(dict(node))

    def build() -> Any:
        try:
            return instantiate(frozen, _convert_="all")
        except InstantiationException as error:
            cause = error.__cause__
            if isinstance(cause, LiamError):
                raise cause from None
            message = " ".join(str(error).split())
            raise ConfigError(f"{group}: {message}") from None

    return build


def train_settings(cfg: DictConfig) -> Any:
    """The typed settings of ``experiments/train.py`` (a ``TrainSettings``) from its config."""
    from .train import TaskSpec, TrackingSpec, TrainSettings, TrainSpec

    plain = _plain(cfg, "")
    for group in ("mesh", "data", "model", "optim", "train", "task"):
        if not isinstance(plain.get(group), Mapping):
            raise ConfigError(f"the config has no `{group}` group; choose one, e.g. {group}=...")
    mlflow = plain.get("mlflow") or {}
    if not isinstance(mlflow, Mapping):
        raise ConfigError(f"mlflow must map tracking_uri and experiment, got {mlflow!r}")
    unknown = sorted(set(mlflow) - {"tracking_uri", "experiment"})
    if unknown:
        raise ConfigError(
            f"mlflow has unknown fields {unknown}; allowed: ['experiment', 'tracking_uri']"
        )
    stop_at = plain.get("stop_at")
    if stop_at is not None and (isinstance(stop_at, bool) or not isinstance(stop_at, int)):
        raise ConfigError(f"stop_at must be a step (an int) or null, got {stop_at!r}")
    return TrainSettings(
        mesh=MeshSpec.from_dict(plain["mesh"]),
        data=_build(DataSpec, plain["data"], "data"),
        model=_factory("model", plain["model"]),
        optimizer=_factory("optim", plain["optim"]),
        train=_build(TrainSpec, plain["train"], "train"),
        task=_build(TaskSpec, plain["task"], "task"),
        tracking=TrackingSpec(kind=plain.get("tracking", "jsonl"), **mlflow),
        output_dir=Path(plain.get("output_dir") or "."),
        progress=bool(plain.get("progress", True)),
        compilation_cache_dir=plain.get("compilation_cache_dir"),
        resolved_config=plain,
        stop_at=stop_at,
    )


def run_hydra_job(
    cfg: DictConfig,
    script: str,
    settings_from: Callable[[DictConfig], Any],
    run: Callable[[Any], dict],
    summary: Callable[[dict], str],
) -> dict | None:
    """The body of an ``@hydra.main`` entry point: typed settings, run, one-line errors.

    A ``LiamError`` (a bad config, file or value) prints one ``error:`` line and exits with
    status 2, without a traceback. In a multirun each job runs as a single run in a child
    process: JAX fixes the device count when its backend starts, and Hydra's basic launcher
    runs every job in the launching process.
    """
    try:
        settings = settings_from(cfg)
        hydra_config = HydraConfig.get()
        if hydra_config.mode == RunMode.MULTIRUN:
            command = [sys.executable, script, *hydra_config.overrides.task]
            command.append(f"hydra.run.dir='{settings.output_dir}'")
            returncode = subprocess.call(command)
            if returncode:
                sys.exit(returncode)
            return None
        result = run(settings)
    except LiamError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(summary(result))
    return result
