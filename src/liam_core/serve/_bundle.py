"""Export bundles: a trained model as files a server loads without the code that trained it.

A bundle is a folder::

    manifest.json       what goes in and comes out (names, dtypes, shapes, feature names),
                        the JAX versions and calling convention, the training run (config,
                        digest, metrics) and the sha256 of every other file
    weights.npz         the named weights (numpy's format, read with allow_pickle=False)
    forward.jaxexport   jax.export of forward(weights, x), a symbolic batch dimension,
                        lowered for every platform in the manifest (cpu and cuda by default)
    explain.jaxexport   the same for explain(weights, x): per-feature attributions
    model.onnx          the edge artifact (ONNX: no JAX needed to run it), when exported
    SHA256SUMS          sha256 of every file, manifest included (``sha256sum -c`` reads it)

Nothing is pickled. :func:`load_bundle` checks every hash before reading anything, and the
serialized functions need no model code (the weights are arguments, not closures). The
weights are kept so that :func:`reexport` can rebuild the functions when a newer JAX no
longer reads the old ones (``jax.export`` guarantees about six months of compatibility).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax import export as jax_export

from .._checks import check_choice, quote
from .._errors import BundleError, ConfigError
from ..models import Servable

log = logging.getLogger("liam_core.serve")

FORMAT = 1
"""The bundle format this code writes and reads."""
MANIFEST, WEIGHTS, SUMS = "manifest.json", "weights.npz", "SHA256SUMS"
FUNCTION_FILES = {"forward": "forward.jaxexport", "explain": "explain.jaxexport"}
EDGE_FILE = "model.onnx"
INPUT_NAME = "x"
EXPORT_PLATFORMS = ("cpu", "cuda", "rocm", "tpu")
"""The platforms ``jax.export`` can lower a bundle for."""
PLATFORMS = ("cpu", "cuda")
"""What a bundle is lowered for by default (``jax.export`` lowers for a platform that is
not present: a CPU-only machine exports for CUDA too)."""

_DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
"""numpy dtype -> the Open Inference Protocol's datatype name."""


def datatype(dtype: Any) -> str:
    """The Open Inference Protocol datatype of a numpy dtype (``float32`` -> ``FP32``)."""
    name = np.dtype(dtype).name
    if name not in _DATATYPES:
        raise ConfigError(f"no inference-protocol datatype for dtype {name}")
    return _DATATYPES[name]


