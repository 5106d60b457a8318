"""CRL issuance at national scale: `revoca crl issue` against `openssl ca -gencrl`, same entries, one run.

    .venv/bin/python bench/crl.py [--entries 1000000] [--daily 1000] [--skip-openssl] [--db-url URL] [--keep DIR]

Sets up a temporary data directory with a demo hierarchy (RSA-2048 keys in SoftHSM2, as in
production), starts `revoca serve hsm` and activates it with the demo shares, revokes N
subscriber certificates of CA tokyo (minimal certificate rows, because revocations refer to
them, and pre-encoded entries, inserted with executemany), then times `revoca crl issue --ca
tokyo --type crl` as a subprocess: wall time including interpreter start-up, imports and
the operator's login (one scrypt), and peak RSS from wait4.  `openssl ca -gencrl` gets the
same serials, times and reasons in an index.txt, with an RSA-2048 key of its own.  The targets
of issue 3: at most 2 s and 200 MB for 1,000,000 entries.

Then `--daily` more revocations are added and the command is timed again: that is the
every-day case, where ca.crl.cache supplies the earlier entries and only the new rows stream
(line `crl-daily ...`).

Then the list is issued once more as `revoca serve scheduler` issues it every day in
production: in a process that has already started and imported what the scheduler has (it runs
for months; no operator logs in), `ca.crl.issue.issue_list` with every row streamed, timed
around the call (the row "revoca scheduler, in process", --daily more entries than the first).  The
command line's start-up (interpreter, imports, one scrypt: about 0.6 s here) is what separates
the two rows.

The last line is the first issue, where every row streams, as openssl ca reads its whole index
every time:

    crl entries=N revoca_s=T openssl_s=T ratio=R revoca_rss_mb=M openssl_rss_mb=M \
        revoca_cpu_s=C openssl_cpu_s=C cpu_ratio=R scheduler_s=T scheduler_ratio=R      (one line)

with ratio = openssl_s / revoca_s, cpu_ratio the same for CPU seconds (user + system, from
wait4: on a machine others load, wall times mostly measure waiting for the CPU and the disk),
scheduler_s and scheduler_ratio the scheduler's issuance (in process) and openssl_s over it.
Neither revoca figure counts the HSM service's own CPU (it judges the streamed list).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from ca import ceremony
from ca.config import settings_from_dict
from ca.enums import CertKind, ListType, Role
from ca.errors import ServiceUnavailable
from ca.hsm.client import HSMClient
from ca.officers.credentials import hash_password
from ca.revocation.crl_entry import encode_entry
from ca.storage.engine import make_engine, session_scope
from ca.storage.models import Certificate, Revocation
from ca.storage.store import Store

NOW = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
BATCH = 50_000
REASONS = {1: "keyCompromise", 2: "CACompromise", 3: "affiliationChanged", 4: "superseded",
           5: "cessationOfOperation"}
REVOCA = Path(sys.executable).with_name("revoca")
BENCH_OPERATOR = "bench-operator"
# For a revoca whose CLI has no crl group yet (older trees), add it the way ca/cli/__init__.py does.
REGISTER_AND_RUN = ("from ca.cli import cli, main\n"
                    "if cli.get_command(None, 'crl') is None:\n"
                    "    from ca.cli.crl_cmds import register\n"
                    "    register(cli)\n"
                    "main()\n")


def entries(n: int, start: int = 0, seed: int = 4) -> Iterator[tuple[int, dt.datetime, int]]:
    """(serial, revocation time, reason) of revocations start..start+n-1.

    159-bit serials like real ones (20 octets), increasing with the index so that the bulk
    load appends to the serial indexes instead of splitting random B-tree pages.
    """
    rng = random.Random(seed + start)
    for i in range(start, start + n):
        serial = (1 << 158) | (i << 120) | rng.getrandbits(120)
        yield serial, NOW - dt.timedelta(seconds=rng.randrange(3 * 365 * 86400)), rng.choice((1, 3, 4, 5))


def _bind(column: sa.Column, dialect: sa.Dialect):  # type: ignore[no-untyped-def]
    process = column.type.bind_processor(dialect)
    return process or (lambda v: v)


def insert_revocations(engine: sa.Engine, ca_name: str, n: int, start: int = 0) -> None:
    """N certificate rows (only what the schema requires: revocations refer to them) and their
    revocations, with the entries pre-encoded as the RA does; one executemany per batch."""
    with session_scope(engine) as session:
        store = Store(session)
        ca = store.ca(ca_name)
        key = store.current_key(ca)
        ca_id, key_id = ca.id, key.id
        first_id = (session.scalar(sa.select(sa.func.max(Certificate.id))) or 0) + 1
    dialect = engine.dialect
    cert_cols, rev_cols = Certificate.__table__.c, Revocation.__table__.c
    serial_of = _bind(cert_cols.serial, dialect)
    time_of = _bind(cert_cols.not_before, dialect)
    kind = _bind(cert_cols.kind, dialect)(CertKind.SUBSCRIBER)
    list_type = _bind(rev_cols.list_type, dialect)(ListType.CRL)
    not_before, not_after, now = time_of(NOW - dt.timedelta(days=900)), time_of(NOW + dt.timedelta(days=200)), \
        time_of(NOW)
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    cert_sql = (f"INSERT INTO certificates (id, issuer_ca_id, issuer_key_id, kind, serial, subject_dn, not_before, "
                f"not_after, fingerprint_sha256, der, created_at) VALUES ({', '.join([mark] * 11)})")
    rev_sql = (f"INSERT INTO revocations (certificate_id, issuer_ca_id, serial, revocation_time, reason, recorded_at, "
               f"entry_der, list_type) VALUES ({', '.join([mark] * 8)})")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if dialect.name == "sqlite":
            cursor.execute("PRAGMA cache_size = -1000000")  # 1 GB of page cache for the bulk load only
            cursor.execute("BEGIN")  # the driver connection autocommits: one transaction, not one per row
        batch_c: list[tuple[object, ...]] = []
        batch_r: list[tuple[object, ...]] = []
        for i, (serial, when, reason) in enumerate(entries(n, start)):
            cid, hexserial = first_id + i, serial_of(serial)
            batch_c.append((cid, ca_id, key_id, kind, hexserial, "CN=bench", not_before, not_after,
                            cid.to_bytes(32, "big"), b"", now))  # a unique stand-in for the fingerprint
            batch_r.append((cid, ca_id, hexserial, time_of(when), reason, now, encode_entry(serial, when, reason),
                            list_type))
            if len(batch_c) == BATCH:
                cursor.executemany(cert_sql, batch_c)
                cursor.executemany(rev_sql, batch_r)
                batch_c, batch_r = [], []
        if batch_c:
            cursor.executemany(cert_sql, batch_c)
            cursor.executemany(rev_sql, batch_r)
        raw.commit()
    finally:
        raw.close()


# The measured command is started from this small launcher rather than from the bench process:
# Linux counts the memory of the process that forks (or vforks) and execs into the child's
# peak RSS, and this process holds the whole CA stack by then (about 100 MB).
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(f"{time.perf_counter() - start} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} "
                 f"{usage.ru_utime + usage.ru_stime}")
"""


