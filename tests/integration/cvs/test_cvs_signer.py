"""The `cvs` identity gets validation answers signed with the CVS-server key, and nothing else.

The HSM service runs in this process (root, the admin) and the callers are real other Unix users
connecting to its socket (`setpriv`; support.signer_policy, shared with
tests/integration/isolation/test_signer_policy.py): a taken-over validation server must not be a
signing oracle for receipts, time stamps, certificates or lists, nor sign its answers with a CA key.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.cvs.answer import CVS_ANSWER, Answer, Status
from ca.cvs.signed import sign_answer
from ca.enums import CertKind
from ca.hsm.policy import Caller, Signed, SigningPolicy, classify, key_use
from ca.hsm.signer import SoftwareSigner
from ca.storage.engine import session_scope
from ca.storage.models import Certificate
from ca.storage.store import ReadStore

from support.installation import CeremonyTemplates, Installation, demo_installation
from support.signer_policy import ask, b64, evil_sub_ca_tbs, policy_service, refused_calls, signed_attributes
from support.tools import as_other_users

pytestmark = as_other_users

AS = {Caller.CVS: "games", Caller.RA: "man"}
TST_INFO = "1.2.840.113549.1.9.16.1.4"


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("cvs-signer"),
                           with_keys=False) as made:
        yield made


@pytest.fixture(scope="module")
def sock(installation: Installation) -> Iterator[Path]:
    with policy_service(installation, AS, prefix="rvcvs") as (_, path):
        yield path


def _labels(installation: Installation) -> dict[str, str]:
    with session_scope(installation.engine, readonly=True) as s:
        store = ReadStore(s)
        bridge = store.ca("bridge")
        rows = s.scalars(sa.select(Certificate).where(Certificate.key_label.is_not(None),
                                                      Certificate.issuer_ca_id == bridge.id)).all()
        by_kind = {r.kind: r.key_label for r in rows}
        return {"bridge": store.current_key(bridge).key_label, "cvs": by_kind[CertKind.CVS_SERVER],
                "receipt": by_kind[CertKind.RECEIPT_SIGNER]}  # type: ignore[dict-item]


def test_the_signed_attributes_of_an_answer_are_classified_as_a_cvs_answer() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CVS Server")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    seen: list[bytes] = []

    class Recording(SoftwareSigner):  # a software key that keeps what it was asked to sign
        def sign(self, data: bytes) -> bytes:
            seen.append(data)
            return super().sign(data)

    sign_answer(Answer(Status.VALID, cert, now).encode(), certificate=cert,
                signer=Recording(key, "cvs-server/bridge/1/00"), now=now)
    (to_sign,) = seen
    assert classify(to_sign) is Signed.CVS_ANSWER
    assert classify(signed_attributes(TST_INFO)) is Signed.TIME_STAMP
    assert classify(signed_attributes("data")) is Signed.RECEIPT
    policy = SigningPolicy()
    assert policy.allowed(Caller.CVS, Signed.CVS_ANSWER, key_use("cvs-server/bridge/1/00"))
    assert not policy.allowed(Caller.CVS, Signed.RECEIPT, key_use("cvs-server/bridge/1/00"))
    assert not policy.allowed(Caller.RA, Signed.CVS_ANSWER, key_use("receipt-signer/bridge/1/00"))


def test_the_cvs_identity_signs_answers_with_its_key_and_nothing_else(installation: Installation,
                                                                      sock: Path) -> None:
    labels = _labels(installation)
    results = ask(sock, AS[Caller.CVS], [
        ("an answer with the CVS key", "sign", {"label": labels["cvs"], "data": b64(signed_attributes(CVS_ANSWER))}),
        ("an answer with the bridge key", "sign", {"label": labels["bridge"],
                                                   "data": b64(signed_attributes(CVS_ANSWER))}),
        ("an answer with the receipt key", "sign", {"label": labels["receipt"],
                                                    "data": b64(signed_attributes(CVS_ANSWER))}),
        ("a receipt with the CVS key", "sign", {"label": labels["cvs"], "data": b64(signed_attributes("data"))}),
        ("a time stamp with the CVS key", "sign", {"label": labels["cvs"], "data": b64(signed_attributes(TST_INFO))}),
        ("a certificate with the bridge key", "sign", {"label": labels["bridge"], "data": b64(evil_sub_ca_tbs())}),
        ("a certificate with the CVS key", "sign", {"label": labels["cvs"], "data": b64(evil_sub_ca_tbs())}),
        ("raw bytes with the CVS key", "sign", {"label": labels["cvs"], "data": b64(b"valid")}),
        ("a digest with the CVS key", "sign_digest", {"label": labels["cvs"], "digest": b64(os.urandom(32))}),
        ("a new key", "generate", {"label": "cvs-server/bridge/9/00", "algorithm": "p256"}),
    ])
    assert results["an answer with the CVS key"] == "ok", results
    assert refused_calls(results) == set(results) - {"an answer with the CVS key"}, results
    # and the RA, whose receipts are CMS signed attributes too, cannot have an answer signed
    ra = ask(sock, AS[Caller.RA], [
        ("an answer with the receipt key", "sign", {"label": labels["receipt"],
                                                    "data": b64(signed_attributes(CVS_ANSWER))}),
        ("an answer with the CVS key", "sign", {"label": labels["cvs"], "data": b64(signed_attributes(CVS_ANSWER))}),
        ("a receipt", "sign", {"label": labels["receipt"], "data": b64(signed_attributes("data"))}),
    ])
    assert refused_calls(ra) == {"an answer with the receipt key", "an answer with the CVS key"}, ra
