"""Helpers for the revocation and RA tests: operators, terminals, subscriber certificates,
online (CMS) requests, and checking receipts with `openssl cms -verify`.

Everything here goes through the same public code the product uses (Store, RevocationStore,
hierarchy.issue_with_key_file); nothing writes rows by hand.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from ca import hierarchy
from ca.enums import CAKind, CertKind, Role
from ca.errors import NotActivated
from ca.hsm.signer import KeyAlgorithm, KeyStore, Signer
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate, CertificateAuthority, Revocation, RevocationRequest
from ca.storage.revocations import RevocationStore
from ca.storage.store import Store
from ca.subscribers import generate_subscribers

from support.clock import NO_NTP
from support.officers import cheap_hash

PASSWORD = "correct horse battery"  # >= 10 characters (ca.officers.credentials.MIN_LENGTH)
REGIONAL = ("tokyo", "osaka", "hokkaido")


# --- the token, as the HSM service would hold it --------------------------------------------------


class SwitchableKeyStore:
    """A KeyStore that answers like an HSM that is not activated until `up` is set."""

    def __init__(self, inner: KeyStore, *, up: bool = False) -> None:
        self.inner = inner
        self.up = up
        self.signer_calls = 0

    def generate(self, label: str, algorithm: KeyAlgorithm):  # type: ignore[no-untyped-def]
        return self.inner.generate(label, algorithm)

    def signer(self, label: str) -> Signer:
        self.signer_calls += 1
        if not self.up:
            raise NotActivated("the HSM is not activated: two key managers must present their shares")
        return self.inner.signer(label)


# --- people and terminals -------------------------------------------------------------------------


def _hash(password: str) -> str:
    """A cheap scrypt hash (support.officers.cheap_hash): the product's costs ~50-100 ms at every
    login, and each RA test logs its clerks in afresh (a new app remembers no password)."""
    return cheap_hash(password)


def add_operator(engine: sa.Engine, name: str, *roles: Role, password: str = PASSWORD,
                 disabled: bool = False) -> None:
    with session_scope(engine) as s:
        op = Store(s).add_operator(name=name, display_name=name.title(), credential_hash=_hash(password),
                                   roles=list(roles), now=dt.datetime.now(dt.UTC))
        op.disabled = disabled


def basic_auth(name: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclasses.dataclass(frozen=True)
class Terminal:
    name: str
    der: bytes
    key_path: Path
    cert_path: Path


def register_terminals(engine: sa.Engine, keys: KeyStore, names: Iterable[str], out_dir: Path, *,
                       now: dt.datetime, cas: Iterable[str] | None = None, municipality: str = "",
                       scopes: Mapping[str, tuple[Iterable[str] | None, str]] | None = None) -> list[Terminal]:
    """Register terminals as `revoca ra add` does, all in one transaction (fast for many), bound to
    the CAs named in `cas` (default: every regional CA; empty: none, so they may revoke nothing).

    `scopes`: name -> (cas, municipality) for a terminal of its own scope, in the same transaction."""
    out: list[Terminal] = []
    with session_scope(engine) as s:
        store = RevocationStore(s)
        bridge = store.bridge()

        def bound(names_: Iterable[str] | None) -> list[CertificateAuthority]:
            return store.cas(CAKind.REGIONAL) if names_ is None else [store.ca(name) for name in names_]

        scope = bound(cas)
        ctx = hierarchy.Context(store=store, keys=keys, now=now, actor="test", algorithm=KeyAlgorithm.P256,
                                time_guard=NO_NTP)
        for name in names:
            own_cas, own_municipality = (scope, municipality)
            if scopes is not None and name in scopes:
                own_cas, own_municipality = bound(scopes[name][0]), scopes[name][1]
            key_path = out_dir / f"{name}.key"
            subject = x509.Name.from_rfc4514_string(f"CN={name},OU=RA terminals,O=JPKI,C=JP")
            cert = hierarchy.issue_with_key_file(ctx, bridge, CertKind.RA_TERMINAL, subject=subject,
                                                 key_path=key_path)
            store.add_terminal(name=name, certificate=store.certificate(bridge, cert.serial_number), now=now,
                               cas=own_cas, municipality=own_municipality)
            cert_path = out_dir / f"{name}.pem"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            out.append(Terminal(name, cert.public_bytes(serialization.Encoding.DER), key_path, cert_path))
    return out


def bridge_roots_pem(engine: sa.Engine) -> bytes:
    with session_scope(engine) as s:
        store = Store(s)
        rows = store.certificates(issuer=store.bridge(), kinds=[CertKind.SELF_SIGNED])
        return b"".join(x509.load_der_x509_certificate(r.der).public_bytes(serialization.Encoding.PEM)
                        for r in rows)


# --- certificates ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertRef:
    id: int
    issuer: str
    serial: int
    kind: CertKind
    der: bytes

    @property
    def hex_serial(self) -> str:
        return format(self.serial, "x")

    @property
    def pem(self) -> str:
        return x509.load_der_x509_certificate(self.der).public_bytes(serialization.Encoding.PEM).decode()


def _ref(store: Store, row: Certificate, names: dict[int, str] | None = None) -> CertRef:
    """`names`: CA id -> name, read once by a caller with many rows (not once a row)."""
    names = names if names is not None else {c.id: c.name for c in store.cas()}
    return CertRef(row.id, names[row.issuer_ca_id], row.serial, row.kind, row.der)


def certificates(engine: sa.Engine, issuer: str, *kinds: CertKind, subject_ca: str | None = None) -> list[CertRef]:
    with session_scope(engine) as s:
        store = Store(s)
        rows = store.certificates(issuer=store.ca(issuer), kinds=list(kinds) or None,
                                  subject_ca=store.ca(subject_ca) if subject_ca else None)
        names = {c.id: c.name for c in store.cas()}
        return [_ref(store, r, names) for r in rows]


def subscribers(engine: sa.Engine, issuer: str = "tokyo") -> list[CertRef]:
    return certificates(engine, issuer, CertKind.SUBSCRIBER)


def new_subscriber(engine: sa.Engine, keys: KeyStore, issuer: str = "tokyo", *,
                   now: dt.datetime) -> tuple[CertRef, Any]:
    """A subscriber certificate issued now by `issuer` and stored, with its private key."""
    with session_scope(engine) as s:
        store = Store(s)
        ca = store.ca(issuer)
        key = store.current_key(ca)
        iss = hierarchy.issuer_for(keys, ca, key)
        cert, private = next(generate_subscribers(iss, 1, now=now, time_guard=NO_NTP))
        row = store.add_certificate(cert, kind=CertKind.SUBSCRIBER, issuer_key=key, now=now)
        return _ref(store, row), private


# --- reading back what happened ---------------------------------------------------------------------


def revocations(engine: sa.Engine) -> dict[int, Revocation]:
    """Every revocation row by certificate id (a duplicate row would make the count differ)."""
    with session_scope(engine) as s:
        rows = s.scalars(sa.select(Revocation).order_by(Revocation.id)).all()
    by_cert = {r.certificate_id: r for r in rows}
    assert len(by_cert) == len(rows), "a certificate has two revocation rows"
    return by_cert


def count(engine: sa.Engine, model: type) -> int:
    with session_scope(engine) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def requests(engine: sa.Engine) -> list[RevocationRequest]:
    with session_scope(engine) as s:
        return list(s.scalars(sa.select(RevocationRequest).order_by(RevocationRequest.id)).all())


def audit_events(engine: sa.Engine, event_type: str | None = None, *, after_id: int = 0) -> list[AuditEvent]:
    with session_scope(engine) as s:
        q = sa.select(AuditEvent).where(AuditEvent.id > after_id).order_by(AuditEvent.id)
        if event_type is not None:
            q = q.where(AuditEvent.event_type == event_type)
        return list(s.scalars(q).all())


def last_audit_id(engine: sa.Engine) -> int:
    with session_scope(engine) as s:
        return s.scalar(sa.select(sa.func.max(AuditEvent.id))) or 0


def snapshot(engine: sa.Engine) -> dict[str, int]:
    """Row counts of what a refused request must not change."""
    return {"revocations": count(engine, Revocation), "requests": count(engine, RevocationRequest)}


# --- online requests and receipts -------------------------------------------------------------------


def signed_request(cert_der: bytes, private_key: Any, content: dict[str, Any] | bytes) -> bytes:
    """CMS SignedData (DER) over the content, signed by private_key, carrying the certificate."""
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    cert = x509.load_der_x509_certificate(cert_der)
    return (pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(cert, private_key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


def verify_receipt(receipt_b64: str, roots_pem: bytes) -> dict[str, Any]:
    """`openssl cms -verify` with only the bridge root as anchor; returns the signed JSON."""
    with tempfile.TemporaryDirectory(prefix="revoca-receipt-") as tmp:
        d = Path(tmp)
        (d / "receipt.der").write_bytes(base64.b64decode(receipt_b64, validate=True))
        (d / "roots.pem").write_bytes(roots_pem)
        run = subprocess.run(
            ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(d / "receipt.der"), "-binary",
             "-CAfile", str(d / "roots.pem"), "-no-CApath", "-no-CAstore", "-out", str(d / "content.json")],
            capture_output=True, text=True, timeout=30, check=False)
        assert run.returncode == 0 and "Verification successful" in run.stderr, (
            f"openssl cms -verify failed ({run.returncode}):\n{run.stdout}{run.stderr}")
        return json.loads((d / "content.json").read_bytes())


def receipt_fields(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without the receipt itself: what the receipt must say."""
    return {k: v for k, v in answer.items() if k not in ("receipt", "receipt_error")}
