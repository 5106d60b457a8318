"""After a rollover, certificates the old key signed stay checkable by clients with default flags.

`openssl verify -crl_check` with default flags accepts only a CRL signed by the key that signed
the certificate; the scheduler therefore keeps issuing a list signed by each retired key
(ca.crl.old_keys) until the last certificate that key signed expires.  Checked with openssl's
default flags trusting the old root and the new root, with -extended_crl, and with
pyhanko-certvalidator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import InsufficientRevinfoError, RevokedError

from ca import hierarchy
from ca.crl.old_keys import duties
from ca.enums import CertKind, ListType
from ca.hsm.signer import KeyAlgorithm
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.scheduler import Scheduler, expiry_warnings
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationStore
from ca.storage.store import Store

from support.clock import NO_NTP
from support.crl_tools import crl_pem, openssl_crl_verify
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import NOW
from support.tools import pem

H = dt.timedelta(hours=1)
ROLLOVER = NOW + dt.timedelta(days=10)


@pytest.fixture
def installation(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path) as made:
        yield made


def _cert(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _lists(engine: sa.Engine, data_dir: Path, ca: str, list_type: ListType) -> dict[int, tuple[int, bytes]]:
    """Newest list signed by each key generation of `ca`: generation -> (number, DER)."""
    out: dict[int, tuple[int, bytes]] = {}
    with session_scope(engine) as s:
        store = Store(s)
        generations = {k.id: k.generation for k in store.ca(ca).keys}
        for row in sorted(store.issued_crls(ca=store.ca(ca), list_types=[list_type]), key=lambda r: r.number):
            out[generations[row.signing_key_id]] = (row.number, (data_dir / row.path).read_bytes())
    return out


def _verify(leaf: x509.Certificate, *, trusted: x509.Certificate, crls: Sequence[bytes],
            untrusted: Sequence[x509.Certificate] = (), extended: bool = False, at: dt.datetime) -> str:
    """`openssl verify -crl_check` with default flags otherwise (the command the issue quotes)."""
    with tempfile.TemporaryDirectory(prefix="revoca-oldkey-") as tmp:
        d = Path(tmp)
        (d / "root.pem").write_bytes(pem(trusted))
        (d / "crl.pem").write_bytes(b"".join(crl_pem(c) for c in crls))
        (d / "leaf.pem").write_bytes(pem(leaf))
        args = ["openssl", "verify", "-crl_check", "-no-CApath", "-no-CAstore", "-CAfile", str(d / "root.pem"),
                "-CRLfile", str(d / "crl.pem"), "-attime", str(int(at.timestamp()))]
        if untrusted:
            (d / "links.pem").write_bytes(b"".join(pem(c) for c in untrusted))
            args += ["-untrusted", str(d / "links.pem")]
        if extended:
            args.append("-extended_crl")
        run = subprocess.run([*args, str(d / "leaf.pem")], capture_output=True, text=True, timeout=60, check=False)
    return run.stdout + run.stderr


def test_old_key_keeps_signing_a_crl_that_default_openssl_accepts(installation: Installation) -> None:
    engine, data_dir = installation.engine, installation.data_dir
    scheduler = Scheduler(engine, installation.keys, data_dir, time_guard=NO_NTP)
    scheduler.tick(NOW)
    with session_scope(engine) as s:
        store = Store(s)
        tokyo = store.ca("tokyo")
        old_root = _cert(store.certificates(issuer=tokyo, kinds=[CertKind.SELF_SIGNED])[0].der)
        revoked_row, good_row = store.certificates(issuer=tokyo, kinds=[CertKind.SUBSCRIBER], limit=2)
        revoked, good = _cert(revoked_row.der), _cert(good_row.der)
        old_ski = store.current_key(tokyo).ski
        ctx = hierarchy.Context(store=store, keys=installation.keys, now=ROLLOVER, actor="test",
                                algorithm=KeyAlgorithm.P256, time_guard=NO_NTP)
        hierarchy.rollover(ctx, "tokyo")
    with session_scope(engine) as s:
        store = RevocationStore(s)
        revoke_certificate(store, store.certificate(store.ca("tokyo"), revoked.serial_number),
                           RevocationReason.KEY_COMPROMISE, ROLLOVER + H)
        new_root = _cert(Store(s).certificates(issuer=Store(s).ca("tokyo"), kinds=[CertKind.SELF_SIGNED])[-1].der)
        old_with_new = _cert(Store(s).certificates(issuer=Store(s).ca("tokyo"),
                                                   kinds=[CertKind.LINK_OLD_WITH_NEW])[0].der)
        new_with_old = _cert(Store(s).certificates(issuer=Store(s).ca("tokyo"),
                                                   kinds=[CertKind.LINK_NEW_WITH_OLD])[0].der)

    owed = [w for w in expiry_warnings(engine, ROLLOVER + 2 * H) if "retired key" in w]
    assert sorted(owed) == [f"tokyo {t} of retired key 1 expired at 2026-11-04 09:00:00Z; check that `revoca "
                            "serve scheduler` runs" for t in ("ARL", "CRL")]  # its last lists, from before
    result = scheduler.tick(ROLLOVER + 2 * H)
    assert not result.failed, result.failed
    assert not [w for w in result.warnings if "retired key" in w]
    crls = _lists(engine, data_dir, "tokyo", ListType.CRL)
    arls = _lists(engine, data_dir, "tokyo", ListType.ARL)
    assert set(crls) == set(arls) == {1, 2}
    (old_number, old_crl), (new_number, new_crl) = crls[1], crls[2]
    # one sequence per CA and list; the current key's list carries the highest number
    assert old_number + 1 == new_number
    text = openssl_crl_verify(old_crl, old_root)
    assert old_ski.hex(":").upper() in text.upper()  # the retired key's AKI
    assert format(revoked.serial_number, "X") in text.upper().replace(":", "")
    openssl_crl_verify(arls[1][1], old_root)
    at = ROLLOVER + 3 * H

    # the regression: with the new key's CRL alone a default client cannot check old certificates
    assert "unable to get certificate CRL" in _verify(good, trusted=old_root, crls=[new_crl], at=at)
    # with the old key's list: default flags, trusting the old root
    assert _verify(good, trusted=old_root, crls=[old_crl], at=at).rstrip().endswith(": OK")
    assert "certificate revoked" in _verify(revoked, trusted=old_root, crls=[old_crl], at=at)
    # both lists together, as a relying party holding both gets them
    assert _verify(good, trusted=old_root, crls=[new_crl, old_crl], at=at).rstrip().endswith(": OK")
    assert "certificate revoked" in _verify(revoked, trusted=old_root, crls=[new_crl, old_crl], at=at)
    # trusting the new root, through OldWithNew, with default flags
    assert _verify(good, trusted=new_root, untrusted=[old_with_new], crls=[new_crl, old_crl],
                   at=at).rstrip().endswith(": OK")
    assert "certificate revoked" in _verify(revoked, trusted=new_root, untrusted=[old_with_new],
                                            crls=[new_crl, old_crl], at=at)
    # -extended_crl still works with the new key's list and the links
    assert "certificate revoked" in _verify(revoked, trusted=old_root, untrusted=[new_with_old, old_with_new],
                                            crls=[new_crl], extended=True, at=at)
    assert _verify(good, trusted=old_root, untrusted=[new_with_old, old_with_new], crls=[new_crl], extended=True,
                   at=at).rstrip().endswith(": OK")
    # pyhanko-certvalidator ("require": every certificate of the path checked, the link against the ARL)
    every_list = [new_crl, old_crl, arls[2][1], arls[1][1]]
    with pytest.raises(InsufficientRevinfoError, match=r"CRL signature could not be verified"):
        _pyhanko(good, trusted=old_root, crls=[new_crl], at=at)
    for trusted, links in ((old_root, ()), (new_root, (old_with_new,))):
        _pyhanko(good, trusted=trusted, untrusted=links, crls=every_list, at=at)
        with pytest.raises(RevokedError, match=r"compromised key"):
            _pyhanko(revoked, trusted=trusted, untrusted=links, crls=every_list, at=at)


def _pyhanko(leaf: x509.Certificate, *, trusted: x509.Certificate, crls: Sequence[bytes],
             untrusted: Sequence[x509.Certificate] = (), at: dt.datetime) -> None:
    """pyhanko-certvalidator, revocation information required for every certificate (CRLs only); raises on failure."""
    context = ValidationContext(trust_roots=[_asn1(trusted)], other_certs=[_asn1(c) for c in untrusted],
                                crls=[asn1_crl.CertificateList.load(c) for c in crls], revocation_mode="require",
                                moment=at)
    validator = CertificateValidator(_asn1(leaf), validation_context=context)
    asyncio.run(validator.async_validate_usage(set()))


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))


def test_old_key_lists_stop_when_its_last_certificate_expires(installation: Installation) -> None:
    engine = installation.engine
    scheduler = Scheduler(engine, installation.keys, installation.data_dir, time_guard=NO_NTP)
    with session_scope(engine) as s:
        store = Store(s)
        last_subscriber = max(c.not_after for c in store.certificates(issuer=store.ca("osaka"),
                                                                      kinds=[CertKind.SUBSCRIBER]))
        hierarchy.rollover(hierarchy.Context(store=store, keys=installation.keys, now=ROLLOVER, actor="test",
                                             algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), "osaka")
    found = {(d.ca_name, d.list_type, d.generation) for d in duties(engine, ROLLOVER)}
    assert found == {("osaka", ListType.CRL, 1), ("osaka", ListType.ARL, 1)}
    scheduler.tick(ROLLOVER)
    assert set(_lists(engine, installation.data_dir, "osaka", ListType.CRL)) == {1, 2}
    # a day after the last subscriber certificate of key 1 (and its responder's) expired:
    # no CRL for key 1 any more; its cross and link certificates still need its ARL
    after = last_subscriber.replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    assert {(d.list_type, d.generation) for d in duties(engine, after)} == {(ListType.ARL, 1)}
    numbers_before = _lists(engine, installation.data_dir, "osaka", ListType.CRL)
    scheduler.tick(after)
    crls = _lists(engine, installation.data_dir, "osaka", ListType.CRL)
    assert crls[1] == numbers_before[1]  # nothing new from key 1
    assert crls[2][0] > numbers_before[2][0]
    assert _lists(engine, installation.data_dir, "osaka", ListType.ARL)[1][0] > numbers_before[2][0]
