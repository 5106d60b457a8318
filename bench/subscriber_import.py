"""Subscriber certificates at national scale: `revoca cert import` beside plain loads of the same files.

    .venv/bin/python bench/subscriber_import.py [--certificates 1000000] [--per-file 10000] [--keep DIR]

Workload, one prefectural CA's population, in one run:

- N subscriber certificates (default 1,000,000) as the previous system exports them: PEM bundles
  of `--per-file` certificates (100 files of 10,000), each certificate of the JPKI subscriber
  profile (ca.profiles, basic four in subjectAltName, ~1.3 KB of DER), distinct 159-bit serials
  and subject IDs, all sharing one subscriber key (revoca never looks at it), signed by the CA's
  P-256 key: the template is made once by revoca's own issuance code, then serial and subject
  are replaced and each TBS signed, so a million certificates take minutes, not hours.  One
  certificate per file has a broken signature, for the per-file error report;
- revoca: a fresh SQLite database with that CA (its key registered as an adopted one would be)
  and an operator; `revoca cert import DIR --errors report.tsv` timed as a subprocess, cold (a new
  process): wall time including interpreter start-up, peak RSS from wait4 (bench/crl.py's
  launcher).  Every certificate is parsed, its issuer found by AKI, its signature verified, its
  serial checked against the CA's, and it is stored in batches of 5,000 with the journal;
- interrupted: the same import on a fresh copy of the database, killed (SIGKILL) half way
  through its first run's time, then `--resume`: what finishing costs after a power cut;
- again without `--resume`: every certificate read and verified once more, nothing added (what
  an operator paid before the journal);
- references on the same files in the same run: (a) a plain load into SQLite with Python's
  sqlite3 (PEM to DER, SHA-256, one INSERT of fingerprint and DER per certificate, batches of
  5,000, no parsing, no signature check): the storage floor; (b) `openssl crl2pkcs7 -nocrl
  -certfile` over every bundle: OpenSSL parsing every certificate, no signature check, nothing
  stored.

Printed last, with the machine's load (the figures of a shared machine are noisy):

    subscriber-import certificates=N revoca_s=T resume_s=T again_s=T sqlite_s=T openssl_s=T revoca_rss_mb=M ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca.enums import CAKind, CertKind
from ca.hsm.signer import KeyAlgorithm, SoftwareSigner
from ca.issuance import Issuer, issue, key_identifier
from ca.storage.engine import make_engine, session_scope, upgrade
from ca.storage.models import Certificate
from ca.storage.store import Store
from ca.subscribers import random_basic_four

sys.path.insert(0, str(Path(__file__).parent))
from crl import LAUNCHER, NOW, bench_operator  # noqa: E402  (the CRL bench's launcher and operator)

from ca.config import TimeConfig  # noqa: E402
from ca.trusted_time import ClockGuard  # noqa: E402

# the embedded default [time] policy (no NTP server): a benchmark signs on the system clock
NO_NTP = ClockGuard(TimeConfig())

REVOCA = Path(sys.executable).with_name("revoca")
CA_DN = "CN=Governor of Bench,OU=Bench,OU=Prefectural CA,O=JPKI,C=JP"
SERIAL_MARK = bytes(range(0x41, 0x55))  # 20 bytes, positive: the template's serial, found and replaced
ID_MARK = b"QQQQQQQQQQQQQQQQQQQQ"  # the template's 20-character subject ID


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + body


def generate(out: Path, n: int, per_file: int, ca_key: ec.EllipticCurvePrivateKey) -> int:
    """The bundles; returns how many certificates were made broken (one per file)."""
    issuer = Issuer(name=x509.Name.from_rfc4514_string(CA_DN), signer=SoftwareSigner(ca_key),
                    key_id=key_identifier(ca_key.public_key()))
    rng = random.Random(7)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "JP"),
                         x509.NameAttribute(x509.NameOID.STATE_OR_PROVINCE_NAME, "Tokyo"),
                         x509.NameAttribute(x509.NameOID.LOCALITY_NAME, "Chiyoda-ku"),
                         x509.NameAttribute(x509.NameOID.COMMON_NAME, ID_MARK.decode())])
    holder = rsa.generate_private_key(65537, 2048)  # the one subscriber key every certificate carries
    template = issue(CertKind.SUBSCRIBER, issuer=issuer, subject=subject, public_key=holder.public_key(),
                     not_before=NOW, serial=int.from_bytes(SERIAL_MARK, "big"),
                     basic_four=random_basic_four(rng, prefecture="東京都", municipality="千代田区",
                                                  born_before=dt.date(2000, 1, 1)), time_guard=NO_NTP)
    tbs = template.tbs_certificate_bytes
    serial_at, id_at = tbs.index(SERIAL_MARK), tbs.index(ID_MARK)
    sig_alg = _tlv(0x30, bytes.fromhex("06082a8648ce3d040302"))  # ecdsa-with-SHA256
    alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out.mkdir(parents=True)
    broken = 0
    made = 0
    file_no = 0
    while made < n:
        count = min(per_file, n - made)
        with open(out / f"bundle-{file_no:05d}.pem", "wb") as f:
            for i in range(count):
                serial = bytes([0x40 | rng.getrandbits(6)]) + rng.getrandbits(152).to_bytes(19, "big")
                ident = bytes(rng.choice(alphabet) for _ in range(20))
                body = tbs[:serial_at] + serial + tbs[serial_at + 20:id_at] + ident + tbs[id_at + 20:]
                signature = ca_key.sign(body, ec.ECDSA(hashes.SHA256()))
                if i == count // 2:  # one broken signature per file
                    signature = signature[:-1] + bytes([signature[-1] ^ 1])
                    broken += 1
                der = _tlv(0x30, body + sig_alg + _tlv(0x03, b"\x00" + signature))
                f.write(_pem(der))
        made += count
        file_no += 1
        print(f"  generated {made}/{n}", end="\r", flush=True)
    print()
    return broken


def _pem(der: bytes) -> bytes:
    import base64

    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"\n-----END CERTIFICATE-----\n"


def fresh_database(path: Path, ca_key: ec.EllipticCurvePrivateKey) -> tuple[list[str], str]:
    """A migrated SQLite database with the bench CA (created now: every bundle predates it) and an operator."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with session_scope(engine) as session:
        store = Store(session)
        ca = store.add_ca(name="bench", kind=CAKind.REGIONAL, subject=x509.Name.from_rfc4514_string(CA_DN),
                          now=dt.datetime.now(dt.UTC))
        store.add_key(ca, label="bench-ca", algorithm=KeyAlgorithm.P256.value, public_key=ca_key.public_key(),
                      ski=key_identifier(ca_key.public_key()), now=dt.datetime.now(dt.UTC))
    argv, stdin = bench_operator(engine)
    engine.dispose()
    return argv, stdin


