"""The `cvs` identity gets validation answers signed with the CVS-server key, and nothing else.

The HSM service runs in this process (root, the admin) and the callers are real other Unix users
connecting to its socket (`setpriv`), as in tests/integration/isolation/test_signer_policy.py:
a taken-over validation server must not be a signing oracle for receipts, time stamps,
certificates or lists, nor sign its answers with a CA key.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import pwd
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.cvs.answer import CVS_ANSWER, Answer, Status
from ca.cvs.signed import sign_answer
from ca.enums import CertKind
from ca.hsm import token_for
from ca.hsm.callers import CallerMap
from ca.hsm.client import HSMClient
from ca.hsm.ledger import SignatureLedger
from ca.hsm.policy import Caller, Signed, SigningPolicy, classify, key_use
from ca.hsm.service import HSMService, serve_in_thread
from ca.hsm.signer import SoftwareSigner
from ca.storage.engine import session_scope
from ca.storage.models import Certificate
from ca.storage.store import ReadStore

from support.installation import CeremonyTemplates, Installation, demo_installation

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as other users (setpriv)")

AS = {Caller.CVS: "games", Caller.RA: "man"}
SOCKET_GROUP = "daemon"
TST_INFO = "1.2.840.113549.1.9.16.1.4"

CLIENT = r"""
import json, sys
from ca.errors import RevocaError
from ca.hsm.client import HSMClient
client = HSMClient(sys.argv[1], timeout=30)
results = {}
for name, op, fields in json.load(sys.stdin):
    try:
        client.call(op, **fields)
        results[name] = "ok"
    except RevocaError as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("cvs-signer"),
                           with_keys=False) as made:
        yield made


@pytest.fixture(scope="module")
def sock(installation: Installation) -> Iterator[Path]:
    callers = CallerMap({pwd.getpwnam(user).pw_uid: caller for caller, user in AS.items()}, frozenset({0}))
    made = HSMService(token_for(installation.settings), installation.engine, policy=SigningPolicy(),
                      callers=callers, ledger=SignatureLedger(installation.engine, thread=False))
    directory = Path(tempfile.mkdtemp(prefix="rvcvs"))
    os.chmod(directory, 0o755)
    path = directory / "run" / "hsm.sock"
    server, _thread = serve_in_thread(path, made, clients_gid=1)
    client = HSMClient(path)
    for _, share in installation.result.shares[:2]:
        client.activate(share.encode())  # type: ignore[attr-defined]
    client.close()
    yield path
    server.shutdown()
    server.server_close()
    made.close()


def _labels(installation: Installation) -> dict[str, str]:
    with session_scope(installation.engine, readonly=True) as s:
        store = ReadStore(s)
        bridge = store.ca("bridge")
        rows = s.scalars(sa.select(Certificate).where(Certificate.key_label.is_not(None),
                                                      Certificate.issuer_ca_id == bridge.id)).all()
        by_kind = {r.kind: r.key_label for r in rows}
        return {"bridge": store.current_key(bridge).key_label, "cvs": by_kind[CertKind.CVS_SERVER],
                "receipt": by_kind[CertKind.RECEIPT_SIGNER]}  # type: ignore[dict-item]


def _attributes(content_type: str) -> bytes:
    return cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
        cms.CMSAttribute({"type": "message_digest", "values": [os.urandom(32)]}),
    ]).dump()


def _certificate_tbs() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Evil Sub CA")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())).tbs_certificate_bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ask(sock: Path, user: str, calls: list[tuple[str, str, dict[str, str]]]) -> dict[str, str]:
    proc = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={SOCKET_GROUP}", "--clear-groups",
                           sys.executable, "-c", CLIENT, str(sock)], input=json.dumps(calls), capture_output=True,
                          text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _refused(results: dict[str, str]) -> set[str]:
    return {name for name, got in results.items() if got.startswith("PermissionDenied")}


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
    assert classify(_attributes(TST_INFO)) is Signed.TIME_STAMP and classify(_attributes("data")) is Signed.RECEIPT
    policy = SigningPolicy()
    assert policy.allowed(Caller.CVS, Signed.CVS_ANSWER, key_use("cvs-server/bridge/1/00"))
    assert not policy.allowed(Caller.CVS, Signed.RECEIPT, key_use("cvs-server/bridge/1/00"))
    assert not policy.allowed(Caller.RA, Signed.CVS_ANSWER, key_use("receipt-signer/bridge/1/00"))


def test_the_cvs_identity_signs_answers_with_its_key_and_nothing_else(installation: Installation,
                                                                      sock: Path) -> None:
    labels = _labels(installation)
    results = ask(sock, AS[Caller.CVS], [
        ("an answer with the CVS key", "sign", {"label": labels["cvs"], "data": _b64(_attributes(CVS_ANSWER))}),
        ("an answer with the bridge key", "sign", {"label": labels["bridge"],
                                                   "data": _b64(_attributes(CVS_ANSWER))}),
        ("an answer with the receipt key", "sign", {"label": labels["receipt"],
                                                    "data": _b64(_attributes(CVS_ANSWER))}),
        ("a receipt with the CVS key", "sign", {"label": labels["cvs"], "data": _b64(_attributes("data"))}),
        ("a time stamp with the CVS key", "sign", {"label": labels["cvs"], "data": _b64(_attributes(TST_INFO))}),
        ("a certificate with the bridge key", "sign", {"label": labels["bridge"], "data": _b64(_certificate_tbs())}),
        ("a certificate with the CVS key", "sign", {"label": labels["cvs"], "data": _b64(_certificate_tbs())}),
        ("raw bytes with the CVS key", "sign", {"label": labels["cvs"], "data": _b64(b"valid")}),
        ("a digest with the CVS key", "sign_digest", {"label": labels["cvs"], "digest": _b64(os.urandom(32))}),
        ("a new key", "generate", {"label": "cvs-server/bridge/9/00", "algorithm": "p256"}),
    ])
    assert results["an answer with the CVS key"] == "ok", results
    assert _refused(results) == set(results) - {"an answer with the CVS key"}, results
    # and the RA, whose receipts are CMS signed attributes too, cannot have an answer signed
    ra = ask(sock, AS[Caller.RA], [
        ("an answer with the receipt key", "sign", {"label": labels["receipt"],
                                                    "data": _b64(_attributes(CVS_ANSWER))}),
        ("an answer with the CVS key", "sign", {"label": labels["cvs"], "data": _b64(_attributes(CVS_ANSWER))}),
        ("a receipt", "sign", {"label": labels["receipt"], "data": _b64(_attributes("data"))}),
    ])
    assert _refused(ra) == {"an answer with the receipt key", "an answer with the CVS key"}, ra
