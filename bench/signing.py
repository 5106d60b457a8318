"""Signatures per second: through the PKCS#11 token in process, through the HSM service's
socket, and OpenSSL (`openssl speed`) on the same machine in the same run.

    .venv/bin/python bench/signing.py [--algorithm rsa2048] [--seconds 3]

Last line: `signing alg=A token_sps=X service_sps=Y openssl_sps=Z`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from ca.config import SOFTHSM_MODULE, settings_from_dict
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import Token

OPENSSL_NAMES = {"rsa2048": "rsa2048", "rsa3072": "rsa3072", "rsa4096": "rsa4096", "p256": "ecdsap256",
                 "p384": "ecdsap384"}


def rate(sign, seconds: float) -> float:  # type: ignore[no-untyped-def]
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        sign(b"x" * 300)  # about the size of a small TBSCertificate or OCSP ResponseData
        n += 1
    return n / elapsed


def openssl_rate(algorithm: str, seconds: int) -> float:
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), OPENSSL_NAMES[algorithm]],
                         capture_output=True, text=True, check=True).stdout
    # "rsa 2048 bits 0.000577s 0.000017s   1733.0  58823.5": sign/s is the first rate
    line = next(ln for ln in out.splitlines() if re.match(r"^\s*(rsa|\d+ bits ecdsa)", ln) and "/s" not in ln)
    return float(line.split()[-2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithm", default="rsa2048", choices=[a.value for a in KeyAlgorithm])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    algorithm = KeyAlgorithm(args.algorithm)
    with tempfile.TemporaryDirectory(prefix="rvbench") as tmp:
        settings = settings_from_dict({"data_dir": tmp})
        token = Token(SOFTHSM_MODULE, "bench", softhsm_conf=settings.softhsm_conf)
        token.initialize_softhsm(so_pin="bench-so-pin", user_pin="bench-user-pin")
        session = token.open("bench-user-pin")
        session.generate("k", algorithm)
        token_sps = rate(session.signer("k").sign, args.seconds)
        service_sps = _service_rate(token, session, Path(tmp), args.seconds)
        session.close()
    openssl_sps = openssl_rate(algorithm.value, max(1, int(args.seconds)))
    print(f"{'path':<28}{'signs/s':>10}")
    print(f"{'PKCS#11 token, in process':<28}{token_sps:>10.0f}")
    print(f"{'HSM service socket':<28}{service_sps:>10.0f}")
    print(f"{'openssl speed (1 core)':<28}{openssl_sps:>10.0f}")
    print(f"signing alg={algorithm.value} token_sps={token_sps:.0f} service_sps={service_sps:.0f} "
          f"openssl_sps={openssl_sps:.0f}")


def _service_rate(token: Token, session, tmp: Path, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """The socket path without a database: a service object whose activation is the open session."""
    from ca.hsm.activation import Activation, ShareSetInfo
    from ca.hsm.client import HSMClient
    from ca.hsm.service import HSMService, serve_in_thread

    service = HSMService.__new__(HSMService)
    service.engine = None  # type: ignore[assignment]
    service.activation = Activation(token, ShareSetInfo(0, 2, 3, ()))
    service.activation._session = session  # already open: measure signing, not activation
    server, _ = serve_in_thread(tmp / "hsm.sock", service)
    client = HSMClient(tmp / "hsm.sock")
    try:
        return rate(client.signer("k").sign, seconds)
    finally:
        client.close()
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
