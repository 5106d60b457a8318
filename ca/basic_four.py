"""The JPKI "basic four" information in a subscriber certificate (seed 004 3.1.2, 3.1.8).

Name, gender, date of birth and address as on the resident register, each an otherName in
subjectAltName with a UTF8String value.  Read from imported certificates and written by the
test and demo generator (ca.subscribers) through ca.issuance.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime

from asn1crypto import core
from cryptography import x509
from cryptography.x509 import ObjectIdentifier

from ca.errors import InvalidInput


class BasicFourOID:
    """otherName type-ids of the basic four information (shared/seeds/README.md)."""

    NAME = ObjectIdentifier("1.2.392.200149.8.5.5.1")
    NAME_SUBSTITUTE_NOTE = ObjectIdentifier("1.2.392.200149.8.5.5.2")
    GENDER = ObjectIdentifier("1.2.392.200149.8.5.5.3")
    DATE_OF_BIRTH = ObjectIdentifier("1.2.392.200149.8.5.5.4")
    ADDRESS = ObjectIdentifier("1.2.392.200149.8.5.5.5")
    ADDRESS_SUBSTITUTE_NOTE = ObjectIdentifier("1.2.392.200149.8.5.5.6")


# Resident-register codes for 男女の別; carried as the digit, like the date as YYYYMMDD.
GENDERS = {"1": "male", "2": "female", "3": "unknown"}

_FIELDS = (
    ("name", BasicFourOID.NAME),
    ("name_substitute_note", BasicFourOID.NAME_SUBSTITUTE_NOTE),
    ("gender", BasicFourOID.GENDER),
    ("date_of_birth", BasicFourOID.DATE_OF_BIRTH),
    ("address", BasicFourOID.ADDRESS),
    ("address_substitute_note", BasicFourOID.ADDRESS_SUBSTITUTE_NOTE),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BasicFour:
    """The holder's name, gender, date of birth and address, as on the resident register.

    The substitute notes are present only when a character outside JIS X 0208/0212 was
    replaced (seed 004 §3.1.8), so their otherName entries are omitted when None.
    """

    name: str
    name_substitute_note: str | None = None
    gender: str
    date_of_birth: date
    address: str
    address_substitute_note: str | None = None

    def __post_init__(self) -> None:
        for field in ("name", "address", "name_substitute_note", "address_substitute_note"):
            value = getattr(self, field)
            if value is None and field.endswith("_note"):
                continue
            if not isinstance(value, str) or not value.strip() or not _is_text(value):
                raise InvalidInput(f"basic four {field} must be non-empty text without control characters")
        if self.gender not in GENDERS:
            raise InvalidInput(f"basic four gender {self.gender!r} must be one of {', '.join(GENDERS)}")
        if type(self.date_of_birth) is not date:
            raise InvalidInput("basic four date_of_birth must be a datetime.date")

    def general_names(self) -> list[x509.GeneralName]:
        """subjectAltName entries: one otherName per present field, value a UTF8String."""
        names: list[x509.GeneralName] = []
        for field, oid in _FIELDS:
            value = getattr(self, field)
            if value is None:
                continue
            text = value.strftime("%Y%m%d") if isinstance(value, date) else value
            names.append(x509.OtherName(oid, core.UTF8String(text).dump()))
        return names

    @classmethod
    def from_certificate(cls, certificate: x509.Certificate) -> BasicFour:
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound as exc:
            raise InvalidInput("certificate has no subjectAltName, so no basic four information") from exc
        by_oid: dict[ObjectIdentifier, str] = {}
        for other in san.get_values_for_type(x509.OtherName):
            try:
                by_oid[other.type_id] = core.UTF8String.load(other.value, strict=True).native
            except ValueError as exc:
                raise InvalidInput(f"otherName {other.type_id.dotted_string} is not a UTF8String") from exc
        values: dict[str, object] = {f: by_oid.get(oid) for f, oid in _FIELDS}
        missing = [f for f, v in values.items() if v is None and not f.endswith("_note")]
        if missing:
            raise InvalidInput(f"certificate lacks basic four field(s) {', '.join(missing)}")
        try:
            values["date_of_birth"] = datetime.strptime(str(values["date_of_birth"]), "%Y%m%d").date()
        except ValueError as exc:
            raise InvalidInput(f"date of birth {values['date_of_birth']!r} is not YYYYMMDD") from exc
        return cls(**values)  # type: ignore[arg-type]


def _is_text(value: str) -> bool:
    """No control, format, private-use or unassigned characters; the ideographic space is fine."""
    return not any(unicodedata.category(ch).startswith("C") for ch in value)


# --- generated subscribers ---------------------------------------------------------------

# Seed 004 §6.1.5.2 puts RSA 1024 on the cards; 2048 is the default so that tools which
# refuse short keys (e.g. OpenSSL at security level 2) still accept generated data.
