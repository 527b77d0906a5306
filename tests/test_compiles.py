"""Compile once: a jitted operation called again at the same shapes does not compile again."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from liam_core import BinaryAlgebra
from liam_core.algebra import pack_bits, random_hyperplanes, transforms
from liam_core.testing import CompileCounter

algebra = BinaryAlgebra()
X = np.random.default_rng(0).normal(size=(128, 6)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(128, 6)).astype(np.float32)
KEY = jax.random.key(0)
CODES = pack_bits(np.random.default_rng(2).integers(0, 2, size=(20, 70)).astype(bool))
BITS = np.random.default_rng(3).integers(0, 2, size=(12, 9)).astype(bool)

CALLS = {
    "standardize": lambda: algebra.standardize(X),
    "detrend": lambda: algebra.detrend(X),
    "rolling_mean": lambda: algebra.rolling_mean(X, 8),
    "rolling_std": lambda: algebra.rolling_std(X, 8),
    "convolve": lambda: algebra.convolve(X, np.ones(5, np.float32) / 5),
    "periodogram": lambda: algebra.periodogram(X),
    "welch": lambda: algebra.welch(X, nperseg=32),
    "csd": lambda: algebra.csd(X, Y, nperseg=32),
    "coherence": lambda: algebra.coherence(X, Y, nperseg=32),
    "spectrogram": lambda: algebra.spectrogram(X, nperseg=32, mode="magnitude"),
    "stft": lambda: algebra.stft(X, nperseg=32, boundary="even"),
    "istft": lambda: algebra.istft(algebra.stft(X, nperseg=32)[2], nperseg=32, freq_axis=0),
    "dominant_period": lambda: algebra.dominant_period(X),
    "covariance": lambda: algebra.covariance(X),
    "correlation": lambda: algebra.correlation(X),
    "matrix_rank": lambda: (
        algebra.matrix_rank(X),
        algebra.matrix_rank(X, tol=1e-3),
        algebra.matrix_rank(X.T @ X, hermitian=True, rtol=1e-3),
    ),
    "cond": lambda: (algebra.cond(X), algebra.cond(X[:6], "fro"), algebra.cond(X[:6], 1)),
    "svd_patterns": lambda: algebra.svd_patterns(X),
    "pca": lambda: algebra.pca(X, 3),
    "whiten": lambda: algebra.whiten(X),
    "random_projection": lambda: algebra.random_projection(X, 4, key=KEY),
    "random_projection_matrix": lambda: algebra.random_projection_matrix(6, 4, key=KEY),
    "random_hyperplanes": lambda: algebra.random_hyperplanes(6, 40, key=KEY),
    "sign_hash": lambda: algebra.sign_hash(X, random_hyperplanes(6, 40, key=KEY)),
    "pack_bits": lambda: algebra.pack_bits(BITS),
    "unpack_bits": lambda: algebra.unpack_bits(CODES, 70),
    "popcount": lambda: algebra.popcount(CODES),
    "xor": lambda: algebra.xor(CODES, CODES),
    "hamming": lambda: algebra.hamming(CODES),
    "hamming_topk": lambda: algebra.hamming_topk(CODES[:3], CODES, 4),
    "binary_rank": lambda: algebra.binary_rank(BITS),
    "ks_statistic": lambda: algebra.ks_statistic(X, Y),
    "ks_2samp": lambda: algebra.ks_2samp(X, Y),
    "wasserstein_1d": lambda: algebra.wasserstein_1d(X[:, 0], Y[:, 0]),
    "energy_distance": lambda: algebra.energy_distance(X[:, 0], Y[:, 0]),
    "psi": lambda: algebra.psi(X, Y),
}


def test_every_operation_of_the_algebra_is_covered_here():
    operations = {name for names in algebra.operations().values() for name in names}
    assert operations == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_second_call_at_the_same_shapes_does_not_compile(name):
    jax.block_until_ready(CALLS[name]())
    with CompileCounter() as again:
        jax.block_until_ready(CALLS[name]())
    assert again.count == 0


def test_a_new_shape_compiles_and_the_counter_sees_it():
    fresh = np.ones((37, 3), np.float32)
    with CompileCounter() as first:
        jax.block_until_ready(algebra.covariance(fresh))
    assert first.count >= 1


TRANSFORMS = {
    "standardize": transforms.standardize(),
    "pca": transforms.pca(3, whiten=True),
    "whiten": transforms.whiten(),
    "random_projection": transforms.random_projection(4, key=KEY),
    "sign_hash": transforms.sign_hash(40, key=KEY),
    "periodogram": transforms.periodogram(window="hann"),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_a_fitted_transform_applied_again_at_the_same_shapes_does_not_compile(name):
    transform = TRANSFORMS[name]
    state = transform.init(X)
    jax.block_until_ready(transform.apply(state, Y))
    with CompileCounter() as again:
        jax.block_until_ready(transform.apply(transform.init(X), Y))
    assert again.count == 0


def test_a_chained_pipeline_compiles_once_and_then_never_again():
    pipeline = transforms.standardize() >> transforms.rolling_mean(8) >> transforms.pca(2)
    state = pipeline.init(X)
    jax.block_until_ready(pipeline.apply(state, Y))
    with CompileCounter() as again:
        for _ in range(3):
            jax.block_until_ready(pipeline.apply(state, Y))
    assert again.count == 0


def test_new_tolerance_values_do_not_compile_matrix_rank_again():
    jax.block_until_ready(algebra.matrix_rank(X, tol=1e-3))
    with CompileCounter() as again:
        jax.block_until_ready(algebra.matrix_rank(Y, tol=0.5))
        jax.block_until_ready(algebra.matrix_rank(Y, tol=2.0))
    assert again.count == 0
