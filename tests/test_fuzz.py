"""Bad input, measured (issue 9): the public API under generated, hostile input.

Every case either returns a finite, documented result or raises a :class:`LiamError`
subclass. A failure is one of:

* a raw exception (``TypeError``, ``ValueError``, ``OverflowError``, a JAX, pandas or Arrow
  error, ``UnicodeDecodeError``, a warning turned into an error), named by its type;
* a NaN or infinity out of finite input (``dominant_period`` of a constant series,
  ``wasserstein_1d`` with negative weights), except where the documentation promises it
  (``cond`` of a rank-deficient matrix is inf, the correlation of a constant column NaN).
  Finite input here excludes magnitudes between 1e15 and float32's largest value, whose
  arithmetic overflows float32 as it does in numpy (IEEE, not a missing check); values past
  float32's range in float64 input are included: without x64 they must be refused;
* a crash (the process dies): seen by the counting mode, which runs each target alone.

Sizes stay small (arrays of at most 5 x 5 x 5, settings that would allocate more than the
machine has are only ever passed where the library must refuse them), so the fuzz itself
cannot exhaust memory. Examples are derandomized: CI sees the same inputs every run.

Counting mode, which records the failures per target and kind instead of stopping at the
first (run from the repository root)::

    .venv/bin/python tests/test_fuzz.py            # every target, each in its own process
    .venv/bin/python tests/test_fuzz.py signal     # the targets whose name contains 'signal'
"""

from __future__ import annotations

import collections
import io
import math
import os
import re
import subprocess
import sys
import tempfile
import traceback
import warnings

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

if __name__ == "__main__":  # the set-up of tests/conftest.py, for the counting mode
    jax.config.update("jax_num_cpu_devices", 8)
    jax.config.update("jax_numpy_dtype_promotion", "strict")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liam_core import LaborIntelligenceEngine, LiamError, Schema
from liam_core import algebra as A
from liam_core.alda import LaborArray
from liam_core.algebra import transforms as T
from liam_core.data import Batch, read_csv, read_frame, read_parquet

