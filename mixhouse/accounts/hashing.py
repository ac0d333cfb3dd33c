"""Service-account secrets at rest, and the per-process cache that keeps authentication fast.

A secret is stored only as an argon2id PHC string, compared in constant time by argon2 itself. Parameters:
OWASP's first recommended argon2id setting (19 MiB, 2 passes, 1 lane:
https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html), ~30-60 ms of one core;
argon2-cffi's defaults (64 MiB, 3 passes, 4 lanes) measured ~430 ms per verification on the 2-core
machine, which every refused login and every first request of a process would pay. Hashes made with other
parameters still verify, and are rehashed with these on their next successful login. Data folders from before
hold a salted PBKDF2-SHA256 digest: it is checked (constant time) and, on the first success, replaced by
an argon2id hash (`Verdict.rehash`); the catalog then blanks the PBKDF2 columns.

One argon2 verification costs tens of milliseconds of CPU and 64 MiB, too much for every request of a
client that sends the same credentials thousands of times. `VerifiedCache` remembers, per process, the
pairs verified so far: its key is HMAC-SHA256 of the username and secret under a random key drawn when the
process starts (never written anywhere), so the cache holds neither the secret nor an offline-testable
hash of it; its value is the stored hash the pair was verified against, so a rotated or deleted secret
misses at once (the caller compares it with the row it reads on every request). It is a bounded LRU
(the `auth_cache_entries` setting, MIXHOUSE_AUTH_CACHE_ENTRIES: default 10,000 pairs; 0 turns it off): a flood of distinct secrets evicts
old entries and costs only their next argon2 verification.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DEFAULT_CACHE_ENTRIES = 10_000
# argon2 hashes any length; this bounds the work one request can ask for (a longer secret never matches).
MAX_SECRET_LENGTH = 1024
PBKDF2_ROUNDS = 10_000  # what older data folders used

_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)


def hash_secret(secret: str) -> str:
    """The argon2id PHC string to store for a new secret."""
    return _hasher.hash(secret)


def new_secret() -> str:
    """A generated service-account secret: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def pbkdf2(secret: str, salt: bytes) -> bytes:
    """The digest older catalogs stored (kept only to verify and upgrade them)."""
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, PBKDF2_ROUNDS)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def burn_one_verification(secret: str) -> None:
    """The work of a verification that cannot succeed: an unknown username costs what a wrong secret
    costs, so the time of a refusal does not tell which names exist."""
    with suppress(VerificationError, InvalidHashError):
        _hasher.verify(_dummy_hash(), secret[:MAX_SECRET_LENGTH])


@dataclass(frozen=True)
class StoredSecret:
    """A row's secret columns: `phc` (argon2id) or, in a catalog not yet upgraded, PBKDF2 salt + digest."""

    phc: str | None
    legacy_salt: bytes = b""
    legacy_hash: bytes = b""

    @property
    def fingerprint(self) -> str:
        """What a cache entry is checked against: changes whenever the stored secret changes."""
        return self.phc if self.phc else self.legacy_hash.hex()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rehash: str | None = None  # a new argon2id PHC string to store (PBKDF2 upgraded, or outdated parameters)


def verify(stored: StoredSecret, secret: str) -> Verdict:
    if len(secret) > MAX_SECRET_LENGTH:
        burn_one_verification(secret)
        return Verdict(False)
    if stored.phc:
        try:
            _hasher.verify(stored.phc, secret)
        except (VerificationError, InvalidHashError):
            return Verdict(False)
        return Verdict(True, hash_secret(secret) if _hasher.check_needs_rehash(stored.phc) else None)
    if stored.legacy_salt and stored.legacy_hash:
        if hmac.compare_digest(pbkdf2(secret, stored.legacy_salt), stored.legacy_hash):
            return Verdict(True, hash_secret(secret))
        return Verdict(False)
    burn_one_verification(secret)
    return Verdict(False)


class VerifiedCache:
    """Pairs verified in this process (see the module docstring): keyed HMAC -> stored-hash fingerprint."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, username: str, secret: str) -> bytes:
        user = username.encode()
        message = len(user).to_bytes(4, "big") + user + secret.encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def get(self, key: bytes) -> str | None:
        with self._lock:
            fingerprint = self._entries.get(key)
            if fingerprint is not None:
                self._entries.move_to_end(key)
            return fingerprint

    def put(self, key: bytes, fingerprint: str) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            self._entries[key] = fingerprint
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
