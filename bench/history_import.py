"""Revocation history import at national scale: `revoca crl import-history` beside `openssl ca -gencrl`.

    .venv/bin/python bench/history_import.py [--entries 1000000] [--keep DIR]

Workload, one prefectural CA taken over from an `openssl ca` installation, in one run:

- the previous system: an RSA-2048 CA key and self-signed certificate made by `openssl req`,
  and an index.txt of N revoked certificates (distinct 159-bit serials, times spread over three
  years, reasons keyCompromise/affiliationChanged/superseded/cessationOfOperation, as in the
  CRL bench); `openssl ca -gencrl` reads that index and signs CRL number 4,211 with all N
  entries.  That command is timed: it is what loading the same entries into openssl ca's
  index and producing its list costs (line `openssl ca -gencrl`);
- revoca: a demo key ceremony (SQLite in the data directory, SoftHSM2), the CA's key imported
  into the token the way an HSM restore would put it there (python-pkcs11 C_CreateObject,
  sensitive and not extractable), `revoca ca adopt` done in process (not timed), two senior
  operators; then `revoca crl import-history --ca bench --crl last.crl --no-previous-arl` is
  timed as a subprocess, cold (a new process, a fresh database of that CA): wall time
  including interpreter start-up, and peak RSS from wait4 (from a small launcher, as in
  bench/crl.py).  It checks the signature, stages and checks every entry, stores them and
  archives the list;
- the same import again (what an operator re-running it after an interruption pays: every
  entry read and compared, nothing added).

Afterwards (not timed) the database must hold N revocations of the CA and its CRL counter 4,211.
Printed last:

    history entries=N revoca_s=T revoca_again_s=T openssl_s=T revoca_rss_mb=M openssl_rss_mb=M
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, KeyType, ObjectClass

from ca import ceremony
from ca.adoption.adopt import AdoptionRequest, adopt
from ca.config import settings_from_dict
from ca.enums import CAKind, ListType, Role
from ca.hsm import shares as sharing
from ca.hsm import token_for
from ca.officers.credentials import hash_password
from ca.storage.adoption import AdoptionStore
from ca.storage.engine import make_engine, session_scope
from ca.storage.models import CRLCounter, Revocation

sys.path.insert(0, str(Path(__file__).parent))
from crl import NOW, REASONS, entries, measure  # noqa: E402  (the CRL bench's workload and launcher)

from ca.config import TimeConfig  # noqa: E402
from ca.trusted_time import ClockGuard  # noqa: E402

# the embedded default [time] policy (no NTP server): a benchmark signs on the system clock
NO_NTP = ClockGuard(TimeConfig())

REVOCA = Path(sys.executable).with_name("revoca")
SUBJECT = "/C=JP/O=JPKI/OU=Prefectural CA/OU=Bench/CN=Governor of Bench"
SENIORS = (("bench-senior1", "bench senior one password"), ("bench-senior2", "bench senior two password"))


def openssl_previous_system(work: Path, n: int) -> tuple[float, float, Path, Path, Path]:
    """The previous CA as `openssl ca` runs it; (wall s, peak RSS MB) of -gencrl, key, certificate, CRL (DER)."""
    work.mkdir()
    (work / "ext.cnf").write_text("[v3_ca]\nbasicConstraints = critical, CA:true\n"
                                  "keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                    "-days", "3650", "-subj", SUBJECT, "-config", "ext.cnf", "-extensions", "v3_ca"],
                   cwd=work, check=True, capture_output=True)
    with open(work / "index.txt", "w", encoding="ascii") as index:
        for serial, when, reason in entries(n):
            hexserial = format(serial, "X")
            hexserial = "0" * (len(hexserial) % 2) + hexserial
            index.write(f"R\t{(NOW + dt.timedelta(days=200)):%y%m%d%H%M%SZ}\t{when:%y%m%d%H%M%SZ},"
                        f"{REASONS[reason]}\t{hexserial}\tunknown\t/CN=bench\n")
    (work / "index.txt.attr").write_text("unique_subject = no\n")
    (work / "crlnumber").write_text(f"{4211:04X}\n")
    (work / "ca.cnf").write_text(
        "[ca]\ndefault_ca = bench\n[bench]\ndir = .\ndatabase = index.txt\ncrlnumber = crlnumber\n"
        "certificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\ndefault_crl_hours = 72\n"
        "crl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n")
    wall, rss, _ = measure(["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-out", "last.pem"], dict(os.environ),
                           cwd=work)
    subprocess.run(["openssl", "crl", "-in", "last.pem", "-outform", "DER", "-out", "last.crl"], cwd=work, check=True)
    return wall, rss, work / "ca.key", work / "ca.pem", work / "last.crl"


def import_key_into_token(settings, secret: bytes, key_file: Path) -> None:  # type: ignore[no-untyped-def]
    """The CA key into revoca's token as an HSM restore would: private (sensitive, not extractable) and public."""
    private = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    numbers = private.private_numbers()
    public = numbers.public_numbers

    def big(value: int) -> bytes:
        return value.to_bytes((value.bit_length() + 7) // 8, "big")

    token = token_for(settings)
    lib = token._lib()  # the module revoca loaded, with this installation's SoftHSM2 configuration
    session = lib.get_token(token_label=settings.hsm.token_label).open(rw=True, user_pin=sharing.user_pin(secret))
    try:
        common = {Attribute.KEY_TYPE: KeyType.RSA, Attribute.TOKEN: True, Attribute.ID: b"\x42\x11",
                  Attribute.LABEL: "BENCH-CA", Attribute.MODULUS: big(public.n),
                  Attribute.PUBLIC_EXPONENT: big(public.e)}
        session.create_object({**common, Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.PRIVATE: True,
                               Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
                               Attribute.PRIVATE_EXPONENT: big(numbers.d), Attribute.PRIME_1: big(numbers.p),
                               Attribute.PRIME_2: big(numbers.q), Attribute.EXPONENT_1: big(numbers.dmp1),
                               Attribute.EXPONENT_2: big(numbers.dmq1), Attribute.COEFFICIENT: big(numbers.iqmp)})
        session.create_object({**common, Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.VERIFY: True})
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Work in this directory and keep it.")
    args = parser.parse_args()
    n = args.entries
    root = args.keep or Path(tempfile.mkdtemp(prefix="revoca-history-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        print(f"setting up: openssl ca with {n} revoked entries in {root / 'openssl'}", flush=True)
        openssl_s, openssl_mb, key_file, cert_file, crl_file = openssl_previous_system(root / "openssl", n)
        print(f"openssl ca -gencrl: {openssl_s:.2f} s, {openssl_mb:.0f} MB; CRL {crl_file.stat().st_size} bytes",
              flush=True)
        data = root / "var"
        settings = settings_from_dict({"data_dir": str(data), "hsm": {"key_algorithm": "p256"}})
        engine = make_engine(settings.db_url)
        print("setting up: demo key ceremony, the CA key into the token, `ca adopt`, two senior operators", flush=True)
        result = ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=0)
        secret = sharing.combine([share for _name, share in result.shares[:2]])
        import_key_into_token(settings, secret, key_file)
        keys = token_for(settings).open(sharing.user_pin(secret))
        try:
            with session_scope(engine) as session:
                store = AdoptionStore(session)
                adopt(store, keys, AdoptionRequest(name="bench", kind=CAKind.REGIONAL, key_label="BENCH-CA",
                                                   certificate=x509.load_pem_x509_certificate(cert_file.read_bytes())),
                      now=dt.datetime.now(dt.UTC), actor="bench", time_guard=NO_NTP)
                for name, password in SENIORS:
                    store.add_operator(name=name, display_name=name, credential_hash=hash_password(password),
                                       roles=[Role.SENIOR_OPERATOR], now=NOW, made_at_ceremony=True)
        finally:
            keys.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
        env.update(REVOCA_DATA_DIR=str(data))
        argv = [str(REVOCA), "crl", "import-history", "--ca", "bench", "--crl", str(crl_file), "--no-previous-arl",
                *(a for name, _ in SENIORS for a in ("--operator", name))]
        stdin = "".join(password + "\n" for _, password in SENIORS)
        print(f"importing: {' '.join(argv[1:])}", flush=True)
        first_s, first_mb, out = measure_with_stdin(argv, env, stdin)
        print(out.rstrip(), flush=True)
        again_s, again_mb, out = measure_with_stdin(argv, env, stdin)
        print(out.rstrip(), flush=True)
        with session_scope(engine) as session:
            stored = session.scalar(sa.select(sa.func.count()).select_from(Revocation)) or 0
            counter = session.scalar(sa.select(CRLCounter.last_number).where(CRLCounter.list_type == ListType.CRL,
                                                                             CRLCounter.last_number == 4211))
        engine.dispose()
        if stored != n or counter != 4211:
            raise SystemExit(f"check failed: {stored} revocations stored (expected {n}), CRL counter {counter}")
        print(f"check: {stored} revocations stored, CRL counter at 4211 (the next CRL is 4212)", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'step':<58}{'entries':>10}{'wall s':>9}{'peak RSS MB':>13}")
    print(f"{'revoca crl import-history: check, stage, store, archive':<58}{n:>10}{first_s:>9.2f}{first_mb:>13.1f}")
    print(f"{'revoca crl import-history again: read, compare, add 0':<58}{n:>10}{again_s:>9.2f}{again_mb:>13.1f}")
    print(f"{'openssl ca -gencrl: read index.txt, sign the CRL':<58}{n:>10}{openssl_s:>9.2f}{openssl_mb:>13.1f}")
    print(f"history entries={n} revoca_s={first_s:.2f} revoca_again_s={again_s:.2f} openssl_s={openssl_s:.2f} "
          f"revoca_rss_mb={max(first_mb, again_mb):.0f} openssl_rss_mb={openssl_mb:.0f}")


LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{time.perf_counter() - start} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def measure_with_stdin(args: list[str], env: dict[str, str], stdin: str) -> tuple[float, float, str]:
    """bench/crl.py's measure, with the operators' passwords on standard input (the launcher passes it on)."""
    with tempfile.NamedTemporaryFile("r", prefix="rvmeasure") as report:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, report.name, *args], env=env,
                              input=stdin.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        wall, rss_kb, code = report.read().split()
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0 or int(code) != 0:
        raise SystemExit(f"{args[0]} failed ({code}):\n{out}")
    return float(wall), int(rss_kb) / 1024, out


if __name__ == "__main__":
    main()
