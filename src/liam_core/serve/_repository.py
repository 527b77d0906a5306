"""A model repository on disk in Triton's layout: ``REPO/<name>/<version>/`` holds a bundle."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from .._checks import quote
from .._errors import BundleError, ConfigError
from ._bundle import verify_bundle

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_model_name(name: object) -> str:
    """A model name: letters, digits, ``_ . -``, at most 128 characters, not starting with
    a dot (it is a folder name and part of a URL)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            "a model name must be 1 to 128 letters, digits, '_', '.' or '-', starting with a "
            f"letter or digit, got {quote(name)}"
        )
    return name


class ModelRepository:
    """Models by name, each with numbered versions: ``root/<name>/<version>/`` (a bundle).

    Publishing copies a bundle into a hidden temporary folder of the model, checks it there,
    and renames it to the next version number, so a reader (a server polling the repository)
    never sees a partial version; two publishers never get the same number.

    Args:
        root: the repository's folder (created on the first publish).

    Example:
        >>> import tempfile
        >>> from liam_core.serve import ModelRepository
        >>> repo = ModelRepository(tempfile.mkdtemp())
        >>> repo.models(), repo.versions("metrics")
        ([], [])
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def models(self) -> list[str]:
        """The names of the models with at least one version, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            path.name
            for path in self.root.iterdir()
            if path.is_dir() and _NAME.fullmatch(path.name) and self.versions(path.name)
        )

    def versions(self, name: str) -> list[int]:
        """The versions of model ``name``, ascending (folders named by a positive integer)."""
        folder = self.root / check_model_name(name)
        if not folder.is_dir():
            return []
        return sorted(
            int(path.name)
            for path in folder.iterdir()
            if path.is_dir() and path.name.isdigit() and int(path.name) > 0
        )

    def latest(self, name: str) -> int | None:
        """The newest version of ``name`` (``None``: none)."""
        versions = self.versions(name)
        return versions[-1] if versions else None

    def path(self, name: str, version: int | None = None) -> Path:
        """The folder of ``name``'s ``version`` (default: the latest).

        Raises:
            BundleError: no such model or version.
        """
        versions = self.versions(name)
        if not versions:
            raise BundleError(f"{self.root}: no model {quote(name)}; it has {self.models()}")
        if version is None:
            version = versions[-1]
        if version not in versions:
            raise BundleError(
                f"{self.root}: model {quote(name)} has no version {quote(version)}; it has {versions}"
            )
        return self.root / name / str(version)

    def publish(self, bundle: str | os.PathLike[str], name: str) -> int:
        """Copy the bundle folder ``bundle`` into the repository as ``name``'s next version.

        Returns:
            The new version number.

        Raises:
            BundleError: ``bundle`` is not a sound bundle (hashes checked before and after
                the copy).
        """
        name = check_model_name(name)
        verify_bundle(bundle)
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / f".publishing-{uuid.uuid4().hex}"
        try:
            shutil.copytree(bundle, staging)
            verify_bundle(staging)
            while True:
                version = (self.latest(name) or 0) + 1
                try:
                    staging.rename(folder / str(version))  # fails if another publisher won
                    return version
                except OSError:
                    if not (folder / str(version)).exists():
                        raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
