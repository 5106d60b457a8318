"""`revoca ca adopt` with the previous system's responder, CVS and TLS certificates (issue 14).

The previous CA's key and its OCSP responder's key are made in the token under the previous
system's labels; its certificates are made outside revoca's hierarchy code.  Adoption checks each
server certificate (issuer, signature, EKU, key in the token) before anything is stored, relabels
the responder key so that the signer lets OCSP use it, and records a TLS certificate whose key
revoca does not hold as a certificate only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ca.adoption.adopt import AdoptionRequest, ServerCertificate, adopt
from ca.enums import CAKind, CertKind
from ca.errors import InvalidInput, NotFound
from ca.hsm.policy import KeyUse, key_use
from ca.hsm.signer import KeyAlgorithm
from ca.issuance import Issuer, issue, key_identifier
from ca.storage.adoption import AdoptionStore
from ca.storage.authorities import spki_der
from ca.storage.engine import session_scope
from ca.storage.reporting import ReportingReads
from ca.storage.store import Store

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
NAME = x509.Name.from_rfc4514_string("CN=Governor of Shiga,OU=Shiga,OU=Prefectural CA,O=JPKI,C=JP")


@pytest.fixture
def installation(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path / "site") as made:
        yield made


def _previous_system(made: Installation) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    """(self-signed, OCSP responder with its key in the token as PREV-RESP, TLS whose key is elsewhere)."""
    keys = made.keys
    assert keys is not None
    public = keys.generate("PREV-CA", KeyAlgorithm.P256)
    issuer = Issuer(name=NAME, signer=keys.signer("PREV-CA"), key_id=key_identifier(public))
    root = issue(CertKind.SELF_SIGNED, issuer=issuer, subject=NAME, public_key=public,  # type: ignore[arg-type]
                 not_before=NOW - dt.timedelta(days=400), time_guard=NO_NTP)
    responder_public = keys.generate("PREV-RESP", KeyAlgorithm.P256)
    responder = issue(CertKind.OCSP_RESPONDER, issuer=issuer,
                      subject=x509.Name.from_rfc4514_string("CN=OCSP Responder shiga,O=JPKI,C=JP"),
                      public_key=responder_public, not_before=NOW - dt.timedelta(days=30), time_guard=NO_NTP)  # type: ignore[arg-type]
    tls = issue(CertKind.TLS, issuer=issuer, subject=x509.Name.from_rfc4514_string("CN=shiga.localhost,O=JPKI,C=JP"),
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(), not_before=NOW - dt.timedelta(days=1),
                dns_names=("shiga.localhost",), time_guard=NO_NTP)
    return root, responder, tls


def _request(root: x509.Certificate, *servers: ServerCertificate) -> AdoptionRequest:
    return AdoptionRequest(name="shiga", kind=CAKind.REGIONAL, certificate=root, key_label="PREV-CA", servers=servers)


def test_responder_and_tls_certificates_are_checked_then_adopted(installation: Installation) -> None:
    engine, keys = installation.engine, installation.keys
    assert keys is not None
    root, responder, tls = _previous_system(installation)

    # a TLS certificate given as a responder lacks id-kp-OCSPSigning; a responder with another key: refused,
    # and nothing is recorded
    for wrong, match in ((ServerCertificate(CertKind.OCSP_RESPONDER, tls), r"lacks the extended key usage "
                          r"1.3.6.1.5.5.7.3.9"),
                         (ServerCertificate(CertKind.OCSP_RESPONDER, responder, key_label="PREV-CA"),
                          r"is not the key of ocsp-responder certificate .*: their public keys differ")):
        with pytest.raises(InvalidInput, match=match), session_scope(engine) as s:
            adopt(AdoptionStore(s), keys, _request(root, wrong), now=NOW, actor="test", time_guard=NO_NTP)
        with session_scope(engine) as s:
            assert "shiga" not in {c.name for c in Store(s).cas()}
    assert keys.find_key(label="PREV-CA").label == "PREV-CA"

    request = _request(root, ServerCertificate(CertKind.OCSP_RESPONDER, responder, key_label="PREV-RESP"),
                       ServerCertificate(CertKind.TLS, tls))
    with session_scope(engine) as s:
        result = adopt(AdoptionStore(s), keys, request, now=NOW, actor="test", time_guard=NO_NTP)
    assert result.changed and result.certificates == 3
    with session_scope(engine) as s:
        store = Store(s)
        shiga = store.ca("shiga")
        (stored_responder,) = store.certificates(issuer=shiga, kinds=[CertKind.OCSP_RESPONDER])
        (stored_tls,) = store.certificates(issuer=shiga, kinds=[CertKind.TLS])
        assert stored_responder.serial == responder.serial_number and stored_tls.key_label is None
        label = stored_responder.key_label
        assert label is not None and label.startswith("ocsp-responder/shiga/1/adopted-")
        coverage = {(c.ca_name, c.generation): c.serial for c in ReportingReads(s).responder_coverage(NOW)}
    # the responder's key now carries revoca's label: the signer lets OCSP sign with it
    assert keys.find_key(label=label).spki == spki_der(responder.public_key())
    with pytest.raises(NotFound):
        keys.find_key(label="PREV-RESP")
    assert key_use(label) is KeyUse.OCSP_RESPONDER
    assert coverage[("shiga", 1)] == responder.serial_number
    # the same adoption again changes nothing
    with session_scope(engine) as s:
        again = adopt(AdoptionStore(s), keys, request, now=NOW, actor="test", time_guard=NO_NTP)
    assert not again.changed
