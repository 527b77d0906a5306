"""Binary codes: random-hyperplane hashing, packed bit words, Hamming search, GF(2) rank.

A *code* is a row of ``n_bits`` bits packed into ``ceil(n_bits / 32)`` ``uint32`` words:
bit ``j`` lives in word ``j // 32`` at bit position ``j % 32``, least significant bit
first. This is ``np.packbits(bits, axis=1, bitorder="little")`` (zero-padded to whole
words) viewed as little-endian ``uint32``. Unused high bits of the last word are zero;
every function here produces them that way, and :func:`hamming` and :func:`popcount`
count whatever is set, so keep them zero in codes built by other means.

Every operation is a pure jitted JAX function. Shapes, dtypes and settings are checked at
trace time and raise a typed :class:`~liam_core.LiamError` naming the argument. The two
functions that take 0/1 matrices (:func:`pack_bits`, :func:`binary_rank`) also check the
values when they are concrete (not traced); under an outer ``jax.jit`` the values cannot
be checked and any nonzero entry counts as 1.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._checks import as_real_array, check_fits_in_memory, check_float_dtype, check_int, check_ndim
from .._errors import InvalidTypeError, InvalidValueError, ShapeError
from ._jit import checked_jit

BITS_PER_WORD = 32
_WORD_DTYPE = np.dtype(np.uint32)


# --- validation of codes and bit matrices (trace time; generic checks in liam_core._checks) ---


def _require_array(x: Any, name: str, owner: str) -> None:
    # Only the type is named: under jit a list arrives as a list of tracers, not its values.
    if not isinstance(x, jax.Array | np.ndarray):
        raise InvalidTypeError(
            f"{owner}: `{name}` must be a numpy or JAX array, got {type(x).__name__}"
        )


def _require_words(words: Any, name: str, owner: str, *, ndim: int | None = 2) -> None:
    """Packed codes: ``uint32`` words, ``[n_codes, n_words]`` (or any ndim >= 1 if ``ndim=None``)."""
    _require_array(words, name, owner)
    if words.dtype != _WORD_DTYPE:
        raise InvalidTypeError(
            f"{owner}: `{name}` must be packed uint32 words (build codes with pack_bits() or "
            f"sign_hash()), got dtype {words.dtype} with shape {tuple(words.shape)}"
        )
    if ndim is None:
        if words.ndim == 0:
            raise ShapeError(f"{owner}: `{name}` must be at least 1-D [..., n_words], got shape ()")
    else:
        check_ndim(words, name, ndim, owner=owner, layout=" [n_codes, n_words]")
    if words.shape[-1] == 0:
        raise ShapeError(
            f"{owner}: `{name}` must have at least one word per code, got shape "
            f"{tuple(words.shape)}"
        )


def _require_same_words(a: jax.Array, b: jax.Array, name_a: str, name_b: str, owner: str) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ShapeError(
            f"{owner}: `{name_b}` must have as many words per code as `{name_a}` "
            f"({a.shape[-1]}: codes packed from the same n_bits), got {b.shape[-1]} "
            f"(shapes {tuple(a.shape)} and {tuple(b.shape)})"
        )


def _require_word_count(words: jax.Array, n_bits: int, name: str, owner: str) -> None:
    if words.shape[1] != _n_words(n_bits):
        raise ShapeError(
            f"{owner}: `{name}` must have ceil(n_bits / 32) = {_n_words(n_bits)} words per "
            f"code for n_bits={n_bits}, got {words.shape[1]} (shape {tuple(words.shape)})"
        )


def _require_bits(bits: Any, name: str, owner: str) -> None:
    """A 0/1 matrix ``[n, n_bits]`` of bool or integer dtype (values are checked elsewhere)."""
    _require_array(bits, name, owner)
    if not (bits.dtype == np.bool_ or jnp.issubdtype(bits.dtype, jnp.integer)):
        raise InvalidTypeError(
            f"{owner}: `{name}` must be a bool or integer 0/1 matrix (threshold floats first, "
            f"e.g. `x >= 0`), got dtype {bits.dtype} with shape {tuple(bits.shape)}"
        )
    check_ndim(bits, name, 2, owner=owner, layout=" [n, n_bits]")


def _check_bit_values(bits: Any, name: str, owner: str, hint: str = "") -> None:
    """Raise if a concrete integer array holds anything but 0 and 1 (skipped when traced)."""
    if isinstance(bits, jax.core.Tracer) or not isinstance(bits, jax.Array | np.ndarray):
        return
    if not jnp.issubdtype(bits.dtype, jnp.integer) or bits.size == 0:
        return  # bool needs no check; other dtypes fail the trace-time dtype check
    values = np.asarray(bits)
    outside = (values != 0) & (values != 1)
    if outside.any():
        where = tuple(int(i) for i in np.argwhere(outside)[0])
        raise InvalidValueError(
            f"{owner}: `{name}` must hold only 0 and 1{hint}, got {values[where]} at index "
            f"{where} ({int(outside.sum())} entries outside {{0, 1}}, shape {values.shape})"
        )


def _as_bool(bits: jax.Array) -> jax.Array:
    """0/1 (or, when traced, any nonzero) entries as bool."""
    return bits if bits.dtype == np.bool_ else bits != 0


def _n_words(n_bits: int) -> int:
    return -(-n_bits // BITS_PER_WORD)


def _lanes() -> jax.Array:
    return jnp.arange(BITS_PER_WORD, dtype=jnp.uint32)


# --- packing -------------------------------------------------------------------------------


def _pack(bits: jax.Array) -> jax.Array:
    """Pack a bool matrix ``[n, n_bits]`` into ``uint32`` words (no checks)."""
    n, n_bits = bits.shape
    n_words = _n_words(n_bits)
    padded = jnp.pad(bits, ((0, 0), (0, n_words * BITS_PER_WORD - n_bits)))
    lanes = padded.reshape(n, n_words, BITS_PER_WORD).astype(jnp.uint32) << _lanes()
    # Distinct powers of two: the sum is the bitwise OR.
    return jnp.sum(lanes, axis=-1, dtype=jnp.uint32)


def _unpack(words: jax.Array, n_bits: int) -> jax.Array:
    """Unpack ``uint32`` words ``[n, n_words]`` into a bool matrix ``[n, n_bits]`` (no checks)."""
    n, n_words = words.shape
    lanes = (words[:, :, None] >> _lanes()) & jnp.uint32(1)
    return lanes.reshape(n, n_words * BITS_PER_WORD)[:, :n_bits].astype(jnp.bool_)


@checked_jit
def _pack_bits(bits: jax.Array) -> jax.Array:
    _require_bits(bits, "bits", "pack_bits")
    if bits.shape[1] == 0:
        raise ShapeError(
            f"pack_bits: `bits` must have at least one column, got shape {tuple(bits.shape)}"
        )
    return _pack(_as_bool(bits))


def pack_bits(bits: jax.Array) -> jax.Array:
    """Pack a 0/1 matrix into ``uint32`` words, least significant bit first.

    Args:
        bits: ``[n, n_bits]`` bool or integer array of 0s and 1s (``n_bits >= 1``).

    Returns:
        ``[n, ceil(n_bits / 32)]`` ``uint32``: bit ``j`` of a row is bit ``j % 32`` of word
        ``j // 32``; unused high bits of the last word are zero.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import pack_bits
        >>> pack_bits(np.array([[1, 0, 1], [0, 0, 0]], dtype=np.uint8))
        Array([[5],
               [0]], dtype=uint32)

    Reference:
        ``np.packbits(bits, axis=1, bitorder="little")``, zero-padded to whole words and
        viewed as ``"<u4"``.
    """
    _check_bit_values(bits, "bits", "pack_bits")
    return _pack_bits(bits)


@functools.partial(checked_jit, static_argnames=("n_bits",))
def unpack_bits(words: jax.Array, n_bits: int) -> jax.Array:
    """Unpack ``uint32`` words into a bool matrix: the inverse of :func:`pack_bits`.

    Args:
        words: ``[n, n_words]`` ``uint32`` codes.
        n_bits: number of bits per code; ``n_words`` must equal ``ceil(n_bits / 32)``.

    Returns:
        ``[n, n_bits]`` bool; bits past ``n_bits`` in the last word are dropped.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import unpack_bits
        >>> unpack_bits(np.array([[5]], dtype=np.uint32), n_bits=3).astype(int)
        Array([[1, 0, 1]], dtype=int32)

    Reference:
        ``np.unpackbits(words.view(np.uint8), axis=1, count=n_bits, bitorder="little")``.
    """
    owner = "unpack_bits"
    n_bits = check_int(n_bits, "n_bits", owner=owner)
    _require_words(words, "words", owner)
    _require_word_count(words, n_bits, "words", owner)
    return _unpack(words, n_bits)


# --- random-hyperplane hashing -------------------------------------------------------------


@functools.partial(checked_jit, static_argnames=("n_features", "n_bits", "dtype"))
def random_hyperplanes(
    n_features: int, n_bits: int, *, key: jax.Array, dtype: Any = jnp.float32
) -> jax.Array:
    """Draw ``n_bits`` Gaussian hyperplane normals for :func:`sign_hash`.

    Args:
        n_features: width of the rows that will be hashed.
        n_bits: number of hyperplanes, i.e. bits per code.
        key: a JAX PRNG key (``jax.random.key(seed)``); the same key gives the same planes.
        dtype: floating dtype of the result (``float64`` needs ``jax_enable_x64``).

    Returns:
        ``[n_features, n_bits]`` array of independent standard normal entries.

    Example:
        >>> import jax
        >>> from liam_core.algebra import random_hyperplanes
        >>> random_hyperplanes(4, 100, key=jax.random.key(0)).shape
        (4, 100)

    Reference:
        M. Charikar, "Similarity estimation techniques from rounding algorithms", STOC 2002.
    """
    owner = "random_hyperplanes"
    n_features = check_int(n_features, "n_features", owner=owner)
    n_bits = check_int(n_bits, "n_bits", owner=owner)
    dtype = check_float_dtype(dtype, "dtype", owner=owner)
    check_fits_in_memory(
        n_features * n_bits * dtype.itemsize, "n_bits",
        f"the [n_features, n_bits] = [{n_features}, {n_bits}] hyperplanes", owner=owner,
    )  # fmt: skip
    _require_array(key, "key", owner)
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ()
    raw = key.dtype == _WORD_DTYPE and key.shape == (2,)
    if not (typed or raw):
        raise InvalidTypeError(
            f"{owner}: `key` must be a single JAX PRNG key such as jax.random.key(0), got "
            f"dtype {key.dtype} with shape {tuple(key.shape)}"
        )
    return jax.random.normal(key, (n_features, n_bits), dtype=dtype)


@checked_jit
def sign_hash(x: jax.Array, hyperplanes: jax.Array) -> jax.Array:
    """Hash rows to packed bit codes by the sign of random projections (Charikar's SimHash).

    Bit ``j`` of row ``i`` is ``1`` when ``x[i] @ hyperplanes[:, j] >= 0`` and ``0``
    otherwise: a projection of exactly zero (so also an all-zero row) gives 1, and a NaN
    projection gives 0. For two rows at angle ``theta``, each bit differs with probability
    ``theta / pi``, so ``hamming(codes) / n_bits`` estimates ``angle / pi``.

    Args:
        x: ``[n, n_features]`` rows, floating or integer (integers are cast to the
            hyperplanes' dtype; floats use the wider of the two dtypes).
        hyperplanes: ``[n_features, n_bits]`` floating, e.g. from :func:`random_hyperplanes`.

    Returns:
        ``[n, ceil(n_bits / 32)]`` ``uint32`` codes in the layout of :func:`pack_bits`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from liam_core.algebra import random_hyperplanes, sign_hash, hamming
        >>> planes = random_hyperplanes(2, 4096, key=jax.random.key(0))
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])   # 90 and 0 degrees apart
        >>> d = hamming(sign_hash(x, planes)) / 4096               # ~ angle / pi
        >>> print(round(float(d[0, 1]), 1), float(d[0, 2]))
        0.5 0.0

    Reference:
        M. Charikar, "Similarity estimation techniques from rounding algorithms", STOC 2002.
    """
    owner = "sign_hash"
    _require_array(x, "x", owner)
    _require_array(hyperplanes, "hyperplanes", owner)
    if not jnp.issubdtype(hyperplanes.dtype, jnp.floating):
        raise InvalidTypeError(
            f"{owner}: `hyperplanes` must be floating (draw them with random_hyperplanes()), "
            f"got dtype {hyperplanes.dtype}"
        )
    as_real_array(x, "x", owner=owner)
    check_ndim(x, "x", 2, owner=owner, layout=" [n, n_features] (x[None, :] for a single row)")
    if hyperplanes.ndim != 2 or hyperplanes.shape[1] == 0:
        raise ShapeError(
            f"{owner}: `hyperplanes` must be a 2-D array [n_features, n_bits] with n_bits >= 1, "
            f"got shape {tuple(hyperplanes.shape)}"
        )
    if x.shape[1] != hyperplanes.shape[0]:
        raise ShapeError(
            f"{owner}: `hyperplanes` must have one row per feature of `x` ({x.shape[1]}), got "
            f"{hyperplanes.shape[0]} rows (shapes {tuple(x.shape)} and "
            f"{tuple(hyperplanes.shape)})"
        )
    dtype = hyperplanes.dtype
    if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize > dtype.itemsize:
        dtype = x.dtype
    # HIGHEST: reduced-precision matmuls (TF32, bf16 passes) would flip signs near zero.
    projections = jnp.matmul(
        x.astype(dtype), hyperplanes.astype(dtype), precision=lax.Precision.HIGHEST
    )
    return _pack(projections >= 0)


# --- word-wise operations and Hamming distances --------------------------------------------


@checked_jit
def popcount(words: jax.Array) -> jax.Array:
    """Count the set bits of each code.

    Args:
        words: ``[..., n_words]`` ``uint32`` codes.

    Returns:
        ``[...]`` ``int32``: set bits summed over the trailing words axis.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import popcount
        >>> popcount(np.array([[0b1011, 1], [0, 0xFFFFFFFF]], dtype=np.uint32))
        Array([ 4, 32], dtype=int32)

    Reference:
        ``np.bitwise_count(words).sum(axis=-1)``.
    """
    _require_words(words, "words", "popcount", ndim=None)
    return jnp.sum(lax.population_count(words), axis=-1, dtype=jnp.int32)


@checked_jit
def xor(a: jax.Array, b: jax.Array) -> jax.Array:
    """Word-wise exclusive or of codes; the set bits are where the codes differ.

    Args:
        a: ``[..., n_words]`` ``uint32`` codes.
        b: ``[..., n_words]`` ``uint32`` codes, same number of words; leading axes broadcast.

    Returns:
        ``uint32`` array of the broadcast shape.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import xor
        >>> xor(np.array([[0b1100]], dtype=np.uint32), np.array([[0b1010]], dtype=np.uint32))
        Array([[6]], dtype=uint32)

    Reference:
        ``np.bitwise_xor(a, b)``.
    """
    owner = "xor"
    _require_words(a, "a", owner, ndim=None)
    _require_words(b, "b", owner, ndim=None)
    _require_same_words(a, b, "a", "b", owner)
    try:
        jnp.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(
            f"{owner}: `a` and `b` must broadcast, got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        ) from None
    return a ^ b


@checked_jit
def hamming(a: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """All-pairs Hamming distances between packed codes.

    Args:
        a: ``[n, n_words]`` ``uint32`` codes.
        b: ``[m, n_words]`` ``uint32`` codes; ``None`` means ``a`` against itself.

    Returns:
        ``[n, m]`` ``int32`` exact distances. Memory is ``O(n * m)``: the loop runs over
        words, never materialising ``[n, m, n_words]``.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import hamming
        >>> hamming(np.array([[0b000], [0b011], [0b111]], dtype=np.uint32))
        Array([[0, 2, 3],
               [2, 0, 1],
               [3, 1, 0]], dtype=int32)

    Reference:
        ``scipy.spatial.distance.cdist(bits_a, bits_b, "hamming") * n_bits`` on unpacked bits.
    """
    _require_words(a, "a", "hamming")
    if b is None:
        b = a
    else:
        _require_words(b, "b", "hamming")
        _require_same_words(a, b, "a", "b", "hamming")

    def add_word(total: jax.Array, word: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
        word_a, word_b = word
        differing = lax.population_count(word_a[:, None] ^ word_b[None, :])
        return total + differing.astype(jnp.int32), None

    total = jnp.zeros((a.shape[0], b.shape[0]), dtype=jnp.int32)
    total, _ = lax.scan(add_word, total, (a.T, b.T))
    return total


@functools.partial(checked_jit, static_argnames=("k",))
def hamming_topk(queries: jax.Array, codes: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """The ``k`` codes nearest to each query in Hamming distance.

    Ties are broken by the lower index, so the result equals a stable sort of each row of
    :func:`hamming`.

    Args:
        queries: ``[n, n_words]`` ``uint32`` codes.
        codes: ``[m, n_words]`` ``uint32`` codes to search.
        k: number of neighbours, ``1 <= k <= m``.

    Returns:
        ``(distances, indices)``, both ``[n, k]`` ``int32``, nearest first.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import hamming_topk
        >>> codes = np.array([[0b111], [0b001], [0b011], [0b001]], dtype=np.uint32)
        >>> distances, indices = hamming_topk(np.array([[0b000]], dtype=np.uint32), codes, k=3)
        >>> distances.tolist(), indices.tolist()
        ([[1, 1, 2]], [[1, 3, 2]])

    Reference:
        ``np.argsort(d, axis=1, kind="stable")[:, :k]`` with ``d = hamming(queries, codes)``.
    """
    owner = "hamming_topk"
    _require_words(queries, "queries", owner)
    _require_words(codes, "codes", owner)
    _require_same_words(queries, codes, "queries", "codes", owner)
    k = check_int(
        k, "k", maximum=codes.shape[0], owner=owner, why=" (the number of codes to search)"
    )
    negative, indices = lax.top_k(-hamming(queries, codes), k)  # top_k keeps lower index first
    return -negative, indices.astype(jnp.int32)


# --- rank over GF(2) -----------------------------------------------------------------------


def _gf2_rank_packed(words: jax.Array, n_cols: int) -> jax.Array:
    """Rank over GF(2) of rows packed into words, by elimination over the ``n_cols`` columns."""
    n_rows = words.shape[0]
    if n_rows == 0:
        return jnp.int32(0)
    rows = jnp.arange(n_rows)

    def eliminate_column(column, state):
        matrix, used, rank = state
        word = lax.dynamic_index_in_dim(matrix, column // BITS_PER_WORD, axis=1, keepdims=False)
        shift = (column % BITS_PER_WORD).astype(jnp.uint32)
        candidates = (((word >> shift) & jnp.uint32(1)) == 1) & ~used
        found = jnp.any(candidates)
        pivot = jnp.argmax(candidates)  # first unused row with this bit; row 0 if none
        # Rows already used as pivots are left alone: the rank counts pivots only.
        clear = candidates & (rows != pivot)
        matrix = jnp.where(clear[:, None], matrix ^ matrix[pivot][None, :], matrix)
        used = used | (found & (rows == pivot))
        return matrix, used, rank + found.astype(jnp.int32)

    state = (words, jnp.zeros(n_rows, dtype=jnp.bool_), jnp.int32(0))
    _, _, rank = lax.fori_loop(0, n_cols, eliminate_column, state)
    return rank


@functools.partial(checked_jit, static_argnames=("n_bits",))
def _binary_rank(bits: jax.Array, n_bits: int | None) -> jax.Array:
    owner = "binary_rank"
    if n_bits is None:
        _require_bits(bits, "bits", owner)
        matrix = _as_bool(bits)
    else:
        n_bits = check_int(n_bits, "n_bits", owner=owner)
        _require_words(bits, "bits", owner)
        _require_word_count(bits, n_bits, "bits", owner)
        if n_bits <= bits.shape[0]:
            return _gf2_rank_packed(bits, n_bits)  # high bits past n_bits are never pivots
        matrix = _unpack(bits, n_bits)
    if min(matrix.shape) == 0:
        return jnp.int32(0)
    # rank(A) == rank(A.T): loop over the shorter side, XOR along the longer one.
    if matrix.shape[1] > matrix.shape[0]:
        matrix = matrix.T
    return _gf2_rank_packed(_pack(matrix), matrix.shape[1])


def binary_rank(bits: jax.Array, *, n_bits: int | None = None) -> jax.Array:
    """Rank over GF(2) of a 0/1 matrix, by Gaussian elimination with XOR.

    Arithmetic is modulo 2, so the rank can be lower than the real rank:
    ``[[1, 1, 0], [0, 1, 1], [1, 0, 1]]`` has real rank 3 but GF(2) rank 2 (the rows sum
    to zero mod 2). The elimination runs in one ``lax.fori_loop`` over the shorter side of
    the matrix, XOR-ing whole packed rows.

    Args:
        bits: ``[n, m]`` bool or integer 0/1 matrix, or, with ``n_bits``, ``[n, n_words]``
            ``uint32`` rows packed as by :func:`pack_bits`.
        n_bits: only for packed input: the number of columns ``m``; bits past it are ignored.

    Returns:
        ``int32`` scalar, ``0 <= rank <= min(n, m)``.

    Example:
        >>> import numpy as np
        >>> from liam_core.algebra import binary_rank
        >>> binary_rank(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]]))
        Array(2, dtype=int32)

    Reference:
        Gaussian elimination over GF(2); the tests compare with a plain numpy elimination.
    """
    if n_bits is None:
        hint = ""
        if isinstance(bits, jax.Array | np.ndarray) and bits.dtype == _WORD_DTYPE:
            hint = " (for packed uint32 words pass n_bits=)"
        _check_bit_values(bits, "bits", "binary_rank", hint)
    return _binary_rank(bits, n_bits)
