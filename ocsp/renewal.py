"""Issuing delegated OCSP responder certificates: `revoca ocsp renew` and `revoca ocsp key-file`.

A delegated responder certificate (id-kp-OCSPSigning, id-pkix-ocsp-nocheck, policy ...300 of
seed 004; one year, 6.3.2.1) must be issued by the very CA key whose certificates it answers
for (RFC 6960 4.2.2.2), so it is renewed by that key, not by a rollover.  Its new key is made
in the token (through the HSM service) or in an encrypted file (ocsp.keys); the certificate
comes from ca.hierarchy with the profile of ca.profiles, the same code as the ceremony's and a
rollover's.

The certificate in use is left alone: it stays valid until its notAfter, so answers it signed
keep verifying.  The responders sign with the newest valid one (ocsp.issuers), so the new one
from its issuance on, once they read their index again (ocsp.responder.RELOAD_EVERY: within a
minute, no restart).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from pathlib import Path

from cryptography import x509

from ca import audit, hierarchy
from ca.config import Settings
from ca.enums import CAKind, CertKind, KeyStatus
from ca.errors import InvalidInput, NotFound
from ca.hsm.signer import KeyAlgorithm, KeyStore
from ca.storage.engine import Engine, session_scope
from ca.storage.store import Store
from ca.trusted_time import ClockGuard, guard_for
from ocsp.issuers import FILE_PREFIX
from ocsp.keys import keys_dir, passphrase_path, read_passphrase


class KeyPlace(enum.StrEnum):
    """Where the new responder key is kept (`--key-store`)."""

    TOKEN = "token"
    FILE = "file"


@dataclasses.dataclass(frozen=True, slots=True)
class Renewal:
    """A responder certificate just issued, and the one the responders signed with until then."""

    ca_name: str
    generation: int  # of the CA key that issued it (and whose certificates it answers for)
    certificate: x509.Certificate
    key_place: KeyPlace
    key_path: Path | None  # the encrypted key file (KeyPlace.FILE)
    replaces: int | None  # serial of the newest valid responder certificate before it (None: there was none)
    replaces_not_after: dt.datetime | None


def renew(settings: Settings, engine: Engine, keys: KeyStore, ca_name: str, *, key_place: KeyPlace,
          algorithm: KeyAlgorithm, now: dt.datetime, actor: str, generation: int | None = None,
          time_guard: ClockGuard | None = None) -> Renewal:
    """A new responder certificate and key for `ca_name`'s current key (or key `generation`, a
    retired one whose certificates OCSP still answers for), in one transaction, audited.
    `time_guard`: the caller's clock check (ca.trusted_time); None makes one for `settings`."""
    passphrase = read_passphrase(passphrase_path(settings), create=True) if key_place is KeyPlace.FILE else b""
    with session_scope(engine) as session:
        store = Store(session)
        ca = store.ca(ca_name)
        if ca.kind is CAKind.EXTERNAL:
            raise InvalidInput(f"CA {ca.name} is external: its own operator answers OCSP for it")
        found = store.current_key(ca) if generation is None else next(
            (k for k in ca.keys if k.generation == generation), None)
        if found is None:
            raise NotFound(f"CA {ca.name} has no key generation {generation}; see `revoca ca show {ca.name}`")
        key = found
        if key.status is KeyStatus.COMPROMISED:
            raise InvalidInput(f"CA {ca.name} key generation {key.generation} is compromised: it signs nothing more")
        if key.key_label is None:
            raise InvalidInput(f"CA {ca.name} key generation {key.generation} is not in revoca's token")
        before = [d for d in (store.current_delegate(key.id, CertKind.OCSP_RESPONDER, now, label_prefix=FILE_PREFIX,
                                                     prefixed=files) for files in (False, True)) if d is not None]
        previous = max(before, key=lambda d: (d.not_before, d.id), default=None)
        ctx = hierarchy.Context(store=store, keys=keys, now=now, actor=actor, algorithm=algorithm,
                                responder_algorithm=algorithm, time_guard=time_guard or guard_for(settings))
        subject = hierarchy.responder_subject(ca)
        path = None
        if key_place is KeyPlace.FILE:
            name = f"ocsp-{ca.name}-{1 + store.count_certificates(ca, CertKind.OCSP_RESPONDER)}"
            path = keys_dir(settings) / f"{name}.key"
            if path.exists():
                raise InvalidInput(f"{path} already exists; move it away first")
            cert = hierarchy.issue_with_key_file(ctx, ca, CertKind.OCSP_RESPONDER, subject=subject, key_path=path,
                                                 algorithm=algorithm, passphrase=passphrase,
                                                 key_label=FILE_PREFIX + name, issuer_key=key)
        else:
            cert = hierarchy.issue_end_entity(ctx, ca, CertKind.OCSP_RESPONDER, subject=subject, issuer_key=key)
        renewal = Renewal(ca.name, key.generation, cert, key_place, path,
                          previous.serial if previous else None, previous.not_after if previous else None)
        audit.record(session, "ocsp.responder_renewed", actor=actor, ca=ca.name, generation=key.generation,
                     serial=format(cert.serial_number, "x"), not_after=cert.not_valid_after_utc.isoformat(),
                     key_store=key_place.value,
                     replaces=format(renewal.replaces, "x") if renewal.replaces is not None else None)
    return renewal


def issue_key_file(settings: Settings, engine: Engine, keys: KeyStore, ca_name: str, *,
                   algorithm: KeyAlgorithm, now: dt.datetime, actor: str,
                   time_guard: ClockGuard | None = None) -> tuple[x509.Certificate, Path]:
    """A delegated responder certificate for `ca_name` (issued by its current key) with an encrypted key file."""
    renewal = renew(settings, engine, keys, ca_name, key_place=KeyPlace.FILE, algorithm=algorithm, now=now,
                    actor=actor, time_guard=time_guard)
    assert renewal.key_path is not None
    return renewal.certificate, renewal.key_path
