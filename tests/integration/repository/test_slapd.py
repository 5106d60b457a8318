"""The local slapd with the repository's access rules, checked with ldap-utils against a real slapd."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from repository.slapd import SLAPD, LocalSlapd, SlapdError

pytestmark = pytest.mark.skipif(not Path(SLAPD).exists(), reason=f"{SLAPD} not installed (Debian package slapd)")

BASE = "o=JPKI,c=JP"
CA_DN = f"cn=Tokyo CA,{BASE}"
VERIFIER_DN = f"cn=verifier1,ou=verifiers,{BASE}"
VERIFIER_PW = "correct horse battery staple"



def _ca_objects() -> tuple[bytes, bytes, bytes]:
    """DER of a self-signed CA certificate, its CRL and its ARL (distinct CRL numbers)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, "Tokyo CA")]
    )
    now = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )

    def crl(number: int, serials: range) -> bytes:
        b = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(name)
            .last_update(now)
            .next_update(now + dt.timedelta(hours=72))
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial in serials:
            b = b.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    return cert.public_bytes(serialization.Encoding.DER), crl(7, range(100, 140)), crl(8, range(2, 3))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _search(slapd: LocalSlapd, attrs: list[str], bind: tuple[str, str] | None = None) -> tuple[int, dict[str, bytes]]:
    """ldapsearch the CA entry (anonymously or bound); returns the exit code and attribute -> bytes."""
    cmd = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.uri, "-b", CA_DN, "-s", "base"]
    if bind is not None:
        cmd += ["-D", bind[0], "-w", bind[1]]
    res = subprocess.run([*cmd, *attrs], capture_output=True, timeout=30)
    values: dict[str, bytes] = {}
    for line in res.stdout.decode().splitlines():
        if ":: " in line:
            attr, _, value = line.partition(":: ")
            values[attr.lower()] = base64.b64decode(value)
    return res.returncode, values


def _modify(slapd: LocalSlapd, ldif: str) -> None:
    slapd.tool("ldapmodify", input=ldif.encode())


def test_config_files_private_and_base_entries(slapd: LocalSlapd) -> None:
    for path in (slapd.password_path, slapd.conf_path):
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert slapd.password_path.read_text() == "root-secret"
    assert "root-secret" not in slapd.conf_path.read_text()
    assert "rootpw {SSHA}" in slapd.conf_path.read_text()
    for dn in (BASE, slapd.verifiers_dn, slapd.verifiers_group_dn):
        assert slapd.exists(dn)
    status = slapd.status()
    assert status.running and status.answering and status.pid
    # a second start of the same directory is refused, not a second slapd
    with pytest.raises(SlapdError, match="already running"):
        LocalSlapd(slapd.directory, BASE, slapd.port).start()