def measure(args: list[str], env: dict[str, str], stdin: str = "", *, kill_after: float | None = None,
            allowed: tuple[int, ...] = (0,)) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, output) of one child through the launcher; `kill_after` SIGKILLs it then."""
    with tempfile.NamedTemporaryFile("r", prefix="rvmeasure") as report:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, report.name, *args], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        if kill_after is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
            time.sleep(kill_after)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return kill_after, 0.0, ""
        out, _ = proc.communicate(stdin.encode())
        wall, rss_kb, code, *_cpu = report.read().split()  # the launcher also reports CPU seconds
    text = out.decode(errors="replace")
    if int(code) not in allowed:
        raise SystemExit(f"{args[0]} failed ({code}):\n{text[-3000:]}")
    return float(wall), int(rss_kb) / 1024, text


SQLITE_REFERENCE = """
import base64, hashlib, sqlite3, sys
from pathlib import Path
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE certs (fingerprint BLOB PRIMARY KEY, der BLOB NOT NULL)")
rows, body, inside = [], [], False
for path in sorted(Path(sys.argv[2]).glob("*.pem")):
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if line == b"-----BEGIN CERTIFICATE-----":
                inside, body = True, []
            elif line == b"-----END CERTIFICATE-----":
                der = base64.b64decode(b"".join(body))
                rows.append((hashlib.sha256(der).digest(), der))
                inside = False
                if len(rows) >= 5000:
                    db.executemany("INSERT INTO certs VALUES (?, ?)", rows); db.commit(); rows = []
            elif inside:
                body.append(line)
