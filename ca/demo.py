"""Demo-only pieces that `revoca run` adds once: an RA terminal, a receptionist, an operator and a verifier.

Their keys and passwords are written under the data directory, marked DEMO ONLY, so that the
printed curl and ldapsearch commands work as shown. Production registers terminals with
`revoca ra add`, operators with `revoca operator add` and verifiers with `revoca verifier add`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import hierarchy
from ca.ceremony import DEMO_WARNING
from ca.config import Settings
from ca.enums import CAKind, CertKind, Role
from ca.errors import NotFound
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.officers.credentials import hash_password
from ca.storage.engine import Engine, session_scope
from ca.storage.revocations import RevocationReadStore, RevocationStore
from ca.storage.verifiers import VerifierReads
from ca.trusted_time import ClockGuard, guard_for

TERMINAL = "demo-window"
# the demo window is a municipality of tokyo: it revokes tokyo's certificates only (issue 13)
PREFECTURE, MUNICIPALITY = "tokyo", "Chiyoda"
CLERK = "demo-clerk"
VERIFIER = "demo-verifier"


def demo_dir(settings: Settings) -> Path:
    return settings.data_dir / "demo-terminal"


def ensure_demo_ra(settings: Settings, engine: Engine, keys: KeyStore, *,
                   time_guard: ClockGuard | None = None) -> tuple[Path, str, str]:
    """(directory with demo-window.pem/.key and bridge-roots.pem, clerk name, clerk password)."""
    out = demo_dir(settings)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    password_file = out / f"{CLERK}.password"
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        store = RevocationStore(session)
        try:
            store.operator(CLERK)
        except NotFound:
            password = secrets.token_urlsafe(12)
            store.add_operator(name=CLERK, display_name="Demo receptionist", credential_hash=hash_password(password),
                               roles=[Role.RECEPTIONIST], now=now, made_at_ceremony=True)
            password_file.touch(mode=0o600, exist_ok=True)
            password_file.write_text(DEMO_WARNING + password + "\n", encoding="utf-8")
        if not any(t.name == TERMINAL for t in store.terminals()):
            bridge = store.bridge()
            ctx = hierarchy.Context(store=store, keys=keys, now=now, actor="demo",
                                    time_guard=time_guard or guard_for(settings),
                                    algorithm=KeyAlgorithm(settings.hsm.key_algorithm))
            cert = hierarchy.issue_with_key_file(
                ctx, bridge, CertKind.RA_TERMINAL, key_path=out / f"{TERMINAL}.key",
                subject=x509.Name.from_rfc4514_string(f"CN={TERMINAL},OU=RA terminals,O=JPKI,C=JP"))
            store.add_terminal(name=TERMINAL, certificate=store.certificate(bridge, cert.serial_number), now=now)
            (out / f"{TERMINAL}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        terminal = store.terminal(TERMINAL)
        if not terminal.ca_ids:  # new, or registered before terminals were bound to CAs
            scope = [store.ca(PREFECTURE)] if _has(store, PREFECTURE) else store.cas(CAKind.REGIONAL)
            store.set_terminal_scope(terminal, scope, municipality=MUNICIPALITY)
        roots = store.certificates(issuer=store.bridge(), kinds=[CertKind.SELF_SIGNED])
        (out / "bridge-roots.pem").write_bytes(b"".join(
            x509.load_der_x509_certificate(r.der).public_bytes(serialization.Encoding.PEM) for r in roots))
        sample = next((c for c in store.certificates(issuer=store.ca("tokyo") if _has(store, "tokyo") else None,
                                                     kinds=[CertKind.SUBSCRIBER], limit=200)
                       if c.revocation is None), None)
    password = password_file.read_text(encoding="utf-8").splitlines()[-1]
    serial = format(sample.serial, "x") if sample else "<serial>"
    return out, password, serial


def _has(store: RevocationReadStore, name: str) -> bool:
    return any(c.name == name for c in store.cas())


def verifier_dir(settings: Settings) -> Path:
    return settings.data_dir / "demo-verifier"


def ensure_demo_verifier(settings: Settings, engine: Engine, keys: KeyStore, *,
                         time_guard: ClockGuard | None = None) -> Path:
    """A registered verifier with a bridge-issued certificate; its directory holds the key, the
    certificate, `ldap.password` (the bare password, as `ldapsearch -y` reads it) and each CA's
    self-signed certificate (`tokyo.pem`, ...) for `openssl ocsp -issuer`."""
    from ca.verifiers import registry

    out = verifier_dir(settings)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    password_file = out / "ldap.password"
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        store = RevocationStore(session)
        roots = {ca.name: store.self_signed_der(ca, store.current_key(ca)) for ca in store.cas()
                 if ca.kind is not CAKind.EXTERNAL}
        for name, der in roots.items():  # the -issuer and -CAfile of `openssl ocsp`
            (out / f"{name}.pem").write_bytes(x509.load_der_x509_certificate(der).public_bytes(
                serialization.Encoding.PEM))
        if VerifierReads(session).id_of(VERIFIER) is not None:
            return out
        ctx = hierarchy.Context(store=store, keys=keys, now=now, actor="demo",
                                    time_guard=time_guard or guard_for(settings),
                                algorithm=KeyAlgorithm(settings.hsm.key_algorithm))
        (out / f"{VERIFIER}.key").unlink(missing_ok=True)  # left by a run that did not finish
        cert, certificate_id = registry.issue_certificate(ctx, VERIFIER, key_path=out / f"{VERIFIER}.key")
        password = secrets.token_urlsafe(18)
        registry.register(session, name=VERIFIER, certificate=cert, password=password, now=now,
                          base_dn=settings.repository.base_dn, certificate_id=certificate_id, actor="demo")
        (out / f"{VERIFIER}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (out / "README").write_text(DEMO_WARNING, encoding="utf-8")
        password_file.touch(mode=0o600, exist_ok=True)
        password_file.write_text(password, encoding="utf-8")
    return out



OPERATOR = "demo-operator"


def ensure_demo_operator(settings: Settings, engine: Engine) -> Path:
    """An operator (the `operator` role of seed 004 5.2.1 (7)) for the demo's CLI commands that need
    a login (`revoca repository queue`, `cert list`, `crl issue`); returns its DEMO ONLY password
    file (warning lines, then the password)."""
    password_file = settings.demo_shares_dir / f"{OPERATOR}.password"
    with session_scope(engine) as session:
        store = RevocationStore(session)
        try:
            store.operator(OPERATOR)
        except NotFound:
            password = secrets.token_urlsafe(12)
            store.add_operator(name=OPERATOR, display_name="Demo operator", credential_hash=hash_password(password),
                               roles=[Role.OPERATOR], now=dt.datetime.now(dt.UTC), made_at_ceremony=True)
            password_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            password_file.touch(mode=0o600, exist_ok=True)
            password_file.write_text(DEMO_WARNING + password + "\n", encoding="utf-8")
    return password_file
