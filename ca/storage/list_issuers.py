"""What the HSM service reads to judge a streamed CRL or ARL (ca.hsm.crl_stream): which CA a key
signs lists for.

Only the columns the signer's PostgreSQL role may read (ca.storage.grants): a key's id, label and
key identifier, and the certificates that carry it (their DER, for the subject Names).
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ca.storage.models import Certificate, KeyGeneration


@dataclasses.dataclass(frozen=True, slots=True)
class KeyCertificates:
    key_identifier: bytes  # the key's subjectKeyIdentifier
    certificates: tuple[bytes, ...]  # DER of every certificate whose subject key it is


class ListIssuerReads:
    def __init__(self, session: Session) -> None:
        self.session = session

    def key_certificates(self, label: str) -> KeyCertificates | None:
        """The CA key labelled `label` and the certificates that carry it; None for no such CA key."""
        row = self.session.execute(sa.select(KeyGeneration.id, KeyGeneration.ski)
                                   .where(KeyGeneration.key_label == label)).first()
        if row is None:
            return None
        ders = self.session.scalars(sa.select(Certificate.der).where(Certificate.subject_key_id == row.id)).all()
        return KeyCertificates(bytes(row.ski), tuple(bytes(d) for d in ders))
