"""Operator passwords: only a salted scrypt hash is stored (seed 004 5.2.3)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

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
