"""Specification of binary codes: bit packing, popcount, Hamming search, SimHash, GF(2) rank.

Oracles: numpy (``packbits``, ``bitwise_count``, stable ``argsort``), scipy ``cdist``, a plain
numpy elimination over GF(2), and Charikar's angle estimate on scikit-learn's digits data.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from liam_core import ConfigError, InvalidTypeError, InvalidValueError, LiamError, ShapeError
from liam_core.algebra import (
    binary_rank,
    hamming,
    hamming_topk,
    pack_bits,
    popcount,
    random_hyperplanes,
    sign_hash,
    unpack_bits,
    xor,
)

N_BITS = [1, 31, 32, 33, 100]


# --- oracles -------------------------------------------------------------------------------


def numpy_pack(bits: np.ndarray) -> np.ndarray:
    """``np.packbits(bitorder="little")`` padded to whole 32-bit words, viewed as ``<u4``."""
    n, n_bits = bits.shape
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    padded = np.zeros((n, 4 * -(-n_bits // 32)), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    return padded.view("<u4").astype(np.uint32)


def numpy_gf2_rank(bits: np.ndarray) -> int:
    """Row echelon form over GF(2) with row swaps, one column at a time."""
    matrix = np.asarray(bits) != 0
    rank = 0
    for column in range(matrix.shape[1]):
        if rank == matrix.shape[0]:
            break
        below = np.flatnonzero(matrix[rank:, column])
        if below.size == 0:
            continue
        pivot = rank + below[0]
        matrix[[rank, pivot]] = matrix[[pivot, rank]]
        others = np.flatnonzero(matrix[:, column])
        matrix[others[others != rank]] ^= matrix[rank]
        rank += 1
    return rank


def random_bits(rng: np.random.Generator, n: int, n_bits: int, p: float = 0.5) -> np.ndarray:
    return rng.random((n, n_bits)) < p


def random_words(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 2**32, size=shape, dtype=np.uint32)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """The first 400 scikit-learn digits, standardized, float32."""
    x = StandardScaler().fit_transform(load_digits().data[:400])
    return x.astype(np.float32)


# --- packing -------------------------------------------------------------------------------


@pytest.mark.parametrize("n_bits", N_BITS)
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32])
def test_pack_bits_matches_numpy_packbits_little_endian(rng, n_bits, dtype):
    bits = random_bits(rng, 7, n_bits).astype(dtype)
    words = pack_bits(bits)
    assert words.dtype == jnp.uint32
    assert words.shape == (7, -(-n_bits // 32))
    np.testing.assert_array_equal(np.asarray(words), numpy_pack(bits))


@pytest.mark.parametrize("n_bits", N_BITS)
def test_pack_bits_leaves_unused_high_bits_zero(n_bits):
    words = np.asarray(pack_bits(np.ones((2, n_bits), dtype=bool)))
    used_in_last_word = n_bits - 32 * (words.shape[1] - 1)
    assert (words[:, :-1] == np.uint32(0xFFFFFFFF)).all()
    assert (words[:, -1] == np.uint32((1 << used_in_last_word) - 1)).all()


def test_pack_bits_puts_bit_j_in_word_j_div_32_at_position_j_mod_32():
    bits = np.zeros((1, 70), dtype=bool)
    bits[0, [0, 33, 69]] = True
    np.testing.assert_array_equal(np.asarray(pack_bits(bits)), [[1, 2, 1 << 5]])


@pytest.mark.parametrize("n_bits", N_BITS)
def test_unpack_bits_inverts_pack_bits(rng, n_bits):
    bits = random_bits(rng, 6, n_bits)
    unpacked = unpack_bits(pack_bits(bits), n_bits)
    assert unpacked.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(unpacked), bits)


@pytest.mark.parametrize("n_bits", N_BITS)
def test_unpack_bits_matches_numpy_unpackbits(rng, n_bits):
    words = numpy_pack(random_bits(rng, 4, n_bits))
    expected = np.unpackbits(words.view(np.uint8), axis=1, count=n_bits, bitorder="little")
    np.testing.assert_array_equal(np.asarray(unpack_bits(words, n_bits=n_bits)), expected)


def test_pack_bits_runs_under_an_outer_jit(rng):
    bits = random_bits(rng, 5, 45).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(jax.jit(pack_bits)(bits)), numpy_pack(bits))


# --- popcount and xor ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (3, 4), (2, 3, 2), (0, 3)])
def test_popcount_matches_numpy_bitwise_count_summed_over_words(rng, shape):
    words = random_words(rng, shape)
    counts = popcount(words)
    assert counts.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(counts), np.bitwise_count(words).sum(axis=-1))


def test_popcount_of_all_ones_word_is_32():
    np.testing.assert_array_equal(popcount(np.full((2, 3), 0xFFFFFFFF, np.uint32)), [96, 96])


@pytest.mark.parametrize(("shape_a", "shape_b"), [((4, 3), (4, 3)), ((4, 3), (1, 3))])
def test_xor_matches_numpy_and_broadcasts_leading_axes(rng, shape_a, shape_b):
    a, b = random_words(rng, shape_a), random_words(rng, shape_b)
    result = xor(a, b)
    assert result.dtype == jnp.uint32
    np.testing.assert_array_equal(np.asarray(result), np.bitwise_xor(a, b))


# --- Hamming distances ---------------------------------------------------------------------

HAMMING_CASES = [  # (n, m, n_bits)
    (1, 1, 1),
    (5, 7, 31),
    (6, 4, 32),
    (3, 9, 33),
    (8, 8, 100),
    (20, 30, 300),
    (0, 4, 40),
]


@pytest.mark.parametrize(("n", "m", "n_bits"), HAMMING_CASES)
def test_hamming_matches_scipy_cdist_times_n_bits(rng, n, m, n_bits):
    bits_a, bits_b = random_bits(rng, n, n_bits), random_bits(rng, m, n_bits)
    distances = hamming(pack_bits(bits_a), pack_bits(bits_b))
    assert distances.dtype == jnp.int32
    assert distances.shape == (n, m)
    if n:
        expected = np.rint(cdist(bits_a, bits_b, "hamming") * n_bits).astype(np.int32)
        np.testing.assert_array_equal(np.asarray(distances), expected)


@pytest.mark.parametrize("n_bits", N_BITS)
def test_hamming_without_b_compares_codes_with_themselves(rng, n_bits):
    codes = pack_bits(random_bits(rng, 9, n_bits))
    distances = np.asarray(hamming(codes))
    np.testing.assert_array_equal(distances, np.asarray(hamming(codes, codes)))
    np.testing.assert_array_equal(distances, distances.T)
    assert (np.diag(distances) == 0).all()


def test_hamming_is_popcount_of_xor(rng):
    a, b = pack_bits(random_bits(rng, 5, 77)), pack_bits(random_bits(rng, 6, 77))
    expected = popcount(xor(a[:, None, :], b[None, :, :]))
    np.testing.assert_array_equal(np.asarray(hamming(a, b)), np.asarray(expected))


def test_hamming_keeps_memory_to_the_distance_matrix():
    """No [n, m, n_words] intermediate: temporaries stay far below it."""
    n, n_words = 512, 64
    codes = jax.ShapeDtypeStruct((n, n_words), jnp.uint32)
    compiled = hamming.lower(codes, codes).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    assert analysis.temp_size_in_bytes < n * n * n_words * 4 // 8


TOPK_CASES = [  # (n_bits, m, k): few bits make many ties, so the tie rule is exercised
    (1, 10, 10),
    (3, 12, 5),
    (31, 20, 1),
    (33, 25, 7),
    (100, 40, 40),
]


@pytest.mark.parametrize(("n_bits", "m", "k"), TOPK_CASES)
def test_hamming_topk_matches_numpy_stable_argsort(rng, n_bits, m, k):
    queries, codes = pack_bits(random_bits(rng, 6, n_bits)), pack_bits(random_bits(rng, m, n_bits))
    distances, indices = hamming_topk(queries, codes, k)
    full = np.asarray(hamming(queries, codes))
    expected_indices = np.argsort(full, axis=1, kind="stable")[:, :k]
    assert distances.dtype == jnp.int32 and indices.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(indices), expected_indices)
    np.testing.assert_array_equal(
        np.asarray(distances), np.take_along_axis(full, expected_indices, 1)
    )


def test_hamming_topk_breaks_ties_by_the_lower_index():
    codes = np.zeros((8, 1), dtype=np.uint32)
    distances, indices = hamming_topk(codes[:1], codes, k=5)
    assert indices.tolist() == [[0, 1, 2, 3, 4]]
    assert distances.tolist() == [[0, 0, 0, 0, 0]]


# --- random-hyperplane hashing (Charikar) --------------------------------------------------


def test_random_hyperplanes_are_standard_normal_of_the_requested_shape_and_dtype(getkey):
    planes = random_hyperplanes(16, 1000, key=getkey())
    assert planes.shape == (16, 1000) and planes.dtype == jnp.float32
    assert abs(float(planes.mean())) < 0.03  # 16000 draws: std of the mean is 0.008
    assert abs(float(planes.std()) - 1.0) < 0.03


def test_random_hyperplanes_accept_a_legacy_uint32_key():
    planes = random_hyperplanes(3, 5, key=jax.random.PRNGKey(0))
    assert planes.shape == (3, 5)


@pytest.mark.parametrize("n_bits", N_BITS)
def test_sign_hash_packs_the_sign_of_each_projection(rng, getkey, n_bits):
    x = rng.standard_normal((30, 8)).astype(np.float32)
    planes = random_hyperplanes(8, n_bits, key=getkey())
    codes = sign_hash(x, planes)
    assert codes.dtype == jnp.uint32 and codes.shape == (30, -(-n_bits // 32))
    projections = x.astype(np.float64) @ np.asarray(planes, dtype=np.float64)
    clear = np.abs(projections) > 1e-4  # away from a tie, float32 and float64 agree
    bits = np.asarray(unpack_bits(codes, n_bits))
    np.testing.assert_array_equal(bits[clear], (projections >= 0)[clear])
    np.testing.assert_array_equal(np.asarray(codes), numpy_pack(bits))


def test_sign_hash_with_the_same_key_gives_the_same_codes(digits):
    planes_1 = random_hyperplanes(64, 256, key=jax.random.key(7))
    planes_2 = random_hyperplanes(64, 256, key=jax.random.key(7))
    other = random_hyperplanes(64, 256, key=jax.random.key(8))
    codes = np.asarray(sign_hash(digits, planes_1))
    np.testing.assert_array_equal(codes, np.asarray(sign_hash(digits, planes_2)))
    assert not np.array_equal(codes, np.asarray(sign_hash(digits, other)))


@pytest.mark.parametrize("scale", [2.0, 0.5, 1024.0])
def test_sign_hash_is_unchanged_by_scaling_a_row_by_a_power_of_two(digits, getkey, scale):
    planes = random_hyperplanes(64, 512, key=getkey())
    np.testing.assert_array_equal(
        np.asarray(sign_hash(digits * np.float32(scale), planes)),
        np.asarray(sign_hash(digits, planes)),
    )


def test_sign_hash_is_unchanged_by_any_positive_scale_up_to_rounding_at_ties(digits, getkey):
    """Other scales change rounding, so a projection within rounding of 0 may flip."""
    planes = random_hyperplanes(64, 512, key=getkey())
    distances = np.asarray(hamming(sign_hash(digits, planes), sign_hash(digits * 3.7, planes)))
    assert np.diag(distances).mean() / 512 < 1e-3


def test_sign_hash_maps_a_zero_projection_to_bit_one(getkey):
    planes = random_hyperplanes(5, 40, key=getkey())
    codes = sign_hash(np.zeros((2, 5), dtype=np.float32), planes)
    np.testing.assert_array_equal(np.asarray(codes), numpy_pack(np.ones((2, 40), dtype=bool)))


def test_sign_hash_hamming_fraction_estimates_angle_over_pi_on_digits(digits):
    """Charikar: P(bit differs) = angle / pi; with 2048 bits each estimate has std <= 0.011.

    Tolerances: mean absolute error < 0.015 (expected ~0.009) and max over 79,800 pairs
    < 0.07 (about 6 standard deviations).
    """
    n_bits = 2048
    planes = random_hyperplanes(64, n_bits, key=jax.random.key(0))
    estimate = np.asarray(hamming(sign_hash(digits, planes))) / n_bits
    unit = digits / np.linalg.norm(digits, axis=1, keepdims=True)
    angle_over_pi = np.arccos(np.clip(unit @ unit.T, -1.0, 1.0)) / np.pi
    error = np.abs(estimate - angle_over_pi)[np.triu_indices(len(digits), 1)]
    assert error.mean() < 0.015
    assert error.max() < 0.07


def test_sign_hash_nearest_neighbours_mostly_agree_with_cosine_on_digits(digits):
    """Measured with key 0: top-1 agreement 0.84, cosine NN in Hamming top 5 for 99.75%."""
    n = len(digits)
    planes = random_hyperplanes(64, 2048, key=jax.random.key(0))
    codes = sign_hash(digits, planes)
    _, indices = hamming_topk(codes, codes, k=6)
    indices = np.asarray(indices)
    # Drop each row itself (distance 0); a duplicate row may take its place, which is fine.
    hamming_nn = np.array([[j for j in row if j != i][:5] for i, row in enumerate(indices)])
    unit = digits / np.linalg.norm(digits, axis=1, keepdims=True)
    cosine = unit @ unit.T
    np.fill_diagonal(cosine, -np.inf)
    cosine_nn = np.argmax(cosine, axis=1)
    assert np.mean(hamming_nn[:, 0] == cosine_nn) > 0.75
    assert np.mean([cosine_nn[i] in hamming_nn[i] for i in range(n)]) > 0.95


def test_sign_hash_works_in_float64_with_x64_enabled(rng):
    x = rng.standard_normal((20, 6))
    with jax.enable_x64(True):
        planes = random_hyperplanes(6, 70, key=jax.random.key(3), dtype=jnp.float64)
        assert planes.dtype == jnp.float64
        codes = sign_hash(x, planes)
        mixed = sign_hash(x.astype(np.float32), planes)  # computed in the wider float64
        distances = hamming(codes)
        assert codes.dtype == jnp.uint32 and distances.dtype == jnp.int32
        expected = numpy_pack(x @ np.asarray(planes) >= 0)
        np.testing.assert_array_equal(np.asarray(codes), expected)
        assert mixed.shape == codes.shape
        assert binary_rank(np.eye(5, dtype=np.int64)).dtype == jnp.int32


# --- rank over GF(2) -----------------------------------------------------------------------

KNOWN_RANKS = [  # (name, matrix, rank over GF(2))
    ("identity 1", np.eye(1), 1),
    ("identity 5", np.eye(5), 5),
    ("identity 40", np.eye(40), 40),
    ("all ones 4x6", np.ones((4, 6)), 1),
    ("all ones 2x2", [[1, 1], [1, 1]], 1),
    ("zero 3x5", np.zeros((3, 5)), 0),
    ("rows sum to zero mod 2", [[1, 1, 0], [0, 1, 1], [1, 0, 1]], 2),
    ("duplicated rows", [[1, 0, 1, 1], [1, 0, 1, 1], [0, 1, 1, 0], [0, 1, 1, 0]], 2),
    ("one row", [[0, 1, 1]], 1),
    ("one column", [[0], [1], [1]], 1),
]


@pytest.mark.parametrize(
    ("name", "matrix", "expected"), KNOWN_RANKS, ids=[c[0] for c in KNOWN_RANKS]
)
@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32])
def test_binary_rank_of_known_matrices(name, matrix, expected, dtype):
    rank = binary_rank(np.asarray(matrix).astype(dtype))
    assert rank.dtype == jnp.int32 and rank.shape == ()
    assert int(rank) == expected


def test_binary_rank_can_be_below_the_real_rank():
    matrix = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]])
    assert np.linalg.matrix_rank(matrix) == 3
    assert int(binary_rank(matrix)) == 2


RANDOM_RANK_SHAPES = [(1, 1), (5, 3), (3, 5), (40, 40), (70, 33), (33, 70), (10, 100), (64, 65)]


@pytest.mark.parametrize(("n", "m"), RANDOM_RANK_SHAPES)
@pytest.mark.parametrize("density", [0.5, 0.1])
def test_binary_rank_matches_numpy_gf2_elimination(rng, n, m, density):
    bits = random_bits(rng, n, m, density).astype(np.uint8)
    assert int(binary_rank(bits)) == numpy_gf2_rank(bits)


def test_binary_rank_matches_the_oracle_where_it_differs_from_the_real_rank(rng):
    """Square 0/1 matrices of full real rank are often singular over GF(2)."""
    differing = 0
    for _ in range(20):
        bits = random_bits(rng, 8, 8).astype(np.uint8)
        expected = numpy_gf2_rank(bits)
        differing += expected != np.linalg.matrix_rank(bits)
        assert int(binary_rank(bits)) == expected
    assert differing > 0


def test_binary_rank_of_a_matrix_with_low_gf2_rank_built_by_xor(rng):
    basis = random_bits(rng, 4, 50)
    mix = random_bits(rng, 30, 4).astype(np.uint8)
    matrix = (mix @ basis.astype(np.uint8)) % 2  # every row a GF(2) combination of 4 rows
    assert int(binary_rank(matrix)) == numpy_gf2_rank(matrix) <= 4


@pytest.mark.parametrize(("n", "n_bits"), [(5, 3), (3, 40), (40, 33), (10, 100), (33, 32)])
def test_binary_rank_of_packed_words_equals_rank_of_bits_and_ignores_high_bits(rng, n, n_bits):
    bits = random_bits(rng, n, n_bits, 0.3)
    words = np.array(pack_bits(bits))  # a writable copy
    rank = int(binary_rank(words, n_bits=n_bits))
    assert rank == numpy_gf2_rank(bits)
    if n_bits % 32:
        high = np.uint32(0xFFFFFFFF) << np.uint32(n_bits % 32)
        words[:, -1] |= high
        assert int(binary_rank(words, n_bits=n_bits)) == rank


def test_binary_rank_runs_under_an_outer_jit(rng):
    bits = random_bits(rng, 12, 20).astype(np.int32)
    assert int(jax.jit(binary_rank)(bits)) == numpy_gf2_rank(bits)


def test_binary_rank_of_an_empty_matrix_is_zero():
    assert int(binary_rank(np.zeros((0, 4), dtype=bool))) == 0
    assert int(binary_rank(np.zeros((3, 0), dtype=bool))) == 0


# --- bad input -----------------------------------------------------------------------------

WORDS = np.zeros((3, 2), dtype=np.uint32)
PLANES = np.ones((4, 10), dtype=np.float32)

BAD_INPUT = [  # (id, call, error, fragment of the message)
    ("bits 1-D", lambda: pack_bits(np.zeros(3, bool)), ShapeError, "`bits`"),
    ("bits float", lambda: pack_bits(np.zeros((2, 3), np.float32)), InvalidTypeError, "`bits`"),
    ("bits 2", lambda: pack_bits(np.array([[0, 2]])), InvalidValueError, "pack_bits: `bits` must hold only 0 and 1, got 2 at index (0, 1)"),
    ("bits -1", lambda: binary_rank(np.array([[1, -1]])), InvalidValueError, "`bits`"),
    ("bits no columns", lambda: pack_bits(np.zeros((2, 0), bool)), ShapeError, "`bits`"),
    ("bits list", lambda: pack_bits([[0, 1]]), InvalidTypeError, "pack_bits: `bits` must be a numpy or JAX array, got list"),
    ("unpack n_bits 0", lambda: unpack_bits(WORDS, 0), ConfigError, "unpack_bits: `n_bits` must be an int >= 1, got 0"),
    ("unpack n_bits -3", lambda: unpack_bits(WORDS, -3), ConfigError, "`n_bits`"),
    ("unpack n_bits float", lambda: unpack_bits(WORDS, 2.0), InvalidTypeError, "unpack_bits: `n_bits` must be an int >= 1, got float: 2.0"),
    ("unpack word count", lambda: unpack_bits(WORDS, 100), ShapeError, "unpack_bits: `words` must have ceil(n_bits / 32) = 4 words per code for n_bits=100, got 2"),
    ("unpack float", lambda: unpack_bits(WORDS.astype(np.float32), 64), InvalidTypeError, "uint32"),
    ("popcount float", lambda: popcount(np.ones((2, 2))), InvalidTypeError, "`words`"),
    ("popcount int32", lambda: popcount(WORDS.astype(np.int32)), InvalidTypeError, "popcount: `words` must be packed uint32 words"),
    ("popcount scalar", lambda: popcount(np.uint32(3)), ShapeError, "`words`"),
    ("xor word count", lambda: xor(WORDS, WORDS[:, :1]), ShapeError, "xor: `b` must have as many words per code as `a` (2: codes packed from the same n_bits), got 1"),
    ("xor broadcast", lambda: xor(WORDS, WORDS[:2]), ShapeError, "must broadcast"),
    ("hamming 1-D", lambda: hamming(WORDS[0]), ShapeError, "hamming: `a` must be 2-D [n_codes, n_words], got shape (2,)"),
    ("hamming 3-D b", lambda: hamming(WORDS, WORDS[None]), ShapeError, "hamming: `b` must be 2-D [n_codes, n_words], got shape (1, 3, 2)"),
    ("hamming word count", lambda: hamming(WORDS, WORDS[:, :1]), ShapeError, "hamming: `b` must have as many words per code as `a` (2"),
    ("hamming float", lambda: hamming(WORDS.astype(np.float64)), InvalidTypeError, "`a`"),
    ("hamming bool", lambda: hamming(WORDS, WORDS != 0), InvalidTypeError, "`b`"),
    ("hamming no words", lambda: hamming(WORDS[:, :0]), ShapeError, "hamming: `a` must have at least one word per code, got shape (3, 0)"),
    ("topk k > m", lambda: hamming_topk(WORDS, WORDS, 4), ConfigError, "hamming_topk: `k` must be an int in [1, 3] (the number of codes to search), got 4"),
    ("topk k 0", lambda: hamming_topk(WORDS, WORDS, 0), ConfigError, "`k`"),
    ("topk k float", lambda: hamming_topk(WORDS, WORDS, 1.5), InvalidTypeError, "`k`"),
    ("topk words", lambda: hamming_topk(WORDS[:, :1], WORDS, 1), ShapeError, "`queries`"),
    ("planes n_bits 0", lambda: random_hyperplanes(4, 0, key=jax.random.key(0)), ConfigError, "`n_bits`"),
    ("planes n_features", lambda: random_hyperplanes(-1, 8, key=jax.random.key(0)), ConfigError, "`n_features`"),
    ("planes bool", lambda: random_hyperplanes(True, 8, key=jax.random.key(0)), InvalidTypeError, "`n_features`"),
    ("planes dtype", lambda: random_hyperplanes(4, 8, key=jax.random.key(0), dtype=jnp.int32), InvalidTypeError, "random_hyperplanes: `dtype` must be a floating dtype"),
    ("planes key int", lambda: random_hyperplanes(4, 8, key=0), InvalidTypeError, "`key`"),
    ("planes key batch", lambda: random_hyperplanes(4, 8, key=jax.random.split(jax.random.key(0))), InvalidTypeError, "`key`"),
    ("hash x 1-D", lambda: sign_hash(np.ones(4, np.float32), PLANES), ShapeError, "sign_hash: `x` must be 2-D [n, n_features]"),
    ("hash features", lambda: sign_hash(np.ones((2, 5), np.float32), PLANES), ShapeError, "sign_hash: `hyperplanes` must have one row per feature of `x` (5), got 4 rows"),
    ("hash planes int", lambda: sign_hash(np.ones((2, 4), np.float32), PLANES.astype(np.int32)), InvalidTypeError, "`hyperplanes`"),
    ("hash x bool", lambda: sign_hash(np.ones((2, 4), bool), PLANES), InvalidTypeError, "sign_hash: `x` must be an array of real numbers (float or int), got dtype bool"),
    ("hash planes 1-D", lambda: sign_hash(np.ones((2, 4), np.float32), PLANES[:, 0]), ShapeError, "`hyperplanes`"),
    ("rank float", lambda: binary_rank(np.eye(3, dtype=np.float32)), InvalidTypeError, "`bits`"),
    ("rank 3-D", lambda: binary_rank(np.ones((2, 2, 2), np.uint8)), ShapeError, "`bits`"),
    ("rank words without n_bits", lambda: binary_rank(np.full((2, 1), 7, np.uint32)), InvalidValueError, "pass n_bits="),
    ("rank word count", lambda: binary_rank(WORDS, n_bits=100), ShapeError, "n_bits=100"),
    ("rank words float", lambda: binary_rank(WORDS.astype(np.float32), n_bits=64), InvalidTypeError, "uint32"),
    ("rank n_bits 0", lambda: binary_rank(WORDS, n_bits=0), ConfigError, "`n_bits`"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "fragment"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_bad_input_raises_a_typed_error_naming_the_argument(call, error, fragment):
    with pytest.raises(error, match=re.escape(fragment)) as caught:
        call()
    assert isinstance(caught.value, LiamError)
