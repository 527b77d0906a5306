"""``BinaryAlgebra``: the LIAM Binary Algebra as one object users hold."""

from __future__ import annotations

from . import _binary, _linalg, _signal, _stats, transforms
from ._transform import chain, identity, stateless

_OPERATIONS = {
    "signal": (_signal, ("standardize", "detrend", "rolling_mean", "rolling_std", "convolve",
                         "periodogram", "welch", "dominant_period")),
    "linalg": (_linalg, ("covariance", "correlation", "matrix_rank", "cond", "svd_patterns",
                         "pca", "pca_fit", "pca_project", "whiten", "whitening_fit",
                         "random_projection", "random_projection_matrix")),
    "binary": (_binary, ("random_hyperplanes", "sign_hash", "pack_bits", "unpack_bits",
                         "popcount", "xor", "hamming", "hamming_topk", "binary_rank")),
    "drift": (_stats, ("ks_statistic", "wasserstein_1d", "psi")),
}  # fmt: skip


class BinaryAlgebra:
    """Every operation of :mod:`liam_core.algebra` as a method, plus the transform factories.

    The methods are the module's jitted functions themselves (same signatures, same
    docstrings), so ``BinaryAlgebra().pca(x, 2)`` is ``liam_core.algebra.pca(x, 2)``.

    Example:
        >>> import jax.numpy as jnp
        >>> from liam_core import BinaryAlgebra
        >>> algebra = BinaryAlgebra()
        >>> int(algebra.matrix_rank(jnp.array([[1.0, 2.0], [2.0, 4.0]])))
        1
        >>> pipeline = algebra.transforms.standardize() >> algebra.transforms.rolling_mean(2)
        >>> "periodogram" in algebra.operations()["signal"]
        True
    """

    transforms = transforms
    chain = staticmethod(chain)
    identity = staticmethod(identity)
    stateless = staticmethod(stateless)

    @staticmethod
    def operations() -> dict[str, tuple[str, ...]]:
        """The operations by family: signal, linalg, binary, drift."""
        return {family: names for family, (_, names) in _OPERATIONS.items()}

    def __repr__(self) -> str:
        count = sum(len(names) for _, names in _OPERATIONS.values())
        return f"BinaryAlgebra({count} operations: {', '.join(_OPERATIONS)})"


for _module, _names in _OPERATIONS.values():
    for _name in _names:
        setattr(BinaryAlgebra, _name, staticmethod(getattr(_module, _name)))
del _module, _names, _name
