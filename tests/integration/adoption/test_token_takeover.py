"""The previous system's own token taken over (issue 14): its user PIN, typed once at `revoca init
--adopt-token`, is replaced by the one derived from revoca's M-of-N activation secret.

The token is made by `softhsm2-util` with PINs of the previous system's choosing, its CA key and
lists by previous_system.py (python-pkcs11 and pyca/cryptography, nothing of revoca).  Afterwards
the old PIN no longer opens the token, the key managers' shares do, and the adopted key signs the
CA's next CRL, number 4,212, through the HSM service.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from ca.config import settings_from_dict
from ca.enums import Role
from ca.errors import TokenError
from ca.hsm import token_for
from ca.hsm.token import write_softhsm_conf

from support.cli import Cli, activate_in_process, start_hsm, stop_hsm
from support.officers import add_account, password_of

HERE = Path(__file__).parent
LABEL = "prev-hsm"
OLD_PIN = "previous-user-pin-4211"

pytestmark = pytest.mark.skipif(shutil.which("softhsm2-util") is None, reason="softhsm2-util not installed")


def test_the_previous_token_opens_with_the_key_managers_shares_only(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["REVOCA_HSM_TOKEN_LABEL"] = LABEL
    settings = settings_from_dict({"data_dir": str(cli.data), "hsm": {"token_label": LABEL}})
    write_softhsm_conf(settings.softhsm_conf)
    env = {**os.environ, "SOFTHSM2_CONF": str(settings.softhsm_conf)}
    # the previous system: its token, its PINs, its CA key and lists
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--so-pin", "previous-so-pin",
                    "--pin", OLD_PIN], env=env, check=True, capture_output=True, timeout=60)
    files = tmp_path / "previous-system"
    files.mkdir()
    (files / "user.pin").write_text(OLD_PIN, encoding="utf-8")
    subprocess.run([sys.executable, str(HERE / "previous_system.py"), settings.hsm.module, LABEL,
                    str(files / "user.pin"), str(files), "50"], env=env, check=True, timeout=300)
    try:
        out = cli.ok("init", "--demo", "--adopt-token", stdin=OLD_PIN + "\n")
        assert f"Token '{LABEL}' taken over" in out
        with pytest.raises(TokenError, match="refused"):
            token_for(settings).open(OLD_PIN).close()
        proc = start_hsm(cli)
        try:
            activate_in_process(cli, 1, 3)
            managers = ("keymanager1", "keymanager3")
            cli.ok("ca", "adopt", "kanagawa", "--certificate", str(files / "old-root.pem"), "--key-label",
                   "KANAGAWA-CA-2016", *(a for m in managers for a in ("--operator", m)),
                   stdin="".join(cli.password(m) + "\n" for m in managers))
            for name in ("senior-a", "senior-b"):
                add_account(cli.engine, name, Role.SENIOR_OPERATOR)
            seniors = ("--operator", "senior-a", "--operator", "senior-b")
            passwords = password_of("senior-a") + "\n" + password_of("senior-b") + "\n"
            cli.ok("crl", "import-history", "--ca", "kanagawa", "--crl", str(files / "last.crl"), "--arl",
                   str(files / "last.arl"), *seniors, stdin=passwords)
            cli.ok("crl", "issue", "--ca", "kanagawa", "--operator", "senior-a", stdin=password_of("senior-a") + "\n")
        finally:
            stop_hsm(proc)
        crl = x509.load_der_x509_crl((cli.data / "crls" / "kanagawa" / "crl" / "4212.crl").read_bytes())
        root = x509.load_pem_x509_certificate((files / "old-root.pem").read_bytes())
        assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
        assert len(crl) == 50
    finally:
        cli.close()