db.executemany("INSERT INTO certs VALUES (?, ?)", rows); db.commit()
print(db.execute("SELECT count(*) FROM certs").fetchone()[0])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=1_000_000)
    parser.add_argument("--per-file", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="Work in this directory and keep it (bundles are reused).")
    args = parser.parse_args()
    n = args.certificates
    root = args.keep or Path(tempfile.mkdtemp(prefix="revoca-subscriber-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    try:
        key_file = root / "ca-key.pem"
        bundles = root / f"bundles-{n}-{args.per_file}"
        if key_file.exists() and bundles.exists():
            ca_key = serialization.load_pem_private_key(key_file.read_bytes(), None)
            assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
            broken = len(list(bundles.glob("*.pem")))
            print(f"reusing {bundles}", flush=True)
        else:
            ca_key = ec.generate_private_key(ec.SECP256R1())
            key_file.write_bytes(ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
            shutil.rmtree(bundles, ignore_errors=True)
            started = time.perf_counter()
            broken = generate(bundles, n, args.per_file, ca_key)
            print(f"generated {n} certificates in {time.perf_counter() - started:.1f} s", flush=True)
        size_mb = sum(p.stat().st_size for p in bundles.iterdir()) / 2**20
        data = root / "var"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        empty = root / "empty.db"
        empty.unlink(missing_ok=True)
        login, stdin = fresh_database(empty, ca_key)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
        env.update(REVOCA_DATA_DIR=str(data), REVOCA_DATABASE_URL=f"sqlite:///{data / 'revoca.db'}")
        report = root / "report.tsv"
        argv = [str(REVOCA), "cert", "import", str(bundles), "--errors", str(report), *login]

        shutil.copy(empty, data / "revoca.db")
        print(f"importing {n} certificates ({size_mb:.0f} MB of PEM): {' '.join(argv[1:])}", flush=True)
        first_s, first_mb, out = measure(argv, env, stdin, allowed=(1,))
        print(out.strip().splitlines()[-1], flush=True)
        stored = _count(data / "revoca.db")
        reported = sum(1 for line in report.read_text().splitlines()[1:] if line and not line.startswith("#"))
        if stored != n - broken or reported != broken:
            raise SystemExit(f"check failed: {stored} stored (expected {n - broken}), {reported} reported "
                             f"(expected {broken})")

        print(f"again without --resume: every certificate read and checked, {stored} already present", flush=True)
        again_s, again_mb, out = measure(argv, env, stdin, allowed=(1,))
        print(out.strip().splitlines()[-1], flush=True)

        shutil.copy(empty, data / "revoca.db")
        for suffix in ("-wal", "-shm"):
            (data / f"revoca.db{suffix}").unlink(missing_ok=True)
        half = first_s / 2
        print(f"interrupted: killed after {half:.1f} s, then --resume", flush=True)
        measure(argv, env, stdin, kill_after=half)
        partial = _count(data / "revoca.db")
        resume_s, resume_mb, out = measure([*argv, "--resume"], env, stdin, allowed=(0, 1))
        print(f"{partial} stored before the kill; " + out.strip().splitlines()[-1], flush=True)
        if _count(data / "revoca.db") != n - broken:
            raise SystemExit("check failed: the resumed import did not end with every certificate stored")

        print("reference: plain sqlite3 load of the same PEM bundles", flush=True)
        sqlite_db = root / "reference.db"
        sqlite_db.unlink(missing_ok=True)
        sqlite_s, sqlite_mb, out = measure([sys.executable, "-c", SQLITE_REFERENCE, str(sqlite_db), str(bundles)],
                                           env)
        print("reference: openssl crl2pkcs7 -nocrl -certfile over every bundle", flush=True)
        script = (f'for f in "{bundles}"/*.pem; do openssl crl2pkcs7 -nocrl -certfile "$f" -outform DER '
                  '-out /dev/null || exit 1; done')
        openssl_s, openssl_mb, _ = measure(["/bin/sh", "-c", script], env)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"\n{'step':<66}{'certs':>9}{'wall s':>9}{'peak RSS MB':>13}")
    print(f"{'revoca cert import: parse, verify, check, store, journal, report':<66}{n:>9}{first_s:>9.1f}"
          f"{first_mb:>13.1f}")
    print(f"{'revoca cert import --resume after a kill at half time':<66}{n:>9}{resume_s:>9.1f}{resume_mb:>13.1f}")
    print(f"{'revoca cert import again (no --resume): read, verify, add 0':<66}{n:>9}{again_s:>9.1f}"
          f"{again_mb:>13.1f}")
    print(f"{'reference: python sqlite3 plain load (no parse, no verify)':<66}{n:>9}{sqlite_s:>9.1f}"
          f"{sqlite_mb:>13.1f}")
    print(f"{'reference: openssl crl2pkcs7 parse of every bundle (no verify)':<66}{n:>9}{openssl_s:>9.1f}"
          f"{openssl_mb:>13.1f}")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); {os.cpu_count()} CPUs")
    print(f"subscriber-import certificates={n} revoca_s={first_s:.1f} resume_s={resume_s:.1f} again_s={again_s:.1f} "
          f"sqlite_s={sqlite_s:.1f} openssl_s={openssl_s:.1f} revoca_rss_mb={max(first_mb, resume_mb, again_mb):.0f} "
          f"sqlite_rss_mb={sqlite_mb:.0f} openssl_rss_mb={openssl_mb:.0f}")


def _count(db: Path) -> int:
    engine = make_engine(f"sqlite:///{db}")
    with session_scope(engine) as session:
        count = session.scalar(sa.select(sa.func.count()).select_from(Certificate)
                               .where(Certificate.kind == CertKind.SUBSCRIBER)) or 0
    engine.dispose()
    return count


if __name__ == "__main__":
    main()
