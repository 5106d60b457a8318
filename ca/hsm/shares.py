"""M-of-N activation shares (Shamir secret sharing of a 128-bit activation secret).

The token's user and SO PINs are derived from the secret, so nobody ever knows a PIN and
the token opens only when M key managers combine their shares.  A share is written for
people: a version tag, the share set id, the share index, the 16 share bytes in groups of
four hex digits and a 4-digit check so that a typo is caught before it is combined.
Only a digest of each share is stored, to name a wrong or foreign share at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ca.errors import InvalidInput

SECRET_BYTES = 16  # pycryptodome's Shamir works over GF(2^128)
PREFIX = "RVS1"


@dataclasses.dataclass(frozen=True, slots=True)
class Share:
    set_id: int
    index: int
    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != SECRET_BYTES:
            raise InvalidInput(f"a share carries {SECRET_BYTES} bytes, this one {len(self.value)}")
        if not 1 <= self.index <= 255:
            raise InvalidInput(f"share index {self.index} is out of range 1..255")

    def __repr__(self) -> str:  # never log the share value
        return f"Share(set_id={self.set_id}, index={self.index}, value=<hidden>)"

    def _body(self) -> str:
        hexed = self.value.hex()
        return f"{PREFIX}-{self.set_id}-{self.index}-" + "-".join(hexed[i:i + 4] for i in range(0, len(hexed), 4))

    def encode(self) -> str:
        return f"{self._body()}-{_check(self._body())}"

    def digest(self) -> bytes:
        """What the database keeps to recognise this share; 128 bits of entropy make it safe."""
        return hashlib.sha256(f"revoca share digest|{self.set_id}|{self.index}|".encode() + self.value).digest()

    def matches(self, digest: bytes) -> bool:
        return hmac.compare_digest(self.digest(), digest)


def _check(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:4]


def parse_share(text: str) -> Share:
    """Read a share as typed or pasted: case, spaces and line breaks do not matter."""
    cleaned = "".join(text.split()).upper().replace("RVS1", PREFIX)
    parts = cleaned.split("-")
    if len(parts) != 3 + SECRET_BYTES // 2 + 1 or parts[0] != PREFIX:
        raise InvalidInput(f"not a revoca activation share (expected {PREFIX}-<set>-<index>-xxxx-...-<check>)")
    try:
        set_id, index = int(parts[1]), int(parts[2])
        value = bytes.fromhex("".join(parts[3:-1]))
    except ValueError as exc:
        raise InvalidInput("the share contains characters that are not digits or hex") from exc
    share = Share(set_id=set_id, index=index, value=value)
    if _check(share._body()).upper() != parts[-1].upper():
        raise InvalidInput(f"share {index} fails its check digits: a character was mistyped")
    return share


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def split(secret: bytes, *, set_id: int, threshold: int, total: int) -> list[Share]:
    if len(secret) != SECRET_BYTES:
        raise InvalidInput(f"the activation secret must be {SECRET_BYTES} bytes")
    return [Share(set_id=set_id, index=i, value=v) for i, v in Shamir.split(threshold, total, secret)]


def combine(shares: list[Share]) -> bytes:
    indexes = [s.index for s in shares]
    if len(set(indexes)) != len(indexes):
        raise InvalidInput("the same share was given twice")
    if len({s.set_id for s in shares}) != 1:
        raise InvalidInput("the shares come from different share sets")
    return Shamir.combine([(s.index, s.value) for s in shares])


def _derive(secret: bytes, purpose: bytes) -> str:
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=b"revoca " + purpose).derive(secret).hex()


def user_pin(secret: bytes) -> str:
    return _derive(secret, b"token user pin")


def so_pin(secret: bytes) -> str:
    return _derive(secret, b"token so pin")