def measure(args: list[str], env: dict[str, str], cwd: Path | None = None,
            stdin: str = "") -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, output) of one child process, from wait4 in a small launcher;
    `stdin` is its standard input (an operator's password: never a terminal, which would prompt)."""
    wall, rss, out, _cpu = measure_cpu(args, env, cwd, stdin)
    return wall, rss, out


def measure_cpu(args: list[str], env: dict[str, str], cwd: Path | None = None,
                stdin: str = "") -> tuple[float, float, str, float]:
    """`measure`, and the child's CPU seconds (user + system): on a machine others load, the
    wall time says as much about them as about the command."""
    with tempfile.NamedTemporaryFile("r", prefix="rvmeasure") as report:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", LAUNCHER, report.name, *args], env=env, cwd=cwd,
                              input=stdin.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        wall, rss_kb, code, cpu = report.read().split()
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0 or int(code) != 0:
        raise SystemExit(f"{args[0]} failed ({code}):\n{out}")
    return float(wall), int(rss_kb) / 1024, out, float(cpu)


def bench_operator(engine: sa.Engine) -> tuple[list[str], str]:
    """An operator for the commands timed here (`revoca crl issue`, `repository publish`), which need a
    login (docs/roles.md): its `--operator` arguments and its password line for standard input.  Its
    one scrypt check (~0.1 s) is in the timings, as it is for an officer at the keyboard."""
    password = secrets.token_urlsafe(18)
    with session_scope(engine) as session:
        Store(session).add_operator(name=BENCH_OPERATOR, display_name="Benchmark operator",
                                    credential_hash=hash_password(password), roles=[Role.OPERATOR],
                                    now=dt.datetime.now(dt.UTC))
    return ["--operator", BENCH_OPERATOR], password + "\n"


@contextlib.contextmanager
def hsm_service(env: dict[str, str], shares_dir: Path, socket: Path) -> Iterator[None]:
    proc = subprocess.Popen([str(REVOCA), "serve", "hsm"], env=env, stderr=subprocess.DEVNULL)
    try:
        client = HSMClient(socket)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.status()
                break
            except ServiceUnavailable:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("revoca serve hsm did not start") from None
                time.sleep(0.1)
        for path in sorted(shares_dir.glob("share-*.txt"))[:2]:
            status = client.activate(ceremony.read_share_file(path))
        if not status["activated"]:
            raise SystemExit(f"HSM not activated: {status['line']}")
        client.close()
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@dataclasses.dataclass(frozen=True)
class Run:
    wall: float
    rss_mb: float
    crl: Path
    cpu: float = 0.0


# What `revoca serve scheduler` does for a due list, in a process that has started and imported
# what the scheduler has (it runs for months): issue_list with every row streamed (no kept
# entries), timed around the call; CPU of this process (threads included), peak RSS of the call.
SCHEDULER_ISSUE = """
import datetime as dt, resource, sys, time
from pathlib import Path
from ca.config import load_settings
from ca.crl.issue import issue_list
from ca.enums import ListType
from ca.hsm.client import HSMClient
from ca.storage.engine import make_engine
from ca.trusted_time import guard_for
settings = load_settings()
engine = make_engine(settings.db_url)
keys = HSMClient(settings.hsm_socket)
guard = guard_for(settings)
before = resource.getrusage(resource.RUSAGE_SELF)
t = time.perf_counter()
info = issue_list(engine, keys, Path(settings.data_dir), "tokyo", ListType.CRL, now=dt.datetime.now(dt.UTC),
                  time_guard=guard, actor="bench", incremental=False)
wall = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the process this one was forked
# from (the bench, which inserted the revocations), VmHWM belongs to this program's memory alone
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(wall, cpu, peak_kb, info.number)
"""


def scheduler_run(env: dict[str, str], data: Path) -> Run:
    """The list issued as the scheduler issues it (SCHEDULER_ISSUE), its figures read from its last line."""
    proc = subprocess.run([sys.executable, "-c", SCHEDULER_ISSUE], env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the scheduler's issuance failed:\n{proc.stdout}{proc.stderr}")
    wall, cpu, rss_kb, _number = proc.stdout.strip().splitlines()[-1].split()
    return Run(float(wall), int(rss_kb) / 1024, _newest_crl(data), float(cpu))


def revoca_runs(root: Path, n: int, daily: int, db_url: str | None) -> tuple[Run, Run | None, Run]:
    """The first issue of tokyo's CRL (every entry streamed from the database), then, after
    `daily` more revocations, the next day's issue (the earlier entries come from ca.crl.cache)."""
    data = root / "var"
    sock_dir = Path(tempfile.mkdtemp(prefix="rvb"))  # Unix socket paths are short
    socket = sock_dir / "hsm.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(data), REVOCA_HSM_SOCKET=str(socket), REVOCA_HSM_KEY_ALGORITHM="rsa2048")
    raw: dict[str, object] = {"data_dir": str(data), "hsm": {"socket": str(socket), "key_algorithm": "rsa2048"}}
    if db_url:
        env["REVOCA_DATABASE_URL"] = db_url
        raw["database_url"] = db_url
    settings = settings_from_dict(raw)
    engine = make_engine(settings.db_url)
    try:
        t = time.perf_counter()
        print(f"setting up: demo hierarchy (RSA-2048 in SoftHSM2) in {data}", flush=True)
        ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=0)
        print(f"setting up: {n} revocations for tokyo", flush=True)
        insert_revocations(engine, "tokyo", n)
        login, password = bench_operator(engine)
        print(f"set up in {time.perf_counter() - t:.1f} s", flush=True)
        args = [str(REVOCA), "crl", "issue", "--ca", "tokyo", "--type", "crl", *login]
        if not _crl_registered():
            args = [sys.executable, "-c", REGISTER_AND_RUN, *args[1:]]
        with hsm_service(env, settings.demo_shares_dir, socket):
            wall, rss, out, cpu = measure_cpu(args, env, stdin=password)
            print(out.rstrip(), flush=True)
            first = Run(wall, rss, _newest_crl(data), cpu)
            second = None
            if daily:
                insert_revocations(engine, "tokyo", daily, start=n)
                wall, rss, out, cpu = measure_cpu(args, env, stdin=password)
                print(out.rstrip(), flush=True)
                second = Run(wall, rss, _newest_crl(data), cpu)
            scheduler = scheduler_run(env, data)
    finally:
        engine.dispose()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return first, second, scheduler


def _newest_crl(data: Path) -> Path:
    return max((data / "crls" / "tokyo" / "crl").glob("*.crl"), key=lambda p: int(p.stem))


def _crl_registered() -> bool:
    from ca.cli import cli

    return cli.get_command(None, "crl") is not None  # the CLI loads command modules on demand


def openssl_run(root: Path, n: int) -> tuple[float, float, float]:
    work = root / "openssl"
    work.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
                    "ca.pem", "-days", "3650", "-subj", "/C=JP/O=JPKI/CN=Bench CA"], cwd=work, check=True,
                   capture_output=True)
    with open(work / "index.txt", "w", encoding="ascii") as index:
        for serial, when, reason in entries(n):
            hexserial = format(serial, "X")
            hexserial = "0" * (len(hexserial) % 2) + hexserial
            index.write(f"R\t{(NOW + dt.timedelta(days=200)):%y%m%d%H%M%SZ}\t{when:%y%m%d%H%M%SZ},"
                        f"{REASONS[reason]}\t{hexserial}\tunknown\t/CN=bench\n")
    (work / "index.txt.attr").write_text("unique_subject = no\n")
    (work / "crlnumber").write_text("01\n")
    (work / "ca.cnf").write_text(
        "[ca]\ndefault_ca = bench\n[bench]\ndir = .\ndatabase = index.txt\ncrlnumber = crlnumber\n"
        "certificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\ndefault_crl_hours = 72\n"
        "crl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n")
    wall, rss, _, cpu = measure_cpu(["openssl", "ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"],
                                    dict(os.environ), cwd=work)
    return wall, rss, cpu


