"""Which subscriber certificates belong to the person at the window, by the basic four
(seed 004 3.1.2): the name and date of birth as the resident register has them, optionally
gender and address to tell namesakes apart.

The basic four live only in each certificate's subjectAltName, so the store narrows the
certificates to those whose DER holds the date of birth as the certificate encodes it (a
UTF8String "YYYYMMDD"), and each candidate is judged here on its parsed fields.  Names are
compared after NFKC and without spaces, so 「佐藤 太郎」 typed at a keyboard finds 「佐藤　太郎」.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata

from asn1crypto import core
from cryptography import x509

from ca.basic_four import GENDERS, BasicFour
from ca.errors import InvalidInput
from ca.storage.disclosure import CertificateFacts


def _plain(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """What the subscriber showed (their identity document): name and date of birth, perhaps more."""

    name: str
    date_of_birth: dt.date
    gender: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if not _plain(self.name):
            raise InvalidInput("give the holder's name as on the resident register")
        if self.gender is not None and self.gender not in GENDERS:
            raise InvalidInput(f"gender {self.gender!r}: one of {', '.join(GENDERS)} (the resident-register code)")

    def needle(self) -> bytes:
        """The DER of the date of birth as the certificate carries it (what the store searches for)."""
        return bytes(core.UTF8String(self.date_of_birth.strftime("%Y%m%d")).dump())

    def matches(self, four: BasicFour) -> bool:
        return (four.date_of_birth == self.date_of_birth and _plain(four.name) == _plain(self.name)
                and (self.gender is None or four.gender == self.gender)
                and (self.address is None or _plain(four.address) == _plain(self.address)))

    def describe(self) -> str:
        more = "".join(f", {k} given" for k in ("gender", "address") if getattr(self, k) is not None)
        return f"the basic four: name and date of birth{more}"


def holders_certificates(holder: Holder, candidates: list[CertificateFacts]) -> list[CertificateFacts]:
    """The candidates whose basic four match `holder` (certificates without them never do)."""
    out = []
    for cert in candidates:
        try:
            four = BasicFour.from_certificate(x509.load_der_x509_certificate(cert.der))
        except (InvalidInput, ValueError):
            continue
        if holder.matches(four):
            out.append(cert)
    return out