# LIAM_FUZZ_SCALE multiplies the examples (the counting mode's measurements used 5).
_SCALE = float(os.environ.get("LIAM_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(200 * _SCALE), deadline=None, derandomize=True, database=None)
FUZZ_FEW = settings(max_examples=int(60 * _SCALE), deadline=None, derandomize=True, database=None)

PHYS_BYTES = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
SMALL_BYTES = 64 << 20  # the most a fuzz case may ask the library to allocate
F32_MAX = float(np.finfo(np.float32).max)
MODERATE = 1e15  # finite input up to this magnitude must give finite output

# --------------------------------------------------------------------------------------------
# Judging one call
# --------------------------------------------------------------------------------------------

COUNTS: collections.Counter | None = None  # set by the counting mode
EXAMPLES: dict[tuple[str, str], str] = {}


def _finite_tree(result) -> bool:
    leaves = jax.tree_util.tree_leaves(result)
    for leaf in leaves:
        if isinstance(leaf, Batch):
            values = leaf.values if leaf.mask is None else leaf.values[leaf.mask]
            if not np.isfinite(values).all():
                return False
            continue
        if isinstance(leaf, float) and not math.isfinite(leaf):
            return False
        if isinstance(leaf, jax.Array | np.ndarray | np.generic):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                continue
            array = np.asarray(leaf)
            if np.issubdtype(array.dtype, np.inexact) and not np.isfinite(array).all():
                return False
    return True


def finite_input(*arrays) -> bool:
    """Whether every array is numeric and finite, outside the float32 overflow band."""
    for x in arrays:
        if x is None:
            continue
        try:
            values = np.asarray(x)
        except Exception:  # not an array: nothing to promise about it
            return False
        if values.dtype == object or values.dtype.kind not in "biuf":
            return False
        if values.dtype.kind == "f":
            if not np.isfinite(values).all():
                return False
            magnitude = np.abs(values)
            if ((magnitude > MODERATE) & (magnitude <= F32_MAX)).any():
                return False
        elif (
            values.dtype.kind in "iu"
            and values.size
            and np.abs(values.astype(float)).max() > MODERATE
        ):
            return False
    return True


def _fail(target: str, kind: str, detail: str) -> None:
    if COUNTS is not None:
        COUNTS[(target, kind)] += 1
        EXAMPLES.setdefault((target, kind), detail[:400])
        return
    raise AssertionError(f"{target}: {kind}: {detail[:2000]}")


NUMPY_REPR = re.compile(r"\bnp\.[a-z_]+\d*\(|array\(\[")
"""What a message must not show: numpy's reprs (``np.float64(150.0)``, ``array([...])``)."""
MAX_MESSAGE = 1000
"""Characters of a message at most (an offending value is quoted to 200 of them)."""


# Warnings liam-core gives where scipy gives them (their text, as a regular expression).
DOCUMENTED_WARNINGS = (
    r".*nperseg=\d+ is greater than the signal length",  # a segment shortened to the data
    r".*input data is complex, switching to return_onesided=False",  # spectrogram, stft
    r"NOLA condition failed",  # istft: windows that do not overlap-add to nonzero
)


def judge(target: str, call, *, finite: bool = False, documented=None) -> object:
    """Run ``call()``; record (or raise) a failure unless it returns or raises a LiamError.

    ``finite``: the input was finite, so the result must be too, unless
    ``documented(result)`` says the non-finite values are the documented ones.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for documented_warning in DOCUMENTED_WARNINGS:
                warnings.filterwarnings("ignore", documented_warning, UserWarning)
            result = call()
            result = jax.block_until_ready(result)
    except LiamError as error:
        message = str(error)
        if NUMPY_REPR.search(message):
            _fail(target, "numpy repr in a message", message[:2000])
        elif len(message) > MAX_MESSAGE:
            _fail(target, "overlong message", f"{len(message)} characters: {message[:300]}")
        return None
    except AssertionError:
        raise
    except Exception as error:  # the point: anything else is a failure
        kind = f"raw {type(error).__module__}.{type(error).__qualname__}"
        if os.environ.get("LIAM_FUZZ_TRACE"):  # where a raw error came from
            traceback.print_exc()
        _fail(target, kind, f"{error!r}")
        return None
    if finite and not _finite_tree(result) and not (documented and documented(result)):
        _fail(target, "nan/inf from finite input", f"result {result!r}")
    return result


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

SPECIAL_FLOATS = [0.0, -0.0, 1.0, -1.0, 2.5, 1e-40, 1e15, -1e15, 1e30, 3e38, 1e39, -1e39,
                  math.nan, math.inf, -math.inf]  # fmt: skip
HUGE_INTS = [2**31, 2**62, -(2**63), 2**63 - 1]
floats = st.one_of(st.sampled_from(SPECIAL_FLOATS), st.floats(-1e3, 1e3, width=32))
moderate_floats = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, 1e-40, 1e10]), st.floats(-1e3, 1e3, width=32)
)

REAL_DTYPES = ["float32", "float64", "int8", "int32", "int64", "uint8", "uint64"]
OTHER_DTYPES = ["bool", "complex64", "str", "object"]


def _elements(dtype: str, moderate: bool = False):
    if dtype.startswith("float"):
        return moderate_floats if moderate else floats
    if dtype.startswith("complex"):
        return st.complex_numbers(max_magnitude=1e3, allow_nan=False, allow_infinity=False)
    if dtype == "bool":
        return st.booleans()
    if dtype == "str":
        return st.text(max_size=3)
    if dtype == "object":
        return st.one_of(st.none(), st.text(max_size=2), st.floats(), st.integers())
    info = np.iinfo(dtype)
    small = st.integers(max(info.min, -100), min(info.max, 100))
    if moderate:
        return small
    return st.one_of(small, st.sampled_from([info.min, info.max]))


@st.composite
def arrays(draw, *, dtypes=None, min_dims=0, max_dims=3, max_side=5, shape=None, moderate=None):
    """A small numpy array of any dtype and shape (0-d, empty, 1..3-D), hostile values."""
    dtype = draw(st.sampled_from(dtypes or REAL_DTYPES * 3 + OTHER_DTYPES))
    if shape is None:
        ndim = draw(st.integers(min_dims, max_dims))
        shape = tuple(draw(st.integers(0, max_side)) for _ in range(ndim))
    if moderate is None:
        moderate = draw(st.booleans())
    size = math.prod(shape)
    values = draw(st.lists(_elements(dtype, moderate), min_size=size, max_size=size))
    if dtype == "str":
        return np.array(values, dtype="<U3").reshape(shape)
    if dtype == "object":
        out = np.empty(size, dtype=object)
        out[:] = values
        return out.reshape(shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array(values, dtype=dtype).reshape(shape)


def series(draw, **kwargs):
    """Mostly 1-D or 2-D real arrays (what the signal functions take), sometimes anything."""
    if draw(st.integers(0, 4)) == 0:
        return draw(arrays())
    return draw(arrays(min_dims=1, max_dims=2, max_side=6, **kwargs))


# 2**40 is the huge size: past any machine's memory in every product the library forms, so
# the library must refuse it, and the fuzz never allocates it (10**9 rows of chunk_size have
# their own, memory-aware test below).
BAD_SETTINGS = [-1, 0, 2**40, -(10**9), 2**63, 1.5, math.nan, math.inf, "3", "", None, True,
                False, [1], (2,), {}, b"x", np.int64(2), np.float32(1.0), object()]  # fmt: skip


def setting(*valid):
    """One of the valid values, or a wrong type or out-of-range value."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(BAD_SETTINGS))


KEYS = [jax.random.key(0), jax.random.PRNGKey(1)]
bad_keys = st.sampled_from([*KEYS, KEYS[0], None, 3, np.zeros(3, np.uint32), "key"])


# --------------------------------------------------------------------------------------------
# Algebra: signal
# --------------------------------------------------------------------------------------------


@FUZZ
@given(st.data())
def test_fuzz_signal(data):
    draw = data.draw
    x = series(draw)
    fin = finite_input(x)
    axis = draw(setting(0, 1, -1))
    op = draw(st.sampled_from(["standardize", "detrend", "rolling_mean", "rolling_std",
                               "convolve", "periodogram", "welch", "csd", "spectrogram",
                               "stft", "istft", "dominant_period"]))  # fmt: skip
    if op == "standardize":
        ddof = draw(setting(0, 1))
        judge(op, lambda: A.standardize(x, axis=axis, ddof=ddof), finite=fin)
    elif op == "detrend":
        kind = draw(setting("linear", "constant"))
        judge(op, lambda: A.detrend(x, type=kind, axis=axis), finite=fin)
    elif op == "rolling_mean":
        window = draw(setting(1, 2, 3))
        judge(op, lambda: A.rolling_mean(x, window, axis=axis), finite=fin)
    elif op == "rolling_std":
        window, ddof = draw(setting(1, 2, 3)), draw(setting(0, 1))
        judge(op, lambda: A.rolling_std(x, window, axis=axis, ddof=ddof), finite=fin)
    elif op == "convolve":
        kernel = draw(arrays(max_dims=2))
        mode = draw(setting("full", "same", "valid"))
        judge(
            op,
            lambda: A.convolve(x, kernel, mode=mode, axis=axis),
            finite=fin and finite_input(kernel),
        )
    elif op == "periodogram":
        options = dict(
            fs=draw(setting(1.0, 2, 0.5)),
            window=draw(
                setting("boxcar", "hann", "hamming", "blackman", "bartlett", ("tukey", 0.3),
                        ("kaiser", 4.0), None, np.ones(3), "nosuch", ("kaiser",))
            ),
            nfft=draw(setting(None, 1, 3, 8, 0)),
            detrend=draw(setting("constant", "linear", False, None, lambda s: s - s[..., :1])),
            return_onesided=draw(setting(True, False)),
            scaling=draw(setting("density", "spectrum")),
        )  # fmt: skip
        judge(op, lambda: A.periodogram(x, axis=axis, **options), finite=fin)
    elif op == "welch":
        options = dict(
            fs=draw(setting(1.0, 3)),
            window=draw(setting("hann", "boxcar")),
            nperseg=draw(setting(None, 1, 2, 4, 300)),
            noverlap=draw(setting(None, 0, 1, -1)),
            nfft=draw(setting(None, 4, 7)),
            detrend=draw(setting("constant", "linear", False)),
            return_onesided=draw(setting(True, False)),
            scaling=draw(setting("density", "spectrum")),
            average=draw(setting("mean", "median")),
        )
        judge(op, lambda: A.welch(x, axis=axis, **options), finite=fin)
    elif op == "csd":
        y = draw(arrays(max_dims=2))
        options = dict(
            nperseg=draw(setting(None, 2, 4)),
            window=draw(setting("hann", ("tukey", 0.5), np.ones(2))),
            average=draw(setting("mean", "median")),
        )
        judge(op, lambda: A.csd(x, y, axis=axis, **options), finite=fin and finite_input(y))
    elif op == "spectrogram":
        options = dict(
            nperseg=draw(setting(None, 2, 4)),
            mode=draw(setting("psd", "complex", "magnitude", "angle", "phase")),
            return_onesided=draw(setting(True, False)),
        )
        judge(op, lambda: A.spectrogram(x, axis=axis, **options), finite=fin)
    elif op == "stft":
        options = dict(
            nperseg=draw(setting(1, 2, 4, 256)),
            boundary=draw(setting("zeros", "even", "odd", "constant", None, "mirror")),
            padded=draw(setting(True, False)),
            scaling=draw(setting("spectrum", "psd")),
        )
        judge(op, lambda: A.stft(x, axis=axis, **options), finite=fin)
    elif op == "istft":
        options = dict(
            nperseg=draw(setting(None, 1, 2, 4)),
            input_onesided=draw(setting(True, False)),
            boundary=draw(setting(True, False)),
            freq_axis=draw(setting(-2, 0, 1)),
        )
        judge(op, lambda: A.istft(x, **options), finite=fin)
    else:
        fs = draw(setting(1.0, 12))
        judge(op, lambda: A.dominant_period(x, fs=fs, axis=axis), finite=fin)


# --------------------------------------------------------------------------------------------
# Algebra: linalg
# --------------------------------------------------------------------------------------------


def _cond_documented(result) -> bool:
    """``cond`` / ``condition_number`` is inf for a rank-deficient matrix, and only then."""
    if isinstance(result, dict):
        others = {k: v for k, v in result.items() if k != "condition_number"}
        return _finite_tree(others)
    return bool(np.all(np.isposinf(np.asarray(result)) | np.isfinite(np.asarray(result))))


def _correlation_documented(result) -> bool:
    """A constant column has NaN correlations: whole rows and columns of NaN, nothing else."""
    corr = np.asarray(result)
    nan = np.isnan(corr)
    if np.isinf(corr).any():
        return False
    rows = nan.all(axis=1)
    return bool(np.array_equal(nan, rows[:, None] | rows[None, :]))


@FUZZ
@given(st.data())
def test_fuzz_linalg(data):
    draw = data.draw
    x = (
        draw(arrays(min_dims=0, max_dims=3))
        if draw(st.booleans())
        else draw(arrays(min_dims=2, max_dims=2, max_side=5))
    )
    fin = finite_input(x)
    op = draw(st.sampled_from(["covariance", "correlation", "matrix_rank", "cond",
                               "svd_patterns", "pca", "whiten", "random_projection",
                               "random_projection_matrix"]))  # fmt: skip
    if op == "covariance":
        ddof = draw(setting(0, 1))
        judge(op, lambda: A.covariance(x, ddof=ddof), finite=fin)
    elif op == "correlation":
        judge(op, lambda: A.correlation(x), finite=fin, documented=_correlation_documented)
    elif op in ("matrix_rank", "cond", "svd_patterns"):
        tol = draw(setting(None, 0.0, 1e-3))
        rtol = draw(setting(None, 1e-3)) if tol is None else None
        hermitian = draw(setting(False, True))
        p = draw(setting(None, "fro", "nuc", math.inf, -math.inf, 1, -1, 2, -2))
        call = {
            "matrix_rank": lambda: A.matrix_rank(x, tol, hermitian, rtol=rtol),
            "cond": lambda: A.cond(x, p),
            "svd_patterns": lambda: A.svd_patterns(x, tol),
        }[op]
        judge(op, call, finite=fin, documented=_cond_documented)
    elif op == "pca":
        n_components, white = draw(setting(None, 1, 2)), draw(setting(False, True))
        judge(op, lambda: A.pca(x, n_components, whiten=white), finite=fin)
    elif op == "whiten":
        method, eps = draw(setting("zca", "pca")), draw(setting(None, 1e-6))
        judge(op, lambda: A.whiten(x, method=method, eps=eps), finite=fin)
    elif op == "random_projection":
        n, key = draw(setting(1, 3)), draw(bad_keys)
        kind = draw(setting("gaussian", "sparse"))
        judge(op, lambda: A.random_projection(x, n, key=key, kind=kind), finite=fin)
    else:
        sizes = st.one_of(st.sampled_from([1, 3, 2**40, 2**62]), st.sampled_from(BAD_SETTINGS))
        n_features, n_components = draw(sizes), draw(sizes)
        _refuse_unless_small(n_features, n_components)
        key, kind = draw(bad_keys), draw(setting("gaussian", "sparse"))
        dtype = draw(st.sampled_from([None, np.float32, np.float64, np.int32, "float32", "x"]))
        judge(
            op,
            lambda: A.random_projection_matrix(
                n_features, n_components, key=key, kind=kind, dtype=dtype
            ),
            finite=True,
        )


def _refuse_unless_small(*sizes) -> None:
    """Assert that the fuzz only asks for small arrays, or for ones no machine can hold."""
    ints = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool) and s > 0]
    if len(ints) == len(sizes):
        nbytes = math.prod(ints) * 8
        assert nbytes <= SMALL_BYTES or nbytes > PHYS_BYTES, sizes


