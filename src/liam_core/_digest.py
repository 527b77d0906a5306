"""``digest``: a sha256 fingerprint of a pytree of arrays, for reports and determinism tests."""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np


def digest(tree: Any) -> str:
    """Return the sha256 hex digest of every leaf's path, dtype, shape and bytes.

    Leaves are visited in JAX's canonical pytree order (dict keys sorted), so two
    pytrees with equal structure and bit-identical leaves always give the same digest,
    and changing one bit, one dtype or one shape changes it. Python scalars are hashed
    as the numpy scalar they convert to; ``None`` leaves are skipped, like in JAX.

    Example:
        >>> import numpy as np
        >>> from liam_core import digest
        >>> digest({"a": np.zeros(2, np.float32)}) == digest({"a": np.zeros(2, np.float32)})
        True
        >>> digest(np.zeros(2, np.float32)) == digest(np.zeros(2, np.float64))
        False
    """
    hasher = hashlib.sha256()
    leaves_with_paths, _ = jax.tree_util.tree_flatten_with_path(tree)
    for path, leaf in leaves_with_paths:
        array = np.ascontiguousarray(np.asarray(jax.device_get(leaf)))
        header = f"{jax.tree_util.keystr(path)}|{array.dtype.str}|{array.shape};"
        hasher.update(header.encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()
