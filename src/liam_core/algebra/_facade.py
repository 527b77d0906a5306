"""``BinaryAlgebra``: the LIAM Binary Algebra as one object users hold."""

from __future__ import annotations

from . import _binary, _convolution, _linalg, _rolling, _scaling, _spectra, _stats, transforms
from ._transform import chain, identity, stateless

# The family of each module's operations, in the order operations() lists them.
_FAMILIES = {
    _scaling.__name__: "signal",
    _rolling.__name__: "signal",
    _convolution.__name__: "signal",
    _spectra.__name__: "signal",
    _linalg.__name__: "linalg",
    _binary.__name__: "binary",
    _stats.__name__: "drift",
}


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

    # signal
    standardize = staticmethod(_scaling.standardize)
    detrend = staticmethod(_scaling.detrend)
    rolling_mean = staticmethod(_rolling.rolling_mean)
    rolling_std = staticmethod(_rolling.rolling_std)
    convolve = staticmethod(_convolution.convolve)
    periodogram = staticmethod(_spectra.periodogram)
    welch = staticmethod(_spectra.welch)
    csd = staticmethod(_spectra.csd)
    coherence = staticmethod(_spectra.coherence)
    spectrogram = staticmethod(_spectra.spectrogram)
    stft = staticmethod(_spectra.stft)
    istft = staticmethod(_spectra.istft)
    dominant_period = staticmethod(_spectra.dominant_period)
    # linalg and patterns
    covariance = staticmethod(_linalg.covariance)
    correlation = staticmethod(_linalg.correlation)
    matrix_rank = staticmethod(_linalg.matrix_rank)
    cond = staticmethod(_linalg.cond)
    svd_patterns = staticmethod(_linalg.svd_patterns)
    pca = staticmethod(_linalg.pca)
    whiten = staticmethod(_linalg.whiten)
    random_projection = staticmethod(_linalg.random_projection)
    random_projection_matrix = staticmethod(_linalg.random_projection_matrix)
    # binary codes
    random_hyperplanes = staticmethod(_binary.random_hyperplanes)
    sign_hash = staticmethod(_binary.sign_hash)
    pack_bits = staticmethod(_binary.pack_bits)
    unpack_bits = staticmethod(_binary.unpack_bits)
    popcount = staticmethod(_binary.popcount)
    xor = staticmethod(_binary.xor)
    hamming = staticmethod(_binary.hamming)
    hamming_topk = staticmethod(_binary.hamming_topk)
    binary_rank = staticmethod(_binary.binary_rank)
    # drift
    ks_statistic = staticmethod(_stats.ks_statistic)
    ks_2samp = staticmethod(_stats.ks_2samp)
    wasserstein_1d = staticmethod(_stats.wasserstein_1d)
    energy_distance = staticmethod(_stats.energy_distance)
    psi = staticmethod(_stats.psi)
    # stateful forms and combinators
    transforms = transforms
    chain = staticmethod(chain)
    identity = staticmethod(identity)
    stateless = staticmethod(stateless)

    @staticmethod
    def operations() -> dict[str, tuple[str, ...]]:
        """The operations by family: signal, linalg, binary, drift (read off the methods)."""
        families: dict[str, list[str]] = {
            family: [] for family in dict.fromkeys(_FAMILIES.values())
        }
        for name, member in vars(BinaryAlgebra).items():
            module = getattr(getattr(member, "__func__", None), "__module__", None)
            if module in _FAMILIES:
                families[_FAMILIES[module]].append(name)
        return {family: tuple(names) for family, names in families.items()}

    def __repr__(self) -> str:
        families = self.operations()
        count = sum(len(names) for names in families.values())
        return f"BinaryAlgebra({count} operations: {', '.join(families)})"