# --------------------------------------------------------------------------------------------
# Algebra: binary codes
# --------------------------------------------------------------------------------------------


@st.composite
def words(draw):
    """Packed codes: mostly uint32 [n, n_words], sometimes any array."""
    if draw(st.integers(0, 3)) == 0:
        return draw(arrays(dtypes=[*REAL_DTYPES, "bool", "uint32"]))
    n, n_words = draw(st.integers(0, 4)), draw(st.integers(0, 3))
    values = draw(st.lists(st.integers(0, 2**32 - 1), min_size=n * n_words, max_size=n * n_words))
    return np.array(values, dtype=np.uint32).reshape(n, n_words)


@FUZZ
@given(st.data())
def test_fuzz_binary(data):
    draw = data.draw
    op = draw(st.sampled_from(["random_hyperplanes", "sign_hash", "pack_bits", "unpack_bits",
                               "popcount", "xor", "hamming", "hamming_topk", "binary_rank"]))  # fmt: skip
    bits = draw(arrays(dtypes=["bool", "int8", "int32", "uint8", "float32", "str"], max_dims=3))
    if op == "random_hyperplanes":
        sizes = st.one_of(st.sampled_from([1, 3, 40, 2**40, 2**62]), st.sampled_from(BAD_SETTINGS))
        n_features, n_bits = draw(sizes), draw(sizes)
        _refuse_unless_small(n_features, n_bits)
        key = draw(bad_keys)
        dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, "x", None]))
        judge(
            op, lambda: A.random_hyperplanes(n_features, n_bits, key=key, dtype=dtype), finite=True
        )
    elif op == "sign_hash":
        x = draw(arrays(max_dims=2))
        planes = draw(
            st.one_of(st.just(None), arrays(max_dims=2, dtypes=["float32", "float64", "int32"]))
        )
        if planes is None and x.ndim == 2:
            planes = np.asarray(A.random_hyperplanes(max(x.shape[1], 1), 5, key=KEYS[0]))
        judge(op, lambda: A.sign_hash(x, planes))
    elif op == "pack_bits":
        judge(op, lambda: A.pack_bits(bits))
    elif op == "unpack_bits":
        codes, n_bits = draw(words()), draw(setting(1, 32, 33, 64))
        judge(op, lambda: A.unpack_bits(codes, n_bits))
    elif op == "popcount":
        codes = draw(words())
        judge(op, lambda: A.popcount(codes))
    elif op == "xor":
        a, b = draw(words()), draw(words())
        judge(op, lambda: A.xor(a, b))
    elif op == "hamming":
        a, b = draw(words()), draw(st.one_of(st.none(), words()))
        judge(op, lambda: A.hamming(a, b))
    elif op == "hamming_topk":
        q, codes, k = draw(words()), draw(words()), draw(setting(1, 2))
        judge(op, lambda: A.hamming_topk(q, codes, k))
    else:
        n_bits = draw(st.one_of(st.none(), setting(1, 32)))
        source = draw(st.one_of(st.just(bits), words()))
        judge(op, lambda: A.binary_rank(source, n_bits=n_bits))


