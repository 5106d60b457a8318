"""Taking over a CA revoca did not make (issue 14), as its check describes.

The previous system is made by previous_system.py in a process of its own, with python-pkcs11
and pyca/cryptography only: its RSA key pair generated in the SoftHSM2 token, a self-signed
certificate with its own key identifier scheme, subscriber certificates, CRL number 4,211 with
10,000 entries and ARL number 977, signed through the token.  Then, with the `revoca` command
as the officers run it: `ca adopt` (key managers) and `crl import-history` (two senior
operators); revoca's next CRL is number 4,212 with exactly those entries plus a new one, and
verifies with `openssl crl -verify` and `openssl verify -crl_check` under the old self-signed
certificate; OCSP answers the imported revocations with their original time and reason.

The tests of this module build on each other in file order (one previous system, one adoption).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from ca.ceremony import read_share_file
from ca.enums import CAStatus, CertKind, ListType
from ca.hsm import shares as sharing
from ca.hsm.client import HSMClient
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate, CertificateAuthority, CRLCounter, KeyGeneration, Revocation
from ca.storage.revocations import RevocationStore
from ca.verifiers.registry import add_verifier
from ocsp.responder import Responder

from support.cli import Cli, activate_in_process, demo_cli, start_hsm, stop_hsm
from support.clock import NO_NTP
from support.installation import CeremonyTemplates
from support.officers import Cast, standard_cast
from support.settings import LDAP_BASE, make_settings
from support.tools import court_certificate, ocsp_request

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
CA = "kanagawa"
ENTRIES = 10_000


@dataclasses.dataclass
class Previous:
    cli: Cli
    cast: Cast
    files: Path
    entries: dict[int, tuple[dt.datetime, int]]  # what last.crl holds, serial -> (date, reason)

    def run(self, *argv: str, stdin: str = "") -> str:
        """`revoca ARGV` by the officers its row in ca.cli.acts names; its stdout."""
        args, text = self.cast.for_command(argv).into(argv, stdin)
        return self.cli.ok(*args, stdin=text)

    def refused(self, *argv: str, code: int | None, match: str) -> str:
        args, text = self.cast.for_command(argv).into(argv)
        return self.cli.fails(*args, code=code, match=match, stdin=text)

    def file(self, name: str) -> str:
        return str(self.files / name)


@pytest.fixture(scope="module")
def previous(ceremony_templates: CeremonyTemplates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Previous]:
    """A demo installation whose token also holds the previous system's CA key (as when a CA's key
    moves into revoca's HSM), that system's files, and the HSM service running, activated."""
    root = tmp_path_factory.mktemp("adoption")
    with demo_cli(ceremony_templates, "sqlite", root) as cli:
        settings = make_settings(root, cli.env["REVOCA_DATABASE_URL"])
        files = root / "previous-system"
        files.mkdir()
        secret = sharing.combine([sharing.parse_share(read_share_file(cli.share_file(i))) for i in (1, 2)])
        pin_file = files / "user.pin"  # how the previous system's operator typed it: from a file
        pin_file.touch(mode=0o600)
        pin_file.write_text(sharing.user_pin(secret), encoding="utf-8")
        env = {**os.environ, "SOFTHSM2_CONF": str(settings.softhsm_conf)}
        subprocess.run([sys.executable, str(HERE / "previous_system.py"), settings.hsm.module,
                        settings.hsm.token_label, str(pin_file), str(files), str(ENTRIES)],
                       env=env, check=True, timeout=300)
        pin_file.unlink()
        entries = {int(s, 16): (dt.datetime.fromisoformat(w), r)
                   for s, w, r in json.loads((files / "entries.json").read_text(encoding="utf-8"))}
        proc = start_hsm(cli)
        try:
            activate_in_process(cli, 1, 2)
            yield Previous(cli, standard_cast(cli.shares_dir), files, entries)
        finally:
            stop_hsm(proc)


def _adopt(previous: Previous, *extra: str) -> tuple[str, ...]:
    return ("ca", "adopt", CA, "--certificate", previous.file("old-root.pem"), *extra)


def _cert(previous: Previous, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((previous.files / name).read_bytes())


def _count(previous: Previous, model: type, *where: object) -> int:
    with session_scope(previous.cli.engine) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def _ca_row(previous: Previous) -> CertificateAuthority:
    with session_scope(previous.cli.engine) as s:
        ca = s.scalar(sa.select(CertificateAuthority).where(CertificateAuthority.name == CA))
        assert ca is not None
        s.expunge(ca)
        return ca


def test_adopt_refuses_a_key_that_is_not_the_certificates(previous: Previous) -> None:
    previous.refused(*_adopt(previous, "--key-label", "KANAGAWA-SPARE"), code=5, match="public keys differ")
    assert _count(previous, CertificateAuthority, CertificateAuthority.name == CA) == 0
    previous.refused(*_adopt(previous, "--key-label", "NO-SUCH-KEY"), code=3, match="no private key labelled")


def test_adopt_records_the_ca_with_its_key_where_it_is(previous: Previous) -> None:
    out = previous.run(*_adopt(previous, "--key-id", "4211"))
    assert "CA kanagawa adopted: key 'KANAGAWA-CA-2016' is now 'ca/kanagawa/1/adopted-0a0b0c0d0e0f1011'" in out
    ca = _ca_row(previous)
    assert ca.status is CAStatus.ADOPTING
    assert ca.subject_dn == _cert(previous, "old-root.pem").subject.rfc4514_string()
    with session_scope(previous.cli.engine) as s:
        key = s.scalar(sa.select(KeyGeneration).where(KeyGeneration.ca_id == ca.id))
        assert key is not None and key.key_label == "ca/kanagawa/1/adopted-0a0b0c0d0e0f1011"
        assert key.ski == bytes.fromhex("0a0b0c0d0e0f1011")  # the CA's own identifier: its subjects' AKI finds it
        own = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == ca.id,
                                                        Certificate.kind == CertKind.SELF_SIGNED))
        assert own == _cert(previous, "old-root.pem").public_bytes(serialization.Encoding.DER)
        adopted = s.scalar(sa.select(AuditEvent).where(AuditEvent.event_type == "ca.adopted",
                                                       AuditEvent.result == "success"))
        assert adopted is not None and adopted.actor == "keymanager1+keymanager2"
    # the key stayed in the token, under revoca's label, and signs through the HSM service
    client = HSMClient(previous.cli.socket)
    try:
        found = client.find_key(key_id=bytes.fromhex("4211"))
        assert found.label == "ca/kanagawa/1/adopted-0a0b0c0d0e0f1011" and not found.extractable
    finally:
        client.close()


def test_adopting_again_changes_nothing_and_a_different_adoption_is_refused(previous: Previous) -> None:
    assert "already adopted with this key and these certificates; nothing changed" in previous.run(
        *_adopt(previous, "--key-label", "KANAGAWA-CA-2016"))
    previous.refused(*_adopt(previous, "--key-id", "4211", "--kind", "bridge"), code=4,
                     match="already recorded as a regional CA, not bridge")
    previous.refused("ca", "adopt", CA, "--certificate", previous.file("revoked.pem"), "--key-id", "4211", code=5,
                     match="is not self-signed")


def test_no_list_is_issued_before_the_history_is_imported(previous: Previous) -> None:
    args, stdin = previous.cast.for_command(["crl", "issue"]).into(["crl", "issue", "--ca", CA])
    proc = previous.cli.run(*args, stdin=stdin)
    assert proc.returncode == 5 and "Traceback" not in proc.stderr, proc
    assert "revoca: error: kanagawa CRL: not issued: CA kanagawa is being adopted" in proc.stderr, proc
    assert _count(previous, CRLCounter, CRLCounter.ca_id == _ca_row(previous).id) == 0


def test_import_refuses_a_crl_the_adopted_key_did_not_sign(previous: Previous) -> None:
    previous.refused("crl", "import-history", "--ca", CA, "--crl", previous.file("foreign.crl"), code=5,
                     match="signature does not verify under CA kanagawa's adopted certificate")
    assert _count(previous, Revocation, Revocation.issuer_ca_id == _ca_row(previous).id) == 0


def test_import_refuses_certificate_hold_naming_the_serial(previous: Previous) -> None:
    line = previous.refused("crl", "import-history", "--ca", CA, "--crl", previous.file("hold.crl"),
                            "--no-previous-arl", code=5, match="1 entry refused, nothing imported")
    assert "serial 0xc0002: reason certificateHold (6) is refused: no suspension" in line
    assert _count(previous, Revocation, Revocation.issuer_ca_id == _ca_row(previous).id) == 0
    assert _ca_row(previous).status is CAStatus.ADOPTING


def test_import_takes_every_entry_exactly(previous: Previous) -> None:
    out = previous.run("crl", "import-history", "--ca", CA, "--crl", previous.file("last.crl"),
                       "--arl", previous.file("last.arl"))
    assert f"kanagawa CRL #4211: {ENTRIES} entries" in out and "kanagawa ARL #977: 2 entries" in out
    assert f"{ENTRIES + 2} revocations in the history, {ENTRIES + 2} added now" in out
    assert "adoption complete" in out
    ca = _ca_row(previous)
    assert ca.status is CAStatus.ACTIVE
    with session_scope(previous.cli.engine) as s:
        rows = s.execute(sa.select(Revocation.serial, Revocation.revocation_time, Revocation.reason)
                         .where(Revocation.issuer_ca_id == ca.id, Revocation.list_type == ListType.CRL)).all()
        assert {serial: (when, reason) for serial, when, reason in rows} == previous.entries
        counters = dict(s.execute(sa.select(CRLCounter.list_type, CRLCounter.last_number)
                                  .where(CRLCounter.ca_id == ca.id)).all())
        assert counters == {ListType.CRL: 4211, ListType.ARL: 977}


def test_importing_again_adds_nothing(previous: Previous) -> None:
    before = _count(previous, Revocation)
    out = previous.run("crl", "import-history", "--ca", CA, "--crl", previous.file("last.crl"),
                       "--arl", previous.file("last.arl"))
    assert "0 added now" in out and "(archived already)" in out
    assert _count(previous, Revocation) == before


def _revoke_later(previous: Previous) -> int:
    """The certificates come in by the bulk import; revoca revokes one that the old system had not."""
    previous.run("cert", "import", previous.file("good.pem"), previous.file("revoked.pem"), previous.file("later.pem"))
    later = _cert(previous, "later.pem")
    with session_scope(previous.cli.engine) as s:
        store = RevocationStore(s)
        row = store.certificate(store.ca(CA), later.serial_number)
        revoke_certificate(store, row, RevocationReason.SUPERSEDED, dt.datetime.now(dt.UTC))
        # the imported revocation of revoked.pem is now linked to its certificate
        linked = store.revocation_of(store.certificate(store.ca(CA), _cert(previous, "revoked.pem").serial_number).id)
        assert linked is not None and linked.reason == RevocationReason.KEY_COMPROMISE
    return later.serial_number


def test_next_crl_is_4212_with_the_history_and_verifies_under_the_old_root(previous: Previous,
                                                                           tmp_path: Path) -> None:
    later = _revoke_later(previous)
    issued = json.loads(previous.run("crl", "issue", "--ca", CA, "--json"))["issued"]
    assert sorted((row["type"], row["number"]) for row in issued) == [("arl", 978), ("crl", 4212)], issued
    path = previous.cli.data / "crls" / CA / "crl" / "4212.crl"
    crl = x509.load_der_x509_crl(path.read_bytes())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 4212
    got = {r.serial_number: (r.revocation_date_utc, _reason(r)) for r in crl}
    expected = dict(previous.entries)
    expected[later] = (got[later][0], int(RevocationReason.SUPERSEDED))
    assert len(got) == ENTRIES + 1 and got == expected
    root = previous.file("old-root.pem")
    pem = tmp_path / "4212.pem"
    pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    checked = subprocess.run(["openssl", "crl", "-in", str(pem), "-CAfile", root, "-noout", "-verify"],
                             capture_output=True, text=True, timeout=60)
    assert "verify OK" in checked.stdout + checked.stderr, checked
    for name, expected_line in (("good.pem", ": OK"), ("revoked.pem", "certificate revoked"),
                                ("later.pem", "certificate revoked")):
        verified = subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", root, "-CRLfile", str(pem),
                                   previous.file(name)], capture_output=True, text=True, timeout=60)
        assert expected_line in verified.stdout + verified.stderr, (name, verified)


def _reason(entry: x509.RevokedCertificate) -> int:
    flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    return {"keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3, "superseded": 4,
            "cessationOfOperation": 5}[flag.value]


def test_ocsp_answers_the_imported_revocations(previous: Previous) -> None:
    verifier, _key = court_certificate("adoption-verifier")
    add_verifier(previous.cli.engine, name="adoption-verifier", certificate=verifier, password=None,
                 now=dt.datetime.now(dt.UTC), base_dn=LDAP_BASE, actor="test")
    client = HSMClient(previous.cli.socket)
    # the adopted CA's own key answers ([ocsp] ca_signed): no responder certificate was adopted with it
    responder = Responder(previous.cli.engine, client, ca_signed=True, time_guard=NO_NTP)
    root = _cert(previous, "old-root.pem")
    imported = next(iter(previous.entries))  # a serial whose certificate revoca never saw
    revoked = _cert(previous, "revoked.pem").serial_number
    try:
        for serial, status in ((imported, "revoked"), (revoked, "revoked"),
                               (_cert(previous, "good.pem").serial_number, "good")):
            answer = responder.respond(ocsp_request(root, serial),
                                       tls_client_cert=verifier.public_bytes(serialization.Encoding.DER))
            parsed = x509_ocsp.load_der_ocsp_response(answer.body)
            assert parsed.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
            assert parsed.certificate_status.name.lower() == status, (hex(serial), parsed.certificate_status)
            if status == "revoked":
                when, reason = previous.entries[serial]
                assert parsed.revocation_time_utc == when
                assert _reason_number(parsed.revocation_reason) == reason
            root.public_key().verify(parsed.signature, parsed.tbs_response_bytes,  # type: ignore[call-arg]
                                     *_rsa(parsed))
    finally:
        client.close()


def _reason_number(flag: x509.ReasonFlags | None) -> int:
    assert flag is not None
    return {"keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3, "superseded": 4,
            "cessationOfOperation": 5}[flag.value]


def _rsa(parsed: x509_ocsp.OCSPResponse) -> tuple[object, object]:
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15(), parsed.signature_hash_algorithm