def check(crl: Path, n: int) -> None:
    """Not timed: the CRL parses, verifies with openssl and has every entry."""
    out = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(crl), "-noout", "-crlnumber"],
                         capture_output=True, text=True, check=True).stdout
    data = crl.read_bytes()
    print(f"check: {crl.name}: {len(data)} bytes, {out.strip()}, openssl parses it", flush=True)
    if n <= 1_000_000:
        from cryptography import x509

        parsed = x509.load_der_x509_crl(data)
        if len(parsed) != n:
            raise SystemExit(f"CRL has {len(parsed)} entries, expected {n}")
        print(f"check: cryptography counts {len(parsed)} entries", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--daily", type=int, default=1000,
                        help="New revocations before the second (next day's) issue; 0 skips it.")
    parser.add_argument("--skip-openssl", action="store_true", help="Only time revoca (e.g. for 10,000,000).")
    parser.add_argument("--skip-check", action="store_true", help="Do not parse the CRLs afterwards.")
    parser.add_argument("--db-url", help="A PostgreSQL URL to use instead of SQLite in the data directory.")
    parser.add_argument("--keep", type=Path, help="Work in this directory and keep it.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="revoca-crl-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        first, second, scheduler = revoca_runs(root, args.entries, args.daily, args.db_url)
        if not args.skip_check:
            check(first.crl, args.entries)
            if second is not None:
                check(second.crl, args.entries + args.daily)
            check(scheduler.crl, args.entries + args.daily)
        openssl_s, openssl_mb, openssl_cpu = (0.0, 0.0, 0.0) if args.skip_openssl else openssl_run(root, args.entries)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'issuer':<50}{'entries':>10}{'wall s':>9}{'CPU s':>8}{'peak RSS MB':>13}")
    print(f"{'revoca crl issue: first issue, all rows streamed':<50}{args.entries:>10}{first.wall:>9.2f}"
          f"{first.cpu:>8.2f}{first.rss_mb:>13.1f}")
    if second is not None:
        print(f"{'revoca crl issue: next day, ' + str(args.daily) + ' new rows':<50}{args.entries + args.daily:>10}"
              f"{second.wall:>9.2f}{second.cpu:>8.2f}{second.rss_mb:>13.1f}")
    print(f"{'revoca scheduler, in process: all rows streamed':<50}{args.entries + args.daily:>10}"
          f"{scheduler.wall:>9.2f}{scheduler.cpu:>8.2f}{scheduler.rss_mb:>13.1f}")
    if not args.skip_openssl:
        print(f"{'openssl ca -gencrl':<50}{args.entries:>10}{openssl_s:>9.2f}{openssl_cpu:>8.2f}{openssl_mb:>13.1f}")
    if second is not None:
        print(f"crl-daily entries={args.entries + args.daily} new={args.daily} revoca_s={second.wall:.2f} "
              f"revoca_rss_mb={second.rss_mb:.0f}")
    ratio = openssl_s / first.wall if first.wall else 0.0
    cpu_ratio = openssl_cpu / first.cpu if first.cpu else 0.0
    print(f"crl entries={args.entries} revoca_s={first.wall:.2f} openssl_s={openssl_s:.2f} ratio={ratio:.1f} "
          f"revoca_rss_mb={first.rss_mb:.0f} openssl_rss_mb={openssl_mb:.0f} revoca_cpu_s={first.cpu:.2f} "
          f"openssl_cpu_s={openssl_cpu:.2f} cpu_ratio={cpu_ratio:.1f} scheduler_s={scheduler.wall:.2f} "
          f"scheduler_ratio={openssl_s / scheduler.wall if scheduler.wall else 0.0:.1f}")


if __name__ == "__main__":
    main()