# --------------------------------------------------------------------------------------------
# Algebra: drift statistics
# --------------------------------------------------------------------------------------------


@FUZZ
@given(st.data())
def test_fuzz_drift(data):
    draw = data.draw
    op = draw(
        st.sampled_from(["ks_statistic", "ks_2samp", "wasserstein_1d", "energy_distance", "psi"])
    )
    first, second = draw(arrays(max_dims=2)), draw(arrays(max_dims=2))
    if draw(st.booleans()) and first.ndim >= 1:  # often the same layout, so the values matter
        second = draw(arrays(shape=(draw(st.integers(0, 5)), *first.shape[1:])))
    fin = finite_input(first, second)
    if op == "ks_statistic":
        judge(op, lambda: A.ks_statistic(first, second), finite=fin)
    elif op == "ks_2samp":
        alternative = draw(setting("two-sided", "less", "greater"))
        method = draw(setting("auto", "exact", "asymp"))
        axis = draw(st.one_of(st.none(), setting(0, 1, -1)))
        nan_policy = draw(setting("propagate", "omit", "raise"))
        keepdims = draw(setting(False, True))

        def ks_2samp():  # without scipy's documented RuntimeWarnings (empty samples, exact->asymp)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "ks_2samp: |Exact ks_2samp", RuntimeWarning)
                return A.ks_2samp(
                    first, second, alternative, method, axis=axis, nan_policy=nan_policy,
                    keepdims=keepdims,
                )  # fmt: skip

        def documented(result):  # NaN: an empty sample; the asymp two-sided p of 1 value each
            if 0 in first.shape or 0 in second.shape:
                return True
            rest = (result.statistic, result.statistic_location, result.statistic_sign)
            return (
                method == "asymp"
                and alternative == "two-sided"
                and all(np.isfinite(np.asarray(value)).all() for value in rest)
            )

        judge(op, ks_2samp, finite=fin, documented=documented)
    elif op == "psi":
        bins, eps = draw(setting(2, 4, 10)), draw(setting(1e-6, 0.1))
        judge(op, lambda: A.psi(first, second, bins=bins, eps=eps), finite=fin)
    else:
        weights = st.one_of(
            st.none(), arrays(max_dims=2), arrays(shape=first.shape, dtypes=["float32", "int32"])
        )
        u_weights = draw(weights)
        v_weights = draw(st.one_of(st.none(), arrays(shape=second.shape, dtypes=["float32"])))
        judge(
            op,
            lambda: getattr(A, op)(first, second, u_weights, v_weights),
            finite=fin and finite_input(u_weights, v_weights),
        )


