"""The only Hydra-aware module: a composed ``DictConfig`` becomes typed dataclasses.

Everything below takes plain typed arguments, so whatever a Hydra command line does can be
done from Python or a notebook with :class:`~liam_core.mesh.MeshSpec`,
:class:`~liam_core.data.DataSpec` and :class:`~liam_core.analysis.PipelineSpec`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ._checks import check_bool, check_int, check_number, quote
from ._errors import ConfigError, ConfigTypeError, LiamError
from .alda import SchedulerSpec
from .analysis import AnalyzeSettings, PipelineSpec
from .data import DataSpec
from .mesh import MeshSpec
from .serve import ExportSpec, ServeSpec
from .train import RunLock

LOGGER = logging.getLogger("liam_core")

CONFIG_MODULE = "liam_core.conf"
"""The package that holds the configs (the repository's top-level ``conf/``, in the wheel too)."""
CONFIG_PATH = f"pkg://{CONFIG_MODULE}"
"""``config_path`` of the entry points, and what ``hydra.searchpath`` names to reuse the groups."""

# Top-level keys each job reads; anything else (an experiment of the other job, a typo'd
# ``+key``) is refused instead of silently dropped.
_COMMON_KEYS = {"mesh", "alda", "data", "paths", "task_name", "progress", "optimized_metric"}
ANALYZE_KEYS = frozenset(_COMMON_KEYS | {"pipeline"})
SERVE_KEYS = frozenset({"serve", "paths", "task_name"})
TRAIN_KEYS = frozenset(
    _COMMON_KEYS | {"model", "optim", "train", "task", "tracking", "stop_at", "export"}
)


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
    except LiamError:
        raise  # names its key already (ConfigTypeError is a TypeError too)
    except TypeError as error:
        raise ConfigError(f"{group}: {error}") from None


def mesh_spec(cfg: DictConfig | Mapping[str, Any]) -> MeshSpec:
    """``cfg.mesh`` (or a mesh mapping) as a :class:`MeshSpec`."""
    return MeshSpec.from_dict(_plain(cfg, "mesh") if isinstance(cfg, DictConfig) else cfg)


def _check_keys(plain: Mapping[str, Any], allowed: frozenset[str], job: str) -> None:
    unknown = sorted(set(plain) - allowed)
    if unknown:
        raise ConfigError(
            f"the {job} job does not use the top-level keys {unknown} (an experiment or "
            f"override meant for another job?); allowed: {sorted(allowed)}"
        )


def _groups(plain: Mapping[str, Any], groups: tuple[str, ...]) -> None:
    for group in groups:
        if not isinstance(plain.get(group), Mapping):
            raise ConfigError(f"the config has no `{group}` group; choose one, e.g. {group}=...")


def _path(value: Any, name: str, *, nullable: bool) -> str | None:
    """``value`` if it is a non-empty string (a folder), or ``None`` where ``nullable``."""
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value:
        expected = "a folder (a non-empty string)" + (" or null" if nullable else "")
        raise ConfigTypeError(
            f"`{name}` must be {expected}, got {type(value).__name__}: {quote(value)}"
        )
    return value


def _paths(plain: Mapping[str, Any]) -> tuple[Path, str | None]:
    paths = plain["paths"]
    unknown = sorted(set(paths) - {"log_dir", "output_dir", "cache_dir"})
    if unknown:
        raise ConfigError(
            f"paths has unknown fields {unknown}; allowed: ['cache_dir', 'log_dir', 'output_dir']"
        )
    if "log_dir" in paths:
        _path(paths["log_dir"], "paths.log_dir", nullable=False)
    output_dir = _path(paths.get("output_dir"), "paths.output_dir", nullable=True)
    cache_dir = _path(paths.get("cache_dir"), "paths.cache_dir", nullable=True)
    return Path(output_dir or "."), cache_dir


def _top_level(plain: Mapping[str, Any]) -> bool:
    """Check the top-level keys both jobs share; returns ``progress``."""
    if "task_name" in plain and (not isinstance(plain["task_name"], str) or not plain["task_name"]):
        value = plain["task_name"]
        raise ConfigTypeError(
            f"`task_name` must be a non-empty string (it names the run folders), got "
            f"{type(value).__name__}: {quote(value)}"
        )
    metric = plain.get("optimized_metric")
    if metric is not None and (
        not isinstance(metric, str) or not all(part for part in metric.split("."))
    ):
        raise ConfigTypeError(
            f"`optimized_metric` must be a dotted key of the report or null, got "
            f"{type(metric).__name__}: {quote(metric)}"
        )
    return check_bool(plain.get("progress", True), "progress")


def analyze_settings(cfg: DictConfig) -> AnalyzeSettings:
    """The typed settings of ``experiments/analyze.py`` from its composed config."""
    plain = _plain(cfg, "")
    _check_keys(plain, ANALYZE_KEYS, "analyze")
    _groups(plain, ("mesh", "alda", "data", "pipeline", "paths"))
    progress = _top_level(plain)
    output_dir, cache_dir = _paths(plain)
    return AnalyzeSettings(
        mesh=MeshSpec.from_dict(plain["mesh"]),
        alda=_build(SchedulerSpec, plain["alda"], "alda"),
        data=_build(DataSpec, plain["data"], "data"),
        pipeline=_build(PipelineSpec, plain["pipeline"], "pipeline"),
        output_dir=output_dir,
        progress=progress,
        compilation_cache_dir=cache_dir,
        resolved_config=plain,
    )


def serve_settings(cfg: DictConfig) -> ServeSpec:
    """The typed settings of ``experiments/serve.py`` (a ``ServeSpec``) from its config."""
    plain = _plain(cfg, "")
    _check_keys(plain, SERVE_KEYS, "serve")
    _groups(plain, ("serve", "paths"))
    return _build(ServeSpec, plain["serve"], "serve")


# Hyperparameters of optax's optimizers and schedules by name: (minimum, maximum, kind), kind
# "int" (a step count), "number" or "positive"; optax itself checks none of them.
_OPTIM_BOUNDS: dict[str, tuple[float | None, float | None, str]] = {
    "learning_rate": (None, None, "positive"),
    "peak_value": (None, None, "positive"),
    "decay_rate": (None, None, "positive"),
    "init_value": (0.0, None, "number"),
    "end_value": (0.0, None, "number"),
    "weight_decay": (0.0, None, "number"),
    "momentum": (0.0, 1.0, "number"),
    "b1": (0.0, 1.0, "number"),
    "b2": (0.0, 1.0, "number"),
    "eps": (0.0, None, "number"),
    "eps_root": (0.0, None, "number"),
    "exponent": (None, None, "positive"),
    "warmup_steps": (0, None, "int"),
    "transition_begin": (0, None, "int"),
    "transition_steps": (1, None, "int"),
    "decay_steps": (1, None, "int"),
}


def _target_defaults(target: str) -> dict[str, Any]:
    """The keyword defaults of ``_target_`` (empty when it cannot be located or inspected)."""
    import inspect

    from hydra._internal.utils import _locate  # get_object, without its ERROR log

    try:
        parameters = inspect.signature(_locate(target)).parameters.values()
    except Exception:
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _check_hyperparameters(node: Mapping[str, Any], where: str) -> None:
    """Validate the numbers of an optimizer node and of its schedules (``_target_`` nodes).

    optax builds a transformation from any argument (a NaN or negative learning rate, text
    where a number belongs) and fails, if at all, deep inside the first update; these are
    refused here with the key named: ``optim.learning_rate``, ``optim.learning_rate.peak_value``.
    """
    defaults = _target_defaults(node["_target_"])
    for key, value in node.items():
        if key == "_target_":
            continue
        name = f"{where}.{key}"
        if isinstance(value, Mapping) and isinstance(value.get("_target_"), str):
            _check_hyperparameters(value, name)  # a schedule
            continue
        if value is None and key in defaults and defaults[key] is None:
            continue  # optax's own default (no momentum, no floor of the decay)
        if key in _OPTIM_BOUNDS:
            minimum, maximum, kind = _OPTIM_BOUNDS[key]
        elif isinstance(defaults.get(key), bool):
            check_bool(value, name)
            continue
        elif isinstance(defaults.get(key), int | float):
            minimum, maximum, kind = 0, None, "number"
        else:
            continue
        if key == "learning_rate" and (isinstance(value, Mapping) or isinstance(value, str)):
            raise ConfigTypeError(
                f"`{name}` must be a finite number > 0 or a schedule (a node with `_target_`, "
                f"e.g. optax.exponential_decay), got {type(value).__name__}: {quote(value)}"
            )
        if kind == "int":
            check_int(value, name, minimum=int(minimum))
        else:
            check_number(value, name, minimum=minimum, maximum=maximum, positive=kind == "positive")
    warmup, decay = node.get("warmup_steps"), node.get("decay_steps")
    if isinstance(warmup, int) and isinstance(decay, int) and warmup >= decay:
        raise ConfigError(
            f"`{where}.warmup_steps` must be below {where}.decay_steps (the decay steps include "
            f"the warm-up), got {warmup} with decay_steps={decay}"
        )


def _check_targets(node: Mapping[str, Any], where: str) -> None:
    """Every ``_target_`` of ``node`` (its own and its nested nodes') must name a callable."""
    from hydra._internal.utils import _locate  # get_object, without its ERROR log

    target = node.get("_target_")
    if "_target_" in node:
        found: Any = None
        if isinstance(target, str) and target:
            try:
                found = _locate(target)
            except Exception:
                found = None
        if not callable(found) or isinstance(found, type(sys)):
            raise ConfigError(
                f"`{where}._target_` must name a function or class to build (e.g. "
                f"optax.adam, liam_core.models.make_model), got {quote(target)}"
            )
    for key, value in node.items():
        if isinstance(value, Mapping):
            _check_targets(value, f"{where}.{key}")


def _factory(group: str, node: Mapping[str, Any]) -> Callable[..., Any]:
    """A function that instantiates ``node`` (``_target_``) when called.

    Keyword arguments of the call fill the fields the config leaves ``null`` (a model's
    ``in_features: null`` comes from the data the job feeds it); fields the config sets keep
    their value. Building is deferred: a model computes with JAX when it is built, and the
    job must configure the devices first. Errors of the target come back as they were raised
    (a ``LiamError`` names the setting), others as a ``ConfigError`` naming the group.
    """
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if not isinstance(node, Mapping) or not isinstance(node.get("_target_"), str):
        raise ConfigError(
            f"{group} must name what to build with `_target_` (see conf/{group}/), got {quote(node)}"
        )
    _check_targets(node, group)
    if group == "optim":
        _check_hyperparameters(node, group)
    frozen = OmegaConf.create(dict(node))

    def build(**from_data: Any) -> Any:
        filled = {key: value for key, value in from_data.items() if node.get(key) is None}
        try:
            return instantiate(frozen, _convert_="all", **filled)
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
    _check_keys(plain, TRAIN_KEYS, "train")
    _groups(
        plain,
        ("mesh", "alda", "data", "model", "optim", "train", "task", "tracking", "paths", "export"),
    )
    progress = _top_level(plain)
    stop_at = plain.get("stop_at")
    if stop_at is not None:
        stop_at = check_int(stop_at, "stop_at", why=" (a step) or null")
    output_dir, cache_dir = _paths(plain)
    return TrainSettings(
        mesh=MeshSpec.from_dict(plain["mesh"]),
        alda=_build(SchedulerSpec, plain["alda"], "alda"),
        data=_build(DataSpec, plain["data"], "data"),
        model=_factory("model", plain["model"]),
        optimizer=_factory("optim", plain["optim"]),
        train=_build(TrainSpec, plain["train"], "train"),
        task=_build(TaskSpec, plain["task"], "task"),
        tracking=_build(TrackingSpec, plain["tracking"], "tracking"),
        output_dir=output_dir,
        progress=progress,
        compilation_cache_dir=cache_dir,
        resolved_config=plain,
        stop_at=stop_at,
        export=_build(ExportSpec, plain["export"], "export"),
    )


def optimized_metric(report: Mapping[str, Any], path: str | None) -> float | None:
    """The number at the dotted ``path`` of a job's report (``None`` when ``path`` is ``None``).

    It is what ``main`` returns, so a sweeper (``hparams_search=...``) can optimize it.

    Example:
        >>> optimized_metric({"summary": {"f1": 0.5}}, "summary.f1")
        0.5
        >>> optimized_metric({"summary": {"f1": 0.5}}, "summary.recall")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: optimized_metric='summary.recall' is not in the report: `summary` has ['f1']
    """
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ConfigError(
            f"`optimized_metric` must be a dotted key of the report or null, got {quote(path)}"
        )
    node: Any = report
    walked: list[str] = []
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            where = f"`{'.'.join(walked)}`" if walked else "the report"
            keys = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise ConfigError(f"optimized_metric={path!r} is not in the report: {where} has {keys}")
        node, walked = node[key], [*walked, key]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise ConfigError(f"optimized_metric={path!r} is {quote(node)}, not a number")
    return float(node)


def run_hydra_job(
    cfg: DictConfig,
    command: Sequence[str],
    settings_from: Callable[[DictConfig], Any],
    run: Callable[[Any], dict],
    summary: Callable[[dict], str],
) -> float | None:
    """The body of a Hydra app (:mod:`liam_core.cli`): typed settings, run, one-line errors.

    Returns the number at ``optimized_metric`` of the report (``None`` without one), so
    sweepers (Optuna's, with ``hparams_search=...``) can optimize it. The summary goes to
    stdout and to the run's log file. A ``LiamError`` (a bad config, file or value) prints
    one ``error:`` line and exits with status 2, without a traceback. In a multirun each job
    runs as a single run of ``command`` in a child process (JAX fixes the device count when
    its backend starts, and Hydra's launchers run every job in the launching process); the
    objective is read back from the child's ``report.json``.
    """
    try:
        settings = settings_from(cfg)
        metric = cfg.get("optimized_metric")
        hydra_config = HydraConfig.get()
        if hydra_config.mode == RunMode.MULTIRUN:
            # hydra.mode=RUN: a search config (hparams_search=...) sets MULTIRUN itself.
            child = [*command, *hydra_config.overrides.task]
            child += [f"hydra.run.dir='{settings.output_dir}'", "hydra.mode=RUN"]
            returncode = subprocess.call(child)
            if returncode:
                sys.exit(returncode)
            report_path = Path(settings.output_dir) / "report.json"
            return optimized_metric(json.loads(report_path.read_text()), metric)
        LOGGER.info("run folder %s", hydra_config.runtime.output_dir)
        result = run(settings)
        text = summary(result)
        LOGGER.info("%s", text)
        print(text)
        return optimized_metric(result, metric)
    except LiamError as error:
        _exit_with(error)


def _exit_with(error: LiamError) -> None:
    """The command line's answer to a ``LiamError``: one ``error:`` line, exit status 2."""
    LOGGER.info("error: %s", error)  # INFO: the log file only; stderr gets the one line
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)


class LockRunFolder(Callback):
    """A Hydra callback (the training job's): lock the run folder before Hydra writes to it.

    Hydra writes ``.hydra/*.yaml`` and opens ``train.log`` in ``hydra.run.dir`` before the
    job starts. This takes the folder's :class:`~liam_core.train.RunLock` first, so a second
    process on a running folder prints one ``error:`` line, exits with status 2 and writes
    nothing there; the lock is handed to the job's own ``RunLock``. A multirun's jobs each
    run in a child process (:func:`run_hydra_job`) that locks its own folder.
    """

    def __init__(self) -> None:
        self._lock: RunLock | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        lock = RunLock(str(config.hydra.run.dir))
        try:
            lock.acquire()
        except LiamError as error:
            _exit_with(error)
        lock.hand_over()
        self._lock = lock

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self._lock is not None:
            self._lock.take_back()
            self._lock = None
