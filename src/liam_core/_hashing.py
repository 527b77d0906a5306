"""Stable signed feature hashing of metric names (MurmurHash3, as scikit-learn's FeatureHasher).

Python's ``hash`` of a string changes with every process (PYTHONHASHSEED); this does not:
the same name lands in the same slot with the same sign in every process, run and machine.
"""

from __future__ import annotations

import functools

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_MASK = 0xFFFFFFFF


def _rotl32(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def murmurhash3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit of ``data``, as a signed int32 (``sklearn.utils.murmurhash3_32``)."""
    length = len(data)
    h = seed & _MASK
    n_blocks = length // 4
    for block in range(n_blocks):
        k = int.from_bytes(data[4 * block : 4 * block + 4], "little")
        k = (k * _C1) & _MASK
        k = _rotl32(k, 15)
        k = (k * _C2) & _MASK
        h ^= k
        h = _rotl32(h, 13)
        h = (h * 5 + 0xE6546B64) & _MASK
    tail = data[4 * n_blocks :]
    k = 0
    for position in reversed(range(len(tail))):
        k = (k << 8) | tail[position]
    if tail:
        k = (k * _C1) & _MASK
        k = _rotl32(k, 15)
        k = (k * _C2) & _MASK
        h ^= k
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h - (1 << 32) if h >= (1 << 31) else h


@functools.lru_cache(maxsize=65536)
def hashed_slot(name: str, dimensions: int) -> tuple[int, int]:
    """Return ``(slot, sign)`` of ``name`` in a vector of ``dimensions`` slots.

    Matches ``sklearn.feature_extraction.FeatureHasher(n_features=dimensions,
    input_type="dict", alternate_sign=True)``: ``slot = |h| mod dimensions`` and the sign of
    ``h`` multiplies the value, so collisions cancel in expectation.
    """
    h = murmurhash3_32(name.encode("utf-8"))
    return abs(h) % dimensions, (1 if h >= 0 else -1)