# --------------------------------------------------------------------------------------------
# Algebra: transforms and combinators
# --------------------------------------------------------------------------------------------


@FUZZ
@given(st.data())
def test_fuzz_transforms(data):
    draw = data.draw
    name = draw(st.sampled_from(["standardize", "detrend", "rolling_mean", "rolling_std",
                                 "periodogram", "pca", "whiten", "random_projection",
                                 "sign_hash", "chain", "stateless"]))  # fmt: skip
    args = {
        "standardize": (),
        "detrend": (draw(setting("linear", "constant")),),
        "rolling_mean": (draw(setting(1, 2)),),
        "rolling_std": (draw(setting(2, 3)), draw(setting(0, 1))),
        "periodogram": (draw(setting(1.0, 2.0)), draw(setting("hann", "boxcar"))),
        "pca": (draw(setting(None, 1, 2)), draw(setting(False, True))),
        "whiten": (draw(setting("zca", "pca")), draw(setting(None, 1e-3))),
        "random_projection": (draw(setting(1, 2)), draw(bad_keys)),
        "sign_hash": (draw(setting(1, 33)), draw(bad_keys)),
        "chain": draw(
            st.lists(st.sampled_from([T.standardize(), A.identity(), "x", None, 3]), max_size=3)
        ),
        "stateless": (draw(st.sampled_from([np.abs, None, 3, "abs"])),),
    }[name]
    factories = {
        "standardize": lambda: T.standardize(),
        "detrend": lambda: T.detrend(*args),
        "rolling_mean": lambda: T.rolling_mean(*args),
        "rolling_std": lambda: T.rolling_std(*args),
        "periodogram": lambda: T.periodogram(args[0], window=args[1]),
        "pca": lambda: T.pca(args[0], whiten=args[1]),
        "whiten": lambda: T.whiten(*args),
        "random_projection": lambda: T.random_projection(args[0], key=args[1]),
        "sign_hash": lambda: T.sign_hash(args[0], key=args[1]),
        "chain": lambda: A.chain(*args),
        "stateless": lambda: A.stateless(*args),
    }
    transform = judge(f"transforms.{name}", factories[name])
    if transform is None:
        return
    reference = draw(arrays(max_dims=3))
    state = judge(f"transforms.{name}.init", lambda: transform.init(reference))
    if state is None:
        return
    new = draw(arrays(max_dims=3)) if draw(st.booleans()) else reference
    fin = finite_input(reference, new)
    judge(
        f"transforms.{name}.apply",
        lambda: transform.apply(state, new),
        finite=fin and name not in ("chain", "stateless"),
    )
    # A state that is not this transform's own.
    other = draw(st.sampled_from([(), None, 3, (np.ones(2),), state]))
    judge(f"transforms.{name}.apply(other state)", lambda: transform.apply(other, reference))


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------