def test_crl_only_for_verifiers(slapd: LocalSlapd) -> None:
    cert, crl, arl = _ca_objects()
    slapd.tool(
        "ldapadd",
        input=(
            f"dn: {CA_DN}\nobjectClass: applicationProcess\nobjectClass: certificationAuthority\ncn: Tokyo CA\n"
            f"cACertificate;binary:: {_b64(cert)}\n"
            f"certificateRevocationList;binary:: {_b64(crl)}\n"
            f"authorityRevocationList;binary:: {_b64(arl)}\n"
        ).encode(),
    )
    crl_attr, arl_attr, ca_attr = (
        "certificateRevocationList;binary",
        "authorityRevocationList;binary",
        "cACertificate;binary",
    )

    # anonymous: CA certificate and ARL, no CRL (asked by name or with everything)
    for attrs in ([crl_attr, arl_attr, ca_attr], ["*"]):
        rc, got = _search(slapd, attrs)
        assert rc == 0
        assert crl_attr.lower() not in got
        assert got[arl_attr.lower()] == arl
        assert got[ca_attr.lower()] == cert
    # nor can an anonymous search find the entry by the CRL's presence
    res = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-b", BASE, "(certificateRevocationList=*)", "1.1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0 and "dn:" not in res.stdout

    # a verifier account, not yet in the group: no CRL
    pw_hash = slapd._hash_password(VERIFIER_PW)
    slapd.tool(
        "ldapadd",
        input=(
            f"dn: {VERIFIER_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
            f"cn: verifier1\nuserPassword: {pw_hash}\n"
        ).encode(),
    )
    rc, got = _search(slapd, [crl_attr], (VERIFIER_DN, VERIFIER_PW))
    assert rc == 0 and crl_attr.lower() not in got

    # in the group: the CRL, byte for byte
    group = slapd.verifiers_group_dn
    _modify(slapd, f"dn: {group}\nchangetype: modify\nadd: member\nmember: {VERIFIER_DN}\n")
    rc, got = _search(slapd, [crl_attr, arl_attr], (VERIFIER_DN, VERIFIER_PW))
    assert rc == 0
    assert got[crl_attr.lower()] == crl
    assert got[arl_attr.lower()] == arl

    # wrong password: invalidCredentials (49), nothing returned
    rc, got = _search(slapd, [crl_attr], (VERIFIER_DN, "wrong"))
    assert rc == 49 and not got

    # nobody reads passwords, not even the verifier its own
    res = subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", VERIFIER_DN, "-w", VERIFIER_PW]
        + ["-b", VERIFIER_DN, "-s", "base", "userPassword"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0 and "userPassword" not in res.stdout

    # anonymous and verifiers cannot write
    for bind in ([], ["-D", VERIFIER_DN, "-w", VERIFIER_PW]):
        res = subprocess.run(
            ["ldapmodify", "-x", "-H", slapd.uri, *bind],
            input=f"dn: {CA_DN}\nchangetype: modify\ndelete: authorityRevocationList;binary\n",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert res.returncode in (8, 50), res.stderr  # strongerAuthRequired (anonymous), insufficientAccess

    # removed from the group: no CRL at the very next search
    _modify(slapd, f"dn: {group}\nchangetype: modify\ndelete: member\nmember: {VERIFIER_DN}\n")
    rc, got = _search(slapd, [crl_attr], (VERIFIER_DN, VERIFIER_PW))
    assert rc == 0 and crl_attr.lower() not in got
    rc, got = _search(slapd, [arl_attr], (VERIFIER_DN, VERIFIER_PW))
    assert got[arl_attr.lower()] == arl


def test_stop_leaves_no_process_and_restart_keeps_data(slapd: LocalSlapd) -> None:
    pid = slapd.status().pid
    assert pid is not None
    assert slapd.stop() is True
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    status = slapd.status()
    assert not status.running and not status.answering
    assert slapd.stop() is False
    # restart with the stored password (none given): the entries are still there
    again = LocalSlapd(slapd.directory, BASE, slapd.port)
    again.start()
    try:
        assert again.exists(again.verifiers_group_dn)
    finally:
        again.stop()


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = (
        bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8)
    )
    return bytes([tag]) + length + body


def _big_crl(small_crl: bytes, entries: int) -> bytes:
    """A certificateList shaped like ``small_crl`` with ``entries`` revoked 20-byte serials (signature not redone)."""
    crl = asn1_crl.CertificateList.load(small_crl)
    tbs = crl["tbs_cert_list"]
    when = _der(0x17, b"261101090000Z")
    revoked = b"".join(_der(0x30, _der(0x02, ((1 << 152) + i).to_bytes(20)) + when) for i in range(entries))
    head = b"".join(tbs[k].dump() for k in ("version", "signature", "issuer", "this_update", "next_update"))
    body = _der(0x30, head + _der(0x30, revoked))
    return _der(0x30, body + crl["signature_algorithm"].dump() + crl["signature"].dump())


@pytest.mark.slow
def test_forty_megabyte_crl_written_and_fetched_whole(slapd: LocalSlapd) -> None:
    cert, crl, arl = _ca_objects()
    big = _big_crl(crl, 1_000_000)
    assert len(big) > 38_000_000
    slapd.tool(
        "ldapadd",
        input=(
            f"dn: {CA_DN}\nobjectClass: applicationProcess\nobjectClass: certificationAuthority\ncn: Tokyo CA\n"
            f"cACertificate;binary:: {_b64(cert)}\n"
            f"certificateRevocationList;binary:: {_b64(big)}\n"
            f"authorityRevocationList;binary:: {_b64(arl)}\n"
            f"\ndn: {VERIFIER_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\n"
            f"cn: verifier1\nuserPassword: {slapd._hash_password(VERIFIER_PW)}\n"
        ).encode(),
    )
    _modify(slapd, f"dn: {slapd.verifiers_group_dn}\nchangetype: modify\nadd: member\nmember: {VERIFIER_DN}\n")
    rc, got = _search(slapd, ["certificateRevocationList;binary"], (VERIFIER_DN, VERIFIER_PW))
    assert rc == 0
    assert got["certificaterevocationlist;binary"] == big