def dtype_of(datatype_name: str) -> np.dtype:
    """The numpy dtype of an Open Inference Protocol datatype (``FP32`` -> ``float32``)."""
    for name, value in _DATATYPES.items():
        if value == datatype_name:
            return np.dtype(name)
    raise ConfigError(
        f"unknown datatype {quote(datatype_name)}; known: {sorted(_DATATYPES.values())}"
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    out = {"jax": jax.__version__}
    for package in ("jaxlib", "liam-core"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "unknown"
    return out


def _specs(servable: Servable) -> tuple[dict[str, jax.ShapeDtypeStruct], jax.ShapeDtypeStruct]:
    (batch,) = jax_export.symbolic_shape("batch")
    weights = {
        name: jax.ShapeDtypeStruct(np.shape(value), np.asarray(value).dtype)
        for name, value in servable.weights.items()
    }
    return weights, jax.ShapeDtypeStruct((batch, servable.n_features), np.float32)


def _check_servable(servable: Any) -> Servable:
    if not isinstance(servable, Servable):
        raise ConfigError(
            f"export_bundle: `servable` must be a liam_core.models.Servable (a task's "
            f"servable()), got {type(servable).__name__}"
        )
    for name, value in servable.weights.items():
        array = np.asarray(value)
        if array.dtype.kind not in "biuf" or array.dtype == np.float64:
            raise ConfigError(
                f"export_bundle: weight `{name}` must be a float32 or integer array, got {array.dtype}"
            )
    return servable


def export_bundle(
    servable: Servable,
    directory: str | os.PathLike[str],
    *,
    run: Mapping[str, Any] | None = None,
    platforms: Sequence[str] = PLATFORMS,
    edge: bool = True,
) -> Path:
    """Write ``servable`` as a bundle in ``directory`` (replaced whole if it exists).

    Written to a temporary folder beside ``directory``, then renamed, so a reader never sees
    half a bundle.

    Args:
        servable: the model as a pure function (a training task's ``servable()``).
        directory: the bundle's folder.
        run: what the training run says about the model (``config``, ``digest``,
            ``metrics``...), recorded in the manifest.
        platforms: what the functions are lowered for (``cpu``, ``cuda``, ``rocm``, ``tpu``).
        edge: also write the ONNX edge artifact (needs the ``edge`` extra: jax2onnx).

    Returns:
        The bundle's folder.
    """
    servable = _check_servable(servable)
    platforms = tuple(
        check_choice(p, "platforms", EXPORT_PLATFORMS, owner="export_bundle") for p in platforms
    )
    if not platforms:
        raise ConfigError("export_bundle: `platforms` must name at least one platform")
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        weights = {name: np.asarray(value) for name, value in sorted(servable.weights.items())}
        np.savez(staging / WEIGHTS, **weights)
        weight_specs, x_spec = _specs(servable)
        functions = {}
        for name, fn in (("forward", servable.forward), ("explain", servable.explain)):
            if fn is None:
                continue
            exported = jax_export.export(jax.jit(fn), platforms=platforms)(weight_specs, x_spec)
            (staging / FUNCTION_FILES[name]).write_bytes(exported.serialize())
            if name == "forward":
                _check_outputs(servable, _outputs(exported))
            functions[name] = {
                "file": FUNCTION_FILES[name],
                "platforms": list(exported.platforms),
                "calling_convention_version": exported.calling_convention_version,
                "outputs": {
                    key: {"datatype": datatype(aval.dtype), "shape": [-1, *aval.shape[1:]]}
                    for key, aval in _outputs(exported).items()
                },
            }
        edge_entry = None
        if edge:
            from ._edge import export_onnx  # the edge extra is optional

            edge_entry = export_onnx(servable, staging / EDGE_FILE)
        manifest = {
            "format": FORMAT,
            "task": servable.task,
            "inputs": [
                {"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, servable.n_features]}
            ],
            "outputs": [
                {"name": key, **entry} for key, entry in functions["forward"]["outputs"].items()
            ],
            "feature_names": list(servable.feature_names),
            "functions": functions,
            "edge": edge_entry,
            "model": dict(servable.model_config),
            "explain": dict(servable.explain_settings),
            "weights": {
                name: {"dtype": value.dtype.name, "shape": list(value.shape)}
                for name, value in weights.items()
            },
            "versions": _versions(),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "run": _jsonable(run or {}),
        }
        manifest["files"] = {path.name: sha256_file(path) for path in sorted(staging.iterdir())}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        sums = {path.name: sha256_file(path) for path in sorted(staging.iterdir())}
        (staging / SUMS).write_text("".join(f"{h}  {name}\n" for name, h in sums.items()))
        for path in staging.iterdir():
            path.chmod(0o666 & ~_umask())
        _replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported the %s model to %s", servable.task, directory)
    return directory


def _check_outputs(servable: Servable, outputs: Mapping[str, Any]) -> None:
    declared = {
        name: (np.dtype(out.dtype), tuple(out.shape)) for name, out in servable.outputs.items()
    }
    found = {name: (np.dtype(aval.dtype), tuple(aval.shape[1:])) for name, aval in outputs.items()}
    if declared != found:
        raise ConfigError(
            f"export_bundle: the {servable.task} servable declares outputs {declared}, its "
            f"forward function returns {found}"
        )


def _outputs(exported: jax_export.Exported) -> dict[str, Any]:
    """The exported function's outputs by name (it returns a dict of arrays)."""
    return dict(jax.tree_util.tree_unflatten(exported.out_tree, exported.out_avals))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _replace(staging: Path, directory: Path) -> None:
    """Rename ``staging`` to ``directory``; an old ``directory`` is removed after the swap."""
    old = None
    if directory.exists():
        old = directory.parent / f".{directory.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    staging.rename(directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


# --------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True, eq=False)
class Bundle:
    """A bundle read from disk, every hash checked.

    Attributes:
        directory: where it was read from.
        manifest: ``manifest.json``.
        weights: the named weights (numpy).
        functions: the deserialized ``jax.export.Exported`` of ``forward`` (and ``explain``).
    """

    directory: Path
    manifest: Mapping[str, Any]
    weights: Mapping[str, np.ndarray]
    functions: Mapping[str, jax_export.Exported]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["feature_names"])

    @property
    def n_features(self) -> int:
        return len(self.manifest["feature_names"])


def verify_bundle(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file of a bundle against ``SHA256SUMS`` and return its manifest.

    Raises:
        BundleError: a missing, extra, truncated or changed file, or an unknown format.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a bundle folder (it does not exist or is a file)")
    sums_path = directory / SUMS
    try:
        lines = sums_path.read_text().splitlines()
    except (OSError, UnicodeError) as error:
        raise BundleError(
            f"{sums_path}: unreadable ({error}); expected the bundle's hashes"
        ) from None
    expected = {}
    for line in lines:
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or "/" in name or not name:
            raise BundleError(f"{sums_path}: malformed line {quote(line)}")
        expected[name] = digest
    present = {path.name for path in directory.iterdir() if path.name != SUMS}
    for name in sorted(present - set(expected)):
        raise BundleError(f"{directory / name}: a file the bundle's hashes do not list")
    for name, digest in expected.items():
        path = directory / name
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle")
        if sha256_file(path) != digest:
            raise BundleError(
                f"{path}: its sha256 differs from the bundle's (the file is truncated or was "
                "changed); export the model again"
            )
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BundleError(f"{directory / MANIFEST}: unreadable ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise BundleError(
            f"{directory / MANIFEST}: bundle format {quote(found)}; this liam-core reads "
            f"format {FORMAT}"
        )
    if manifest.get("files", {}) != {k: v for k, v in expected.items() if k != MANIFEST}:
        raise BundleError(f"{directory / MANIFEST}: its file list differs from {SUMS}")
    return manifest


def load_weights(directory: Path, manifest: Mapping[str, Any]) -> dict[str, np.ndarray]:
    path = directory / WEIGHTS
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise BundleError(f"{path}: unreadable weights ({error})") from None
    declared = manifest.get("weights", {})
    for name, entry in declared.items():
        if name not in weights:
            raise BundleError(f"{path}: lacks the weight `{name}` the manifest lists")
        value = weights[name]
        if value.dtype.name != entry["dtype"] or list(value.shape) != entry["shape"]:
            raise BundleError(
                f"{path}: weight `{name}` is {value.dtype.name}{list(value.shape)}, the manifest "
                f"says {entry['dtype']}{entry['shape']}"
            )
    if set(weights) != set(declared):
        raise BundleError(
            f"{path}: holds weights {sorted(set(weights) - set(declared))} the manifest does not list"
        )
    return weights


def load_bundle(directory: str | os.PathLike[str]) -> Bundle:
    """Read a bundle: every hash checked, the weights, the exported functions.

    Raises:
        BundleError: a file is missing, truncated or changed; the format is unknown; or the
            functions were exported with a calling convention this JAX cannot read (the
            message says how to re-export them from the bundle's weights).

    Example:
        See :class:`~liam_core.serve.Predictor`, which loads a bundle and compiles it.
    """
    directory = Path(directory)
    manifest = verify_bundle(directory)
    weights = load_weights(directory, manifest)
    low = jax_export.minimum_supported_calling_convention_version
    high = jax_export.maximum_supported_calling_convention_version
    functions = {}
    for name, entry in manifest["functions"].items():
        version = entry["calling_convention_version"]
        if not low <= version <= high:
            raise BundleError(
                f"{directory / entry['file']}: exported with calling convention {version} "
                f"(jax {manifest['versions']['jax']}); this jax {jax.__version__} reads "
                f"{low} to {high}. Re-export it from its weights: "
                f"python -c \"from liam_core.serve import reexport; reexport('{directory}')\""
            )
        try:
            functions[name] = jax_export.deserialize(
                bytearray((directory / entry["file"]).read_bytes())
            )
        except Exception as error:  # flatbuffers or jax errors on a changed format
            raise BundleError(
                f"{directory / entry['file']}: this jax {jax.__version__} cannot read it "
                f"({type(error).__name__}: {error}); re-export it with "
                f"liam_core.serve.reexport('{directory}')"
            ) from None
    if "forward" not in functions:
        raise BundleError(f"{directory / MANIFEST}: no forward function")
    return Bundle(directory, manifest, weights, functions)


def reexport(directory: str | os.PathLike[str], *, platforms: Sequence[str] | None = None) -> Path:
    """Export a bundle's functions again, with this JAX, from the weights it keeps.

    For a bundle that a newer JAX cannot read any more: the model is rebuilt from the
    manifest's ``model`` settings and the bundle's weights (hashes checked first), and the
    bundle is written again in place, with the same training-run record.
    """
    from ..models import make_model, model_to_arrays, rebuild
    from ..train import TaskSpec, task_for

    directory = Path(directory)
    manifest = verify_bundle(directory)
    weights = load_weights(directory, manifest)
    _, skeleton = model_to_arrays(make_model(**manifest["model"]))
    model = rebuild(skeleton, weights)
    spec = TaskSpec(**manifest.get("explain", {}))
    task = task_for(model, spec)
    state = {k: v for k, v in weights.items() if not k.startswith("model")}
    servable = task.servable(model, state, manifest["feature_names"])
    platforms = platforms or manifest["functions"]["forward"]["platforms"]
    return export_bundle(
        servable,
        directory,
        run=manifest.get("run"),
        platforms=platforms,
        edge=manifest.get("edge") is not None,
    )