names = st.one_of(st.sampled_from(["productivity", "quality", "load", ""]), st.text(max_size=3),
                  st.sampled_from([None, 3, b"q", ("a",)]))  # fmt: skip
record_values = st.one_of(
    floats,
    st.sampled_from([*HUGE_INTS, 10**400, -(10**400), True, None, "3", "x", [1.0], np.float64(1e39),
                     np.float32(2.0), np.int64(7), np.nan, complex(1, 2), np.array(1.0)]),
)  # fmt: skip


@st.composite
def engines(draw):
    dimensions = draw(st.one_of(st.sampled_from([1, 4, 64, 2**40]), st.sampled_from(BAD_SETTINGS)))
    schema = None
    if draw(st.booleans()):
        schema_names = draw(
            st.one_of(st.lists(names, max_size=3), st.sampled_from(["abc", None, 3]))
        )
        ranges = draw(st.sampled_from([{}, {"quality": (0, 100)}, {"quality": (5, 1)},
                                       {"quality": ("a", 2)}, {"quality": 3}, {"load": (0, math.nan)}]))  # fmt: skip
        units = draw(st.sampled_from([{}, {"quality": "%"}, {"quality": 3}, None]))
        allow_missing = draw(setting(False, True))
        schema = judge(
            "Schema",
            lambda: Schema(schema_names, units=units, ranges=ranges, allow_missing=allow_missing),
        )
        schema = schema if schema is not None else draw(st.sampled_from([None, "schema", 3]))
    alternate_sign = draw(setting(True, False))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32, "float32", "x", None, 3]))
    return judge(
        "LaborIntelligenceEngine",
        lambda: LaborIntelligenceEngine(
            dimensions, schema, alternate_sign=alternate_sign, dtype=dtype
        ),
    )


