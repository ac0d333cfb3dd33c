"""The bucketing hash every Mixpanel SDK uses: FNV-1a 64 over `key + salt` (UTF-8), mod 100, / 100.

Offset basis 0xCBF29CE484222325, prime 0x100000001B3, 64-bit wrap; the result is one of 0.00 .. 0.99.
Test vectors (mixpanel-python's `flags/test_utils.py`): ("abc", "variant") -> 0.72, ("def", "variant")
-> 0.21; tests/test_flags_eval.py checks them."""

from __future__ import annotations

_OFFSET = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data: bytes, h: int = _OFFSET) -> int:
    """The hash of `data`, or, given the state `h` after some bytes, of those bytes followed by `data`."""
    for byte in data:
        h = ((h ^ byte) * _PRIME) & _MASK
    return h


def normalized_hash(key: str, salt: str) -> float:
    return (fnv1a64(key.encode("utf-8") + salt.encode("utf-8")) % 100) / 100.0


class KeyHasher:
    """normalized_hash(key, salt) for one key and many salts: the key's bytes come first, so the state
    after them is computed once (a context value is hashed with 2+ salts per flag)."""

    def __init__(self, key: str) -> None:
        self._state = fnv1a64(key.encode("utf-8"))

    def __call__(self, salt: bytes) -> float:
        """`salt` in UTF-8 (flags keep theirs encoded)."""
        return (fnv1a64(salt, self._state) % 100) / 100.0
