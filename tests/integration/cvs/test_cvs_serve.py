"""`revoca serve cvs` as a process: gunicorn, the HSM service as the signer (its socket), the
answer verified by `openssl cms -verify` against the bridge root."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.config import TimeConfig
from ca.crl.issue import issue_list
from ca.cvs.app import ANSWER
from ca.cvs.request import DER
from ca.enums import CertKind, ListType
from ca.hsm.client import HSMClient
from ca.storage.engine import session_scope
from ca.storage.store import ReadStore
from ca.trusted_time import ClockGuard

from support.cli import REVOCA
from support.installation import CeremonyTemplates, Installation, serving_installation
from support.tools import free_port


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with serving_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("cvs-serve"),
                              prefix="rvcv") as made:
        yield made


def _post(url: str, body: bytes) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": DER}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_serve_cvs_answers_through_the_hsm_service(installation: Installation, tmp_path: Path) -> None:
    assert installation.socket is not None
    keys = HSMClient(installation.socket)
    try:
        issue_list(installation.engine, keys, installation.data_dir, "tokyo", ListType.CRL,
                   now=dt.datetime.now(dt.UTC), time_guard=ClockGuard(TimeConfig()))
    finally:
        keys.close()
    with session_scope(installation.engine) as session:
        store = ReadStore(session)
        (responder,) = store.certificates(issuer=store.ca("tokyo"), kinds=[CertKind.OCSP_RESPONDER])
        (bridge,) = store.certificates(issuer=store.bridge(), kinds=[CertKind.SELF_SIGNED])
        responder_der, bridge_der = responder.der, bridge.der
    (tmp_path / "bridge.pem").write_bytes(x509.load_der_x509_certificate(bridge_der).public_bytes(Encoding.PEM))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen([REVOCA, "serve", "cvs", "--port", str(port), "--workers", "1"],
                            env={**os.environ, **installation.env()}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, media, body = _post(url, responder_der)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert (status, media) == (200, ANSWER), (body[:300], output[-2000:])
    (tmp_path / "answer.p7").write_bytes(body)
    verified = subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "answer.p7"),
                               "-CAfile", str(tmp_path / "bridge.pem"), "-purpose", "any"],
                              capture_output=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stderr
    doc = json.loads(verified.stdout)
    assert doc["status"] == "valid", doc
    assert [p["subject"].split(",")[0] for p in doc["path"]] == ["CN=Governor of Tokyo", "CN=OCSP Responder tokyo"], doc