@FUZZ
@given(st.data())
def test_fuzz_engine(data):
    draw = data.draw
    engine = draw(engines())
    if engine is None:
        return
    d = engine.dimensions
    op = draw(st.sampled_from(["ingest_labor_data", "ingest_batch", "compute_labor_matrix",
                               "analyze_intelligence_patterns"]))  # fmt: skip
    if op == "ingest_labor_data":
        record = draw(st.one_of(st.dictionaries(names, record_values, max_size=4),
                                st.sampled_from([None, [], "abc", 3, {}])))  # fmt: skip
        fin = isinstance(record, dict) and all(
            isinstance(v, float | int) and not isinstance(v, bool) and abs(v) <= MODERATE
            for v in record.values()
        )  # NaN compares False: not finite input
        judge(op, lambda: engine.ingest_labor_data(record), finite=fin)
    elif op == "ingest_batch":
        kind = draw(st.sampled_from(["records", "columns", "frame", "other"]))
        if kind == "records":
            records = draw(st.lists(st.one_of(st.dictionaries(names, record_values, max_size=3),
                                              st.sampled_from([None, 3, "r"])), max_size=3))  # fmt: skip
        elif kind == "columns":
            records = draw(st.dictionaries(names, arrays(max_dims=2), max_size=3))
        elif kind == "frame":
            import pandas as pd

            columns = draw(st.dictionaries(st.sampled_from(["productivity", "quality", "load"]),
                                           arrays(shape=(3,)), max_size=3))  # fmt: skip
            records = pd.DataFrame(columns)
        else:
            records = draw(st.sampled_from([None, 3, "abc", b"x", np.ones(3), np.ones((2, 2))]))
        judge(op, lambda: engine.ingest_batch(records))
    else:
        if draw(st.booleans()):
            tensors = draw(arrays(max_dims=3))
        else:
            tensors = draw(st.lists(arrays(shape=(d,) if d <= 64 else (1,)), max_size=3))
        fin = finite_input(*(tensors if isinstance(tensors, list) else [tensors]))
        if op == "compute_labor_matrix":
            center, standardize = draw(setting(False, True)), draw(setting(False, True))
            judge(
                op,
                lambda: engine.compute_labor_matrix(
                    tensors, center=center, standardize=standardize
                ),
                finite=fin,
            )
        else:
            tol = draw(setting(None, 1e-3))
            judge(
                op,
                lambda: engine.analyze_intelligence_patterns(tensors, tol=tol),
                finite=fin,
                documented=_cond_documented,
            )


# --------------------------------------------------------------------------------------------
# ALDA LaborArray: settings, then one primitive on a small batch
# --------------------------------------------------------------------------------------------


@FUZZ_FEW
@given(st.data())
def test_fuzz_labor_array(data):
    draw = data.draw
    mesh = draw(st.sampled_from([None, 1, 2, 8, 0, -1, 9, "x", [], 2.0, True]))
    options = dict(
        chunk_size=draw(st.one_of(st.sampled_from([1, 3, 256]), st.sampled_from(BAD_SETTINGS))),
        max_in_flight=draw(setting(1, 16, 32)),
        executor=draw(setting(None, "pmap", "shard_map", "vmap")),
        data_axis=draw(setting("data", ("data",), "model")),
        fast=draw(setting(False, True)),
    )
    labor = judge("LaborArray", lambda: LaborArray(mesh, **options))
    if labor is None:
        return
    x = draw(arrays(dtypes=[*REAL_DTYPES, "bool", "complex64", "str", "object"], max_dims=3))
    op = draw(st.sampled_from(["sum", "mean", "covariance", "map", "reduce"]))
    ddof = draw(setting(0, 1))
    fn = draw(st.sampled_from([np.negative, None, 3]))
    kernel = draw(st.sampled_from([_count_rows, None, "f"]))
    calls = {
        "sum": lambda: labor.sum(x),
        "mean": lambda: labor.mean(x),
        "covariance": lambda: labor.covariance(x, ddof=ddof),
        "map": lambda: labor.map(fn, x),
        "reduce": lambda: labor.reduce(kernel, x),
    }
    fin = finite_input(x) and op in ("sum", "mean", "covariance")
    judge(f"LaborArray.{op}", calls[op], finite=fin and x.dtype.kind == "f")


def _count_rows(chunk, mask):
    return jax.numpy.sum(mask)


@settings(max_examples=6, deadline=None, derandomize=True, database=None)
@given(
    chunk_size=st.sampled_from([10**9, 2**40, 2**62]),
    n_devices=st.sampled_from([1, 8]),
    width=st.integers(1, 4),
)
def test_fuzz_labor_array_refuses_a_padded_batch_larger_than_memory(chunk_size, n_devices, width):
    labor = LaborArray(n_devices, chunk_size=chunk_size)
    x = np.ones((3, width), np.float32)
    nbytes = labor.plan(3).padded_rows * width * 4
    if nbytes <= SMALL_BYTES or nbytes > PHYS_BYTES:  # never allocate a big one for real
        judge("LaborArray.sum(huge chunk_size)", lambda: labor.sum(x), finite=True)
    if nbytes > PHYS_BYTES:
        with pytest.raises(LiamError, match="`chunk_size`"):
            labor.sum(x)


# --------------------------------------------------------------------------------------------
# Readers: malformed files
# --------------------------------------------------------------------------------------------

CELLS = ["1", "-0.0", "2.5", "1e39", "-1e39", "1e400", "nan", "inf", "", "abc", "NULL", "1,5",
         "2024-01-01T00:00:00Z", "2024-01-01T00:05:00Z", "1704067200", "99999999999999999999999",
         '"q,uoted"', '"open', "\x00", "é", "\u2028", "12:00", "0x10"]  # fmt: skip
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "ascii"]


