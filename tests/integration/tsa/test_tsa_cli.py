"""`revoca tsa certificate|stamp|verify` through the console script, with a real HSM service; openssl checks."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from support.cli import Cli, activate_in_process, demo_cli, start_hsm, stop_hsm
from support.installation import CeremonyTemplates


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, ceremony_templates: CeremonyTemplates) -> Iterator[Cli]:
    """A copy of the demo ceremony with the HSM service running and activated, but no TSA certificate yet
    (what `init --demo` prints about the TSA is checked in tests/integration/ca/test_cli.py)."""
    with demo_cli(ceremony_templates, "sqlite", tmp_path_factory.mktemp("tsa-cli")) as c:
        proc = start_hsm(c)
        try:
            activate_in_process(c, 1, 2)
            yield c
        finally:
            stop_hsm(proc)


def _openssl_check(line: str) -> None:
    """Run the `check: openssl ts -verify ...` line `revoca tsa stamp` prints."""
    command = line.split("check: ", 1)[1]
    run = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and "Verification: OK" in run.stdout, run.stdout + run.stderr


def test_stamp_before_there_is_a_tsa_certificate_is_one_error_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    cli.fails("tsa", "stamp", str(tmp_path / "f.txt"), code=3,
              match=r"no valid time-stamp authority certificate; issue one with `revoca tsa certificate")


def test_certificate_needs_two_key_managers_with_their_passwords(cli: Cli) -> None:
    cli.fails("tsa", "certificate", login=cli.cast.login("keymanager1"), code=8,
              match=r"needs 2 different people \(2 × key-manager\); 1 logged in")
    wrong = cli.cast.login("keymanager1", "keymanager2")._replace(stdin="wrong password\n")
    cli.fails("tsa", "certificate", login=wrong, code=8,
              match=r"operator 'keymanager1': unknown, disabled or wrong password")


@pytest.mark.slow
def test_certificate_stamp_verify_and_renew(cli: Cli, tmp_path: Path) -> None:
    out = cli.ok("tsa", "certificate")  # two key managers log in (support.cli)
    first = re.search(r"^issued TSA certificate ([0-9a-f]+) \(CN=Time-Stamp Authority,", out, re.M)
    assert first, out
    assert re.search(r"^current TSA certificate " + first.group(1),
                     cli.ok("tsa", "certificate"), re.M)
    tsa_pem = cli.data / "tsa" / "tsa.pem"
    assert format(x509.load_pem_x509_certificate(tsa_pem.read_bytes()).serial_number, "x") == first.group(1)

    doc = tmp_path / "minutes.pdf"
    doc.write_bytes(b"%PDF- not really\n" * 1000)
    out = cli.ok("tsa", "stamp", str(doc), "--hash", "sha384")
    assert re.search(rf"^time-stamp [0-9a-f]+ at \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z -> {doc}.tsr$", out, re.M)
    _openssl_check(next(ln for ln in out.splitlines() if ln.startswith("check: ")))
    assert re.search(r"^OK: .*minutes\.pdf was stamped at ", cli.ok("tsa", "verify", str(doc), "--in",
                                                                      f"{doc}.tsr"), re.M)

    old_reply = tmp_path / "old.tsr"
    old_reply.write_bytes(Path(f"{doc}.tsr").read_bytes())
    doc.write_bytes(doc.read_bytes() + b"edited\n")
    cli.fails("tsa", "verify", str(doc), "--in", str(old_reply), code=5, match=r"imprint mismatch")

    out = cli.ok("tsa", "certificate", "--renew")
    second = re.search(r"^issued TSA certificate ([0-9a-f]+) ", out, re.M)
    assert second and second.group(1) != first.group(1), out
    out = cli.ok("tsa", "stamp", str(doc), "--out", str(tmp_path / "new.tsr"))
    _openssl_check(next(ln for ln in out.splitlines() if ln.startswith("check: ")))
    # the earlier token names the earlier certificate: checked against the new one it is refused by name
    doc.write_bytes(doc.read_bytes()[: -len(b"edited\n")])
    cli.fails("tsa", "verify", str(doc), "--in", str(old_reply), code=5,
              match=r"wrong certificate: the token's signingCertificateV2 names another TSA certificate")


def test_stamp_of_a_missing_directory_is_one_error_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    cli.fails("tsa", "stamp", str(tmp_path / "f.txt"), "--out", str(tmp_path / "nowhere" / "f.tsr"), code=5,
              match=r"directory .*nowhere does not exist")
