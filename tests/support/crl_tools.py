"""Second opinions on CRLs and ARLs for tests: `openssl crl`, `openssl verify -crl_check_all`
and pkilint's `lint_crl`.

Same idea as support/tools.py (which covers certificates): the CRL bytes are written by
revoca's own encoder, so they are checked by implementations that share nothing with it.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import re
import subprocess
import tempfile
import textwrap
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pkilint.bin import lint_crl

from support.tools import CertLike, Finding, pem

# --- openssl --------------------------------------------------------------------------------


def crl_pem(der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n".encode()


def openssl_crl_verify(crl_der: bytes, issuer: CertLike) -> str:
    """`openssl crl -verify` against the issuer certificate; returns the `-text` dump."""
    with tempfile.TemporaryDirectory(prefix="revoca-crl-") as tmp:
        d = Path(tmp)
        (d / "crl.der").write_bytes(crl_der)
        (d / "ca.pem").write_bytes(pem(issuer))
        run = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(d / "crl.der"), "-CAfile",
                              str(d / "ca.pem"), "-noout", "-text"], capture_output=True, text=True, timeout=60,
                             check=False)
    if run.returncode != 0 or "verify OK" not in run.stderr:
        raise AssertionError(f"openssl crl -verify failed ({run.returncode}):\n{run.stdout}{run.stderr}")
    return run.stdout


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    ok: bool
    error: int | None  # OpenSSL's X509_V_ERR code, e.g. 23 for "certificate revoked"
    output: str


def openssl_verify_crls(cert: CertLike, *, trusted: Sequence[CertLike], untrusted: Sequence[CertLike] = (),
                        crls: Sequence[bytes], at: datetime) -> VerifyResult:
    """`openssl verify -crl_check_all -x509_strict` with the given CRLs (DER) at time `at`."""
    with tempfile.TemporaryDirectory(prefix="revoca-verify-crl-") as tmp:
        d = Path(tmp)
        (d / "trusted.pem").write_bytes(b"".join(pem(c) for c in trusted))
        (d / "crls.pem").write_bytes(b"".join(crl_pem(c) for c in crls))
        (d / "leaf.pem").write_bytes(pem(cert))
        args = ["openssl", "verify", "-x509_strict", "-crl_check_all", "-no-CApath", "-no-CAstore",
                "-CAfile", str(d / "trusted.pem"), "-CRLfile", str(d / "crls.pem"),
                "-attime", str(int(at.timestamp()))]
        if untrusted:
            (d / "untrusted.pem").write_bytes(b"".join(pem(c) for c in untrusted))
            args += ["-untrusted", str(d / "untrusted.pem")]
        run = subprocess.run([*args, str(d / "leaf.pem")], capture_output=True, text=True, timeout=60, check=False)
    output = run.stdout + run.stderr
    found = re.search(r"error (\d+) at \d+ depth", output)
    ok = run.returncode == 0 and run.stdout.rstrip().endswith(": OK")
    return VerifyResult(ok, int(found.group(1)) if found else None, output)


# --- pkilint ------------------------------------------------------------------------------


def pkilint_crl(der: bytes, list_type: str) -> list[Finding]:
    """Findings of `lint_crl lint -t CRL|ARL -p PKIX`, INFO and above, run in-process."""
    with tempfile.TemporaryDirectory(prefix="revoca-pkilint-crl-") as tmp:
        path = Path(tmp) / "crl.der"
        path.write_bytes(der)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            lint_crl.main(["lint", "-t", list_type.upper(), "-p", "PKIX", "-f", "JSON", "-s", "INFO",
                           "--document-format", "DER", str(path)])
    try:
        report = json.loads(out.getvalue())
    except json.JSONDecodeError as exc:
        raise AssertionError(f"pkilint gave no JSON report:\n{out.getvalue()}{err.getvalue()}") from exc
    return [Finding(f["severity"], f["code"], f.get("message"), result["node_path"], result["validator"])
            for result in report["results"] for f in result["finding_descriptions"]]