@st.composite
def csv_bytes(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=120))
    header = draw(st.lists(st.sampled_from(["time", "host", "cpu", "mem", "", "1", "cpu"]),
                           min_size=0, max_size=4))  # fmt: skip
    rows = draw(st.lists(st.lists(st.sampled_from(CELLS), max_size=5), max_size=5))
    text = "\n".join([",".join(header), *(",".join(row) for row in rows)])
    text += draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))
    data = text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    cut = draw(st.integers(0, len(data)))
    return data[:cut] if draw(st.booleans()) else data


def _reader_options(draw, encoding: bool):
    options = dict(
        time_column=draw(st.sampled_from([None, "time", "cpu", "nope", 3])),
        entity_columns=draw(st.sampled_from([(), ("host",), "host", (None,)])),
        metrics=draw(st.sampled_from([None, ("cpu",), ("cpu", "mem"), ("zz",), "cpu"])),
        nan_policy=draw(setting("raise", "mask")),
        step=draw(st.sampled_from([None, "5min", "0min", "-5min", "abc", 3])),
        batch_size=draw(st.sampled_from([None, 2, 0, "2"])),
    )
    if encoding:
        options["encoding"] = draw(st.sampled_from([*ENCODINGS, "no-such-codec", 3, ""]))
    return options


def _consume(result):
    return list(result) if not isinstance(result, Batch) and result is not None else result


@FUZZ
@given(st.data())
def test_fuzz_read_csv(data):
    draw = data.draw
    content, options = draw(csv_bytes()), _reader_options(draw, encoding=True)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "metrics.csv")
        with open(path, "wb") as file:
            file.write(content)
        judge("read_csv", lambda: _consume(read_csv(path, **options)), finite=True)


def _parquet_bytes(draw) -> bytes:
    import pandas as pd

    frame = pd.DataFrame({
        "time": pd.date_range("2024-01-01", periods=4, freq="5min", tz="UTC"),
        "host": ["a", "b", "a", "b"],
        "cpu": draw(st.lists(floats, min_size=4, max_size=4)),
        "mem": draw(st.sampled_from([[1, 2, 3, 4], ["x", "y", "z", "w"], [None, 1.0, 2.0, None]])),
    })  # fmt: skip
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    data = bytearray(buffer.getvalue())
    damage = draw(st.sampled_from(["none", "truncate", "flip", "random"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip":
        for position in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            data[position] ^= 0xFF
    elif damage == "random":
        data = bytearray(draw(st.binary(max_size=200)))
    return bytes(data)


@FUZZ
@given(st.data())
def test_fuzz_read_parquet(data):
    draw = data.draw
    content, options = _parquet_bytes(draw), _reader_options(draw, encoding=False)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "metrics.parquet")
        with open(path, "wb") as file:
            file.write(content)
        judge("read_parquet", lambda: _consume(read_parquet(path, **options)), finite=True)


@FUZZ_FEW
@given(st.data())
def test_fuzz_read_frame(data):
    import pandas as pd

    draw = data.draw
    columns = draw(st.dictionaries(st.sampled_from(["time", "host", "cpu", "mem"]),
                                   arrays(shape=(3,), moderate=False), max_size=4))  # fmt: skip
    frame = draw(st.sampled_from([pd.DataFrame(columns), None, "frame", columns]))
    options = _reader_options(draw, encoding=False)
    judge("read_frame", lambda: _consume(read_frame(frame, **options)), finite=True)


# --------------------------------------------------------------------------------------------
# Counting mode
# --------------------------------------------------------------------------------------------

TESTS = {name: value for name, value in dict(globals()).items() if name.startswith("test_fuzz")}


def _count_one(name: str) -> None:
    global COUNTS
    COUNTS = collections.Counter()
    try:
        TESTS[name]()
    except Exception as error:  # a harness error: show it, keep the counts
        print(f"HARNESS ERROR in {name}: {error!r}"[:3000])
    for (target, kind), count in sorted(COUNTS.items()):
        print(f"COUNT\t{name}\t{target}\t{kind}\t{count}\t{EXAMPLES[(target, kind)]!r}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        _count_one(argv[1])
        return 0
    selected = [name for name in TESTS if not argv or any(word in name for word in argv)]
    total: collections.Counter = collections.Counter()
    for name in selected:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", name], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            total[(name, "crash", f"exit {proc.returncode}")] += 1
            print(f"CRASH {name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        for line in proc.stdout.splitlines():
            if line.startswith("COUNT\t"):
                _, test, target, kind, count, example = line.split("\t", 5)
                total[(test, target, kind)] += int(count)
                print(f"{target:45s} {kind:55s} {count:>4}  e.g. {example[:160]}")
        for line in proc.stdout.splitlines():
            if line.startswith("HARNESS ERROR"):
                print(line)
    print(f"TOTAL failures: {sum(total.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
