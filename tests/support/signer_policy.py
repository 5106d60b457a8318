"""The HSM service with real other Unix users as its callers, for the tests of what each service
identity may have signed (issue 12): tests/integration/isolation/test_signer_policy.py and
tests/integration/cvs/test_cvs_signer.py.

The service runs in the test process (root, the admin); existing system users stand in for the
service identities and reach its socket through `setpriv`, in the socket's group, each call from a
process of its own, so the service learns who calls from the socket as in production (needs root).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.hsm import token_for
from ca.hsm.callers import CallerMap
from ca.hsm.client import HSMClient
from ca.hsm.ledger import SignatureLedger
from ca.hsm.policy import Caller, SigningPolicy
from ca.hsm.service import HSMService, serve_in_thread

from support.installation import Installation

SOCKET_GROUP = "daemon"  # every caller's group: the socket's

# One connection per process; each call's outcome, or the RevocaError it raised, by name.
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

Call = tuple[str, str, dict[str, str]]  # (name, op, fields)


@contextlib.contextmanager
def policy_service(installation: Installation, users: Mapping[Caller, str],
                   *, prefix: str) -> Iterator[tuple[HSMService, Path]]:
    """The HSM service of `installation`, activated with two shares, that knows `users` (a caller ->
    system user map; Caller.UNKNOWN's user stays unknown to it) as those callers and root as admin."""
    callers = CallerMap({pwd.getpwnam(user).pw_uid: caller for caller, user in users.items()
                         if caller is not Caller.UNKNOWN}, frozenset({0}))
    made = HSMService(token_for(installation.settings), installation.engine, policy=SigningPolicy(),
                      callers=callers, ledger=SignatureLedger(installation.engine, thread=False))
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(directory, 0o755)
    sock = directory / "run" / "hsm.sock"
    server, _thread = serve_in_thread(sock, made, clients_gid=1)
    try:
        client = HSMClient(sock)
        for _, share in installation.result.shares[:2]:
            client.activate(share.encode())  # type: ignore[attr-defined]
        client.close()
        yield made, sock
    finally:
        server.shutdown()
        server.server_close()
        made.close()
        shutil.rmtree(directory, ignore_errors=True)


def run_as(user: str, script: str, sock: Path, payload: object) -> dict[str, str]:
    """`script` run by a process of `user` (in the socket's group) with `payload` as JSON on stdin;
    its stdout, a JSON object."""
    proc = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={SOCKET_GROUP}", "--clear-groups",
                           sys.executable, "-c", script, str(sock)], input=json.dumps(payload), capture_output=True,
                          text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    result: dict[str, str] = json.loads(proc.stdout)
    return result


def ask(sock: Path, user: str, calls: list[Call]) -> dict[str, str]:
    """Each call made by a process of `user` over its own connection: "ok" or the error, by name."""
    return run_as(user, CLIENT, sock, calls)


def refused_calls(results: dict[str, str]) -> set[str]:
    return {name for name, got in results.items() if got.startswith("PermissionDenied")}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed_attributes(content_type: str) -> bytes:
    """A CMS signed-attributes SET OF (RFC 5652 5.3) over some content of `content_type`."""
    return bytes(cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
        cms.CMSAttribute({"type": "message_digest", "values": [os.urandom(32)]}),
    ]).dump())


def evil_sub_ca_tbs() -> bytes:
    """The TBSCertificate of the attack: a CA certificate no service may have signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Evil Sub CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.tbs_certificate_bytes
