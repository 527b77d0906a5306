"""Lazy imports of the optional ``liam-core[datasets]`` extra (pandas, pyarrow, ...)."""

from __future__ import annotations

import importlib
from types import ModuleType

from .._errors import ConfigError

EXTRA = "liam-core[datasets]"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise ConfigError saying which extra to install for ``purpose``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        raise ConfigError(
            f"{purpose} needs the optional package {top!r}, which is not installed "
            f"({error}); install it with `pip install '{EXTRA}'`"
        ) from None
