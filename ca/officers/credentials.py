"""Operator passwords: only a salted scrypt hash is stored (seed 004 5.2.3)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable

from ca.errors import InvalidInput

_N, _R, _P = 2**14, 8, 1
MIN_LENGTH = 10


def hash_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"password too short: use at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def _decoy_hash() -> str:
    return hash_password("no operator has this password")


def verify_for_unknown_name(password: str) -> bool:
    """Spend on an unknown name what a known one costs (one scrypt), so that the time a login
    takes does not tell which operator names exist; always False."""
    verify_password(password, _decoy_hash())
    return False


class RememberedPasswords:
    """Passwords that matched a stored hash in the last `ttl` seconds (per process).

    A clerk sends name and password with every RA request; one scrypt each (about 50 ms of CPU)
    was most of a request's cost.  A password that matched is remembered against the very
    hash it matched, under a keyed hash that lives only in this process: a changed password
    (a new stored hash) no longer matches, and whether the operator is disabled or holds the
    role is still read from the database at every request.
    """

    MAX = 1024

    def __init__(self, ttl: float = 30.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._until: dict[bytes, float] = {}

    def _entry(self, name: str, password: str, stored: str) -> bytes:
        return hmac.new(self._key, b"\0".join((name.encode(), password.encode(), stored.encode())),
                        hashlib.sha256).digest()

    def verify(self, name: str, password: str, stored: str) -> bool:
        """verify_password, skipped when the same name, password and stored hash matched lately."""
        entry = self._entry(name, password, stored)
        now = self._clock()
        with self._lock:
            until = self._until.get(entry)
        if until is not None and until > now:
            return True
        if not verify_password(password, stored):
            return False
        with self._lock:
            if len(self._until) >= self.MAX:
                self._until = {k: v for k, v in self._until.items() if v > now}
                if len(self._until) >= self.MAX:
                    self._until.clear()
            self._until[entry] = now + self.ttl
        return True
