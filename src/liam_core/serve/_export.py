"""What a training run exports (``export.*`` of ``conf/train.yaml``): the run's bundle, and
its publication to a model repository."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .._checks import check_choice, quote
from .._errors import ConfigError, ConfigTypeError
from ..models import Servable
from ._bundle import EXPORT_PLATFORMS, PLATFORMS, export_bundle
from ._repository import ModelRepository, check_model_name

BUNDLE_DIR = "model"
"""The bundle's folder in a run folder."""


@dataclasses.dataclass(frozen=True)
class ExportSpec:
    """How a training run exports its model (``TrainSettings.export``).

    Args:
        platforms: what the functions are lowered for (default ``cpu`` and ``cuda``).
        edge: also write the ONNX edge artifact (``model.onnx``): ``True``, ``False``, or
            ``"auto"`` (when jax2onnx, the ``edge`` extra, is installed).
        repository: publish the bundle to this model repository as ``name``'s next version
            (``None``: only ``<run dir>/model/``).
        name: the model's name in the repository (and in MLflow's registry).
        alias: with MLflow tracking, the registry alias set on the new version.

    Example:
        >>> from liam_core.serve import ExportSpec
        >>> ExportSpec(repository="models")
        Traceback (most recent call last):
        ...
        liam_core._errors.ConfigError: `export.name` must name the model to publish to export.repository='models', got None
    """

    platforms: Sequence[str] = PLATFORMS
    edge: bool | Literal["auto"] = "auto"
    repository: str | None = None
    name: str | None = None
    alias: str = "latest-trained"

    def __post_init__(self) -> None:
        if isinstance(self.platforms, str) or not isinstance(self.platforms, Sequence):
            raise ConfigTypeError(
                f"`export.platforms` must be a list such as [cpu, cuda], got {quote(self.platforms)}"
            )
        platforms = tuple(self.platforms)
        if not platforms:
            raise ConfigError("`export.platforms` must name at least one platform, got []")
        for platform in platforms:
            check_choice(platform, "export.platforms", EXPORT_PLATFORMS)
        object.__setattr__(self, "platforms", platforms)
        if self.edge != "auto" and not isinstance(self.edge, bool):
            raise ConfigTypeError(
                f"`export.edge` must be true, false or auto, got {quote(self.edge)}"
            )
        if self.edge is True and importlib.util.find_spec("jax2onnx") is None:
            raise ConfigError(
                "`export.edge=true` needs the optional package jax2onnx: pip install "
                "'liam-core[edge]', or set export.edge=auto or false"
            )
        if self.repository is not None and (
            not isinstance(self.repository, str) or not self.repository
        ):
            raise ConfigTypeError(
                f"`export.repository` must be a folder or null, got {quote(self.repository)}"
            )
        if self.name is not None:
            try:
                check_model_name(self.name)
            except ConfigError as error:
                raise ConfigError(f"`export.name`: {error}") from None
        if self.repository is not None and self.name is None:
            raise ConfigError(
                "`export.name` must name the model to publish to "
                f"export.repository={self.repository!r}, got None"
            )
        try:
            check_model_name(self.alias)
        except ConfigError as error:
            raise ConfigError(f"`export.alias`: {error}") from None

    def __call__(
        self, servable: Servable, run: Mapping[str, Any], output_dir: Path
    ) -> dict[str, Any]:
        """Export ``servable`` to ``<output_dir>/model`` and publish it; what was done."""
        edge = (
            self.edge if self.edge != "auto" else importlib.util.find_spec("jax2onnx") is not None
        )
        bundle = export_bundle(
            servable, Path(output_dir) / BUNDLE_DIR, run=run, platforms=self.platforms, edge=edge
        )
        done: dict[str, Any] = {"bundle": str(bundle), "edge": edge, "alias": self.alias}
        if self.repository is not None:
            version = ModelRepository(self.repository).publish(bundle, self.name)
            done.update(repository=self.repository, name=self.name, version=version)
        return done
