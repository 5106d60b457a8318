"""Which CA key a CertID names, and who answers for it (RFC 6960 4.1.1, 4.2.2.2).

A CertID names its issuer by hashes of the issuer's name and public key, so every key
generation of every CA revoca runs is indexed under SHA-1, SHA-256, SHA-384 and SHA-512.
The answer for a key is signed by a delegated responder certificate that this very key
issued (the newest one valid and unrevoked, key in a file or the token), or, in CA-signed mode
only ([ocsp] ca_signed, `--ca-signed`), by the CA key itself (RFC 6960 2.6).  A key with no
valid responder certificate outside CA-signed mode has no responder at all: its queries are
answered tryLater (ocsp.responder), never silently signed with the CA key (issue 13).  The
index is good until the first of its responder certificates ends (`valid_until`).

A destroyed CA key (ca.hsm.destruction marks its generation DESTROYED in the same transaction)
is never offered as a signer: in CA-signed mode its CertIDs stay ours but have no responder (the
signer would refuse the key anyway; tryLater says so at once rather than after a round trip).
A delegated responder key is destroyed only once every certificate carrying it is expired or
revoked, so `_delegated` never finds one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509

from ca.enums import CAKind, CertKind, KeyStatus
from ca.storage.engine import Engine, session_scope
from ca.storage.store import ReadStore

HASHES = ("sha1", "sha256", "sha384", "sha512")
FILE_PREFIX = "file:"  # key labels of responder keys held in files (ocsp.keys)


@dataclasses.dataclass(frozen=True, slots=True)
class ResponderKey:
    """What signs the answers for one CA key: a key label and the certificate to include (if delegated)."""

    key_label: str
    certificate_der: bytes | None  # None: CA-signed (the relying party has the CA certificate)
    key_hash: bytes  # SHA-1 of the signer's public key bits: ResponderID byKey
    not_after: dt.datetime | None
    serial: int | None = None  # the delegated responder certificate's


@dataclasses.dataclass(frozen=True, slots=True)
class IssuerKey:
    ca_id: int
    ca_name: str
    key_id: int
    responder: ResponderKey | None  # None: ours, but nothing may sign for it (no valid responder certificate)
    generation: int = 0

    @property
    def label(self) -> str:
        return f"{self.ca_name} (key generation {self.generation})"


class IssuerIndex:
    """(hash algorithm, issuerNameHash, issuerKeyHash) -> IssuerKey, loaded from the database."""

    def __init__(self, by_hashes: dict[tuple[str, bytes, bytes], IssuerKey]) -> None:
        self._by_hashes = by_hashes
        self._keys = tuple({k.key_id: k for k in by_hashes.values()}.values())
        ends = [k.responder.not_after for k in self._keys
                if k.responder is not None and k.responder.not_after is not None]
        # the index must be read again when its first responder certificate ends: an expired one is never used
        self.valid_until: dt.datetime | None = min(ends, default=None)

    def find(self, algorithm: str, name_hash: bytes, key_hash: bytes) -> IssuerKey | None:
        return self._by_hashes.get((algorithm, name_hash, key_hash))

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> tuple[IssuerKey, ...]:
        """Each CA key once."""
        return self._keys

    def sha1_hashes(self) -> dict[int, tuple[bytes, bytes]]:
        """key id -> (issuerNameHash, issuerKeyHash) under SHA-1: the CertID answers are signed ahead for."""
        return {k.key_id: (name_hash, key_hash) for (algorithm, name_hash, key_hash), k in self._by_hashes.items()
                if algorithm == "sha1"}

    @classmethod
    def load(cls, engine: Engine, *, now: dt.datetime, ca_signed: bool = False,
             key_files: bool = False) -> IssuerIndex:
        """`key_files`: prefer delegated responder keys held in files (ocsp.keys) to token keys."""
        by_hashes: dict[tuple[str, bytes, bytes], IssuerKey] = {}
        with session_scope(engine, readonly=True) as session:
            store = ReadStore(session)
            for ca in store.cas():
                if ca.kind is CAKind.EXTERNAL:
                    continue
                for key in ca.keys:
                    own = store.self_signed_of_key(key.id)
                    if own is None:
                        continue
                    name_der = asn1_x509.Certificate.load(own).subject.dump()
                    key_bits = public_key_bits(key.spki_der)
                    responder = None
                    if ca_signed:  # RFC 6960 2.6: the CA itself; never a fallback for a missing certificate
                        if key.key_label is not None and key.status is not KeyStatus.DESTROYED:
                            responder = ResponderKey(key.key_label, None, hashlib.sha1(key_bits).digest(), None)
                    else:
                        if key_files:
                            responder = _delegated(store, key.id, now, files=True)
                        responder = responder or _delegated(store, key.id, now, files=False)
                    issuer = IssuerKey(ca.id, ca.name, key.id, responder, key.generation)
                    for algorithm in HASHES:
                        by_hashes[(algorithm, _hash(algorithm, name_der), _hash(algorithm, key_bits))] = issuer
        return cls(by_hashes)


def _delegated(store: ReadStore, key_id: int, now: dt.datetime, *, files: bool) -> ResponderKey | None:
    """The newest current responder certificate this key issued, with its key in a file or in the token."""
    row = store.current_delegate(key_id, CertKind.OCSP_RESPONDER, now, label_prefix=FILE_PREFIX, prefixed=files)
    if row is None:
        return None
    bits = public_key_bits(asn1_x509.Certificate.load(row.der).public_key.dump())
    assert row.key_label is not None
    return ResponderKey(row.key_label, row.der, hashlib.sha1(bits).digest(), row.not_after, row.serial)


def public_key_bits(spki_der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING's bits (what issuerKeyHash and byKey hash)."""
    return bytes(asn1_keys.PublicKeyInfo.load(spki_der)["public_key"].contents[1:])


def _hash(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(algorithm, data).digest()
