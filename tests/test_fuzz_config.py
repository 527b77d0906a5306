"""Bad Hydra overrides, measured (issue 9): every setting of both jobs under hostile values.

Each case composes ``analyze`` or ``train`` (as the entry points do, with the Hydra config
returned and installed) with one override, builds the typed settings and, for training,
the model (``in_features=8``) and the optimizer. A case passes when either

* the settings build and the value was acceptable: it has the type the key holds (an int
  where an int belongs, a finite number, a string, a bool...), it is not negative where
  only counts and sizes belong, and it round-trips (the setting equals what was given); or
* a :class:`~liam_core.LiamError` is raised whose message names the key (the dotted key or
  its last part); or
* Hydra itself refuses the override while composing (a group option that does not exist,
  ``mesh=nope``): a ``HydraException`` (``ConfigCompositionException``,
  ``MissingConfigException``, ...), Hydra's business rather than liam-core's.

Anything else is a failure, counted by kind: ``raw:<Type>`` (an exception that is not a
``LiamError``: TypeError, KeyError, an OmegaConf error...), ``accepted`` (a clearly invalid
value silently taken), ``unnamed`` (a ``LiamError`` that does not name the key),
``round-trip`` (accepted, but the setting differs from what was given) and ``timeout``.

Counting mode, which runs every case (not a sample) and prints the failures by kind and
key (run from the repository root)::

    .venv/bin/python tests/test_fuzz_config.py
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

if __name__ == "__main__":  # the set-up of tests/conftest.py, for the counting mode
    jax.config.update("jax_num_cpu_devices", 8)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest
from _helpers import clean_env, run_python
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from liam_core import LiamError
from liam_core.config import CONFIG_MODULE, analyze_settings, train_settings
from liam_core.models import model_config

FUZZ = settings(max_examples=80, deadline=None, derandomize=True, database=None)

# The configs fuzzed: each job's defaults and a few group choices, so that every data kind,
# model, optimizer (constant rate and both schedules) and tracker is covered.
BASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "analyze": ("analyze", ()),
    "analyze-csv": ("analyze", ("data=csv", "data.path=metrics.csv")),
    "analyze-co2": ("analyze", ("data=co2", "mesh=cpu4x2")),
    "train": ("train", ()),
    "train-classifier": ("train", ("model=mlp_classifier", "optim=adamw_cosine")),
    "train-regressor": ("train", ("model=mlp_regressor", "optim=sgd", "tracking=mlflow")),
}

# Hostile values, as Hydra override text.
BAD_VALUES: dict[str, str] = {
    "negative": "-1",
    "negative-float": "-2.5",
    "zero": "0",
    "huge": "1000000000000",
    "float": "1.5",
    "nan": "nan",
    "inf": "inf",
    "-inf": "-inf",
    "string": "abc",
    "null": "null",
    "true": "true",
    "false": "false",
    "list": "[1,2]",
    "dict": "{a: 1}",
    "empty": "''",
}

GROUPS = (
    "mesh",
    "alda",
    "data",
    "pipeline",
    "paths",
    "model",
    "optim",
    "train",
    "task",
    "tracking",
)

# What the oracle of an accepted value needs beyond the type of the key's default.
NULL_OK_KEYS = {
    # ProcessSpec: None is taken from the environment as JAX detects it.
    "mesh.processes.num_processes",
    "mesh.processes.process_id",
    # null disables JAX's compilation cache; a missing output folder is the working one.
    "paths.cache_dir",
    "paths.output_dir",
    "tracking.tracking_uri",
    "model.in_features",  # taken from the data
    "mesh.platform",  # JAX's default
    "mesh.cpu_devices",  # no simulated devices
    "pipeline.n_components",  # 3, or every metric
    "pipeline.drift.max_rows",  # every row of the drift windows
    "train.patience",  # never stop early
    "task.target",  # only a regressor needs it
    "model.latent",  # a quarter of in_features
    "optim.momentum",  # optax.sgd: no momentum
}
# data.* fields left null take the reader's default (DataSpec's documentation).
NULL_OK_PREFIXES = ("data.",)
NULL_REFUSED = {"data.kind", "data.n_records", "data.path", "data.name"}
NEGATIVE_OK = {"data.drift_trend", "mesh.axes.data", "mesh.axes.model"}
POSITIVE = {"optim.learning_rate", "optim.learning_rate.peak_value"}
FLOAT_OK = {"data.period_s"}  # a bundled dataset's seconds per step may be fractional
STRING_OK = {"pipeline.drift.reference", "pipeline.drift.current"}  # durations: "2d"
BOOL_OK = {"export.edge"}  # true, false or "auto"
NONEMPTY = {
    "paths.log_dir",
    "optimized_metric",
    "tracking.experiment",
    "tracking.tracking_uri",
    "task.target",
    "task_name",
    "mesh.name",
    "data.path",
    "export.alias",
}
# Keys whose default is null: the type they hold.
NULL_DEFAULT_TYPES: dict[str, type | tuple[type, ...]] = {
    "mesh.platform": str,
    "mesh.cpu_devices": int,
    "mesh.processes.coordinator_address": str,
    "pipeline.n_components": int,
    "train.patience": int,
    "optimized_metric": str,
    "stop_at": int,
    "model.in_features": int,
    "data.time_column": str,
    "data.time_unit": str,
    "data.metrics": list,
    "data.label_column": str,
    "data.step": str,
    "export.repository": str,
    "export.name": str,
}
# Keys where what is accepted has no typed setting to compare with.
NO_ROUND_TRIP = (
    "optim.",
    "paths.log_dir",
    "task_name",
    "optimized_metric",
    "model.seed",
    "model.name",
)

SKIP = object()


# --------------------------------------------------------------------------------------------
# Composing and judging one case
# --------------------------------------------------------------------------------------------


def _compose(job: str, overrides: list[str], output_dir: str) -> DictConfig:
    # Initialized once and kept (composing is what is measured, not finding the configs).
    if not GlobalHydra.instance().is_initialized():
        initialize_config_module(CONFIG_MODULE, version_base="1.3").__enter__()
    cfg = compose(
        job,
        overrides=[*overrides, f"hydra.runtime.output_dir={output_dir}"],
        return_hydra_config=True,
    )
    HydraConfig.instance().set_config(cfg)
    return cfg


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{dotted}.")
        else:
            yield dotted, value


def leaf_keys(base: str, output_dir: str) -> list[tuple[str, Any]]:
    """Every leaf key of a base config (the Hydra node left out), with its resolved default."""
    job, overrides = BASES[base]
    cfg = _compose(job, list(overrides), output_dir)
    plain = {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        if OmegaConf.is_config(cfg[key])
        else cfg[key]
        for key in cfg
        if key != "hydra"
    }
    return list(_leaves(plain))


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def expire(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _invalid(key: str, default: Any, value: Any) -> str | None:
    """Why an accepted ``value`` of ``key`` (default ``default``) is clearly invalid, or None."""
    if value is None:
        nullable = (
            default is None
            or key in NULL_OK_KEYS
            or (key.startswith(NULL_OK_PREFIXES) and key not in NULL_REFUSED)
        )
        return None if nullable else "null where a value is needed"
    expected: Any = NULL_DEFAULT_TYPES.get(key) if default is None else type(default)
    if expected is None:
        return None
    if key in STRING_OK and isinstance(value, str):
        return None
    if key in BOOL_OK and isinstance(value, bool):
        return None
    if expected is bool:
        return None if isinstance(value, bool) else f"{type(value).__name__} where a bool belongs"
    if expected is int and not (key in FLOAT_OK and _is_real(value)):
        if not _is_int(value):
            return f"{type(value).__name__} where an int belongs"
    elif expected in (int, float):
        if not _is_real(value):
            return f"{type(value).__name__} where a number belongs"
        if not math.isfinite(value):
            return "a non-finite number"
    if expected in (int, float) and _is_real(value):
        if value < 0 and key not in NEGATIVE_OK:
            return "a negative number"
        if value <= 0 and key in POSITIVE:
            return "a non-positive number"
        return None
    if expected is str:
        if not isinstance(value, str):
            return f"{type(value).__name__} where a string belongs"
        return "an empty string" if not value and key in NONEMPTY else None
    if expected is list and not isinstance(value, list | tuple):
        return f"{type(value).__name__} where a list belongs"
    if expected is dict and not isinstance(value, Mapping):
        return f"{type(value).__name__} where a mapping belongs"
    return None


def _setting(key: str, job_settings: Any, model: Any) -> Any:
    """The typed setting an accepted ``key`` became (``SKIP``: none to compare with)."""
    if key.startswith(NO_ROUND_TRIP):
        return SKIP
    head, *rest = key.split(".")
    if head == "model":
        return model_config(model).get(rest[0], SKIP)
    if head == "paths":
        return {"output_dir": SKIP, "cache_dir": job_settings.compilation_cache_dir}[rest[0]]
    node = getattr(job_settings, head)
    for part in rest:
        node = node[part] if isinstance(node, Mapping) else getattr(node, part)
    return node


def _same(given: Any, got: Any) -> bool:
    if isinstance(given, list | tuple) and isinstance(got, list | tuple):
        return len(given) == len(got) and all(map(_same, given, got))
    if isinstance(given, Mapping) and isinstance(got, Mapping):
        return dict(given) == dict(got)
    if _is_real(given) and _is_real(got):
        return float(given) == float(got)
    return given == got and type(given) is type(got)


def _names(message: str, key: str) -> bool:
    last = key.split(".")[-1]
    return key in message or last in message


def judge(base: str, override: str, key: str, default: Any, output_dir: str) -> tuple[str, str]:
    """``("ok", how)`` for a passing case, else ``(failure kind, detail)``."""
    job, overrides = BASES[base]
    try:
        with _deadline(30):
            try:
                cfg = _compose(job, [*overrides, override], output_dir)
            except HydraException as error:
                return "ok", f"hydra: {type(error).__name__}"
            built = None
            try:
                if job == "analyze":
                    job_settings = analyze_settings(cfg)
                else:
                    job_settings = train_settings(cfg)
                    built = job_settings.model(in_features=8)
                    job_settings.optimizer()
            except LiamError as error:
                named = [key]
                if override.startswith("+"):  # an unknown key: its group may be refused
                    named += [".".join(key.split(".")[:i]) for i in range(1, key.count(".") + 1)]
                if any(_names(str(error), name) for name in named):
                    return "ok", f"refused: {type(error).__name__}"
                return "unnamed", f"{type(error).__name__}: {error}"
    except _Timeout:
        return "timeout", "no answer in 30 s"
    except Exception as error:
        return f"raw:{type(error).__name__}", str(error).splitlines()[0] if str(error) else ""
    if override.startswith("+"):
        return "accepted", "an unknown key was silently taken"
    value = OmegaConf.select(cfg, key)
    value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    why = _invalid(key, default, value)
    if why:
        return "accepted", f"{why}: {value!r}"
    got = SKIP if value is None else _setting(key, job_settings, built)  # null: a default
    if got is not SKIP and not _same(value, got):
        return "round-trip", f"given {value!r}, the setting is {got!r}"
    return "ok", "accepted"


# --------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------

_LEAVES: dict[str, list[tuple[str, Any]]] = {}


def _leaves_of(base: str) -> list[tuple[str, Any]]:
    if base not in _LEAVES:
        with tempfile.TemporaryDirectory() as folder:
            _LEAVES[base] = leaf_keys(base, folder)
    return _LEAVES[base]


def additions(base: str) -> list[tuple[str, str]]:
    """``+unknown=1`` at the top and in every group and nested node, as (override, key)."""
    job = BASES[base][0]
    # Not mesh.axes: its keys are axis names, and +mesh.axes.unknown=1 is an axis of size 1.
    nodes = {key.rsplit(".", 1)[0] for key, _ in _leaves_of(base) if "." in key} - {"mesh.axes"}
    nodes |= {
        group
        for group in GROUPS
        if job == "train" or group not in ("model", "optim", "train", "task", "tracking")
    }
    cases = [("+unknown=1", "unknown")]
    cases += [(f"+{node}.unknown=1", f"{node}.unknown") for node in sorted(nodes)]
    return cases


def group_choices(base: str) -> list[tuple[str, str]]:
    job = BASES[base][0]
    groups = [g for g in GROUPS if g not in ("train", "task")]
    if job == "analyze":
        groups = [g for g in groups if g not in ("model", "optim", "tracking")]
    return [(f"{group}=nope", group) for group in [*groups, "experiment"]]


def all_cases() -> list[tuple[str, str, str, Any]]:
    """Every (base, override, key, default) of the counting mode."""
    cases = []
    for base in BASES:
        for key, default in _leaves_of(base):
            for text in BAD_VALUES.values():
                cases.append((base, f"{key}={text}", key, default))
        for override, key in additions(base) + group_choices(base):
            cases.append((base, override, key, None))
    return cases


def _check(base: str, override: str, key: str, default: Any, tmp_path: Path) -> None:
    kind, detail = judge(base, override, key, default, str(tmp_path))
    assert kind == "ok", f"{base} {override}: {kind}: {detail}"


@st.composite
def _value_override(draw, job: str):
    base = draw(st.sampled_from([b for b, (j, _) in BASES.items() if j == job]))
    key, default = draw(st.sampled_from(_leaves_of(base)))
    text = draw(st.sampled_from(list(BAD_VALUES.values())))
    return base, f"{key}={text}", key, default


@pytest.fixture(autouse=True)
def _fresh_hydra():
    yield
    GlobalHydra.instance().clear()


@FUZZ
@given(case=_value_override("analyze"))
def test_analyze_overrides_build_settings_or_name_the_key(case, tmp_path_factory):
    _check(*case, tmp_path_factory.getbasetemp())


@FUZZ
@given(case=_value_override("train"))
def test_train_overrides_build_settings_and_factories_or_name_the_key(case, tmp_path_factory):
    _check(*case, tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("base", ["analyze", "train"])
def test_unknown_keys_and_group_options_are_refused(base, tmp_path):
    for override, key in additions(base) + group_choices(base):
        _check(base, override, key, None, tmp_path)


# Overrides that gave a traceback or were silently taken before issue 9 was fixed.
PREVIOUSLY_FAILING = [
    ("progress=abc", "progress"),  # taken as True
    ("mesh.name=[1,2]", "mesh.name"),  # taken as the mesh's name
    ("mesh.processes.coordinator_address=-1", "mesh.processes.coordinator_address"),
    ("paths.output_dir=-1", "paths.output_dir"),  # a raw TypeError
    ("mesh.processes=5", "mesh.processes"),  # a raw TypeError
    ("+optimized_metric=''", "optimized_metric"),  # refused only after the whole run
]


@pytest.mark.slow
@pytest.mark.parametrize(("override", "key"), PREVIOUSLY_FAILING)
def test_a_bad_override_prints_one_error_line_naming_the_key(override, key, tmp_path):
    done = run_python(
        "-m",
        ["liam_core", "analyze", override, f"paths.log_dir={tmp_path}"],
        env=clean_env(LIAM_CACHE_DIR=str(tmp_path / "cache")),
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and key.split(".")[-1] in errors[0], done.stderr


# --------------------------------------------------------------------------------------------
# Counting mode
# --------------------------------------------------------------------------------------------


def main(bases: list[str]) -> None:
    """Run every case of ``bases`` (all when empty); each failure is printed as it is found."""
    counts: collections.Counter = collections.Counter()
    examples: dict[tuple[str, str], str] = {}
    cases = [case for case in all_cases() if not bases or case[0] in bases]
    with tempfile.TemporaryDirectory() as folder:
        for base, override, key, default in cases:
            kind, detail = judge(base, override, key, default, folder)
            if kind != "ok":
                counts[kind, key] += 1
                examples.setdefault((kind, key), f"{base} {override}: {detail}"[:200])
                print(f"FAIL {kind} {base} {override}: {detail}"[:300], file=sys.stderr, flush=True)
    by_kind = collections.Counter()
    for (kind, _), n in counts.items():
        by_kind[kind] += n
    print(f"{len(cases)} cases, {sum(counts.values())} failures")
    for kind, n in by_kind.most_common():
        print(f"  {kind}: {n}")
    for (kind, key), n in sorted(counts.items()):
        print(f"{kind:24} {key:40} {n:3}  e.g. {examples[kind, key]}")


if __name__ == "__main__":
    main(sys.argv[1:])
