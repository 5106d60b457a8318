"""Publishing and fetching a national-size CRL through the LDAP repository, one run.

    .venv/bin/python bench/ldap.py [--entries 1000000] [--db-url URL] [--keep DIR]

Sets up a temporary data directory with a demo hierarchy (P-256 keys: the signature is not
what is measured), revokes N subscriber certificates of CA tokyo and issues its CRL (about
36 MB at 1,000,000 entries), starts a local slapd on a free loopback port and registers a
verifier.  Then, each timed on its own:

* publish: `revoca repository publish` as a subprocess (start-up included, revoca's modules
  compiled to bytecode first, as an installed revoca has them): it reads the entry, writes
  the CRL with an assertion on the entryCSN, reads it back and compares the SHA-256, and
  records it;
* the same as `revoca serve publisher` does it in production: a running publisher (this
  process, which has imported what the service has), a new tokyo CRL issued, and the
  publisher's next round timed (write with the entryCSN assertion, read back, compare, record);
* reference: OpenLDAP's own `ldapmodify` replacing the same value (no read, no read-back);
* fetch: `ldapsearch` bound as the verifier, the whole CRL to a file, checked against the
  archived CRL byte for byte.

Then, unless `--delta 0`, the delta CRL case (issue 16): D more revocations (default 1,000),
then tokyo's delta CRL issued and published as the scheduler and the publisher services do it
(in their processes: issue_list(..., DELTA) then one publisher round, timed together, with the
delta's read-back), and fetched by the verifier with ldapsearch (deltaRevocationList;binary)
and checked byte for byte.  Line:

    ldap-delta base_entries=N changes=D issue_s=T publish_s=T total_s=T fetch_s=T size_kb=K

The last line is

    ldap entries=N publish_s=T fetch_s=T service_publish_s=T service_cpu_s=C service_slapd_cpu_s=C
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crl as crl_bench  # noqa: E402  (bench/crl.py: revocation rows and the wait4 launcher)

from ca import ceremony  # noqa: E402
from ca.config import TimeConfig, settings_from_dict  # noqa: E402
from ca.crl.freshest import DeltaPolicy  # noqa: E402
from ca.crl.issue import issue_list  # noqa: E402
from ca.enums import ListType
from ca.hsm import shares as sharing  # noqa: E402
from ca.hsm import token_for  # noqa: E402
from ca.storage.engine import make_engine  # noqa: E402
from ca.trusted_time import ClockGuard  # noqa: E402
from ca.verifiers.registry import add_verifier  # noqa: E402
from repository.service import local_slapd, make_publisher  # noqa: E402

# the embedded default [time] policy (no NTP server): a benchmark signs on the system clock
NO_NTP = ClockGuard(TimeConfig())

NOW = crl_bench.NOW
TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"
VERIFIER_DN = "cn=bench-verifier,ou=verifiers,o=JPKI,c=JP"
VERIFIER_PW = "bench-verifier-password"
PROJECT = Path(__file__).resolve().parent.parent
PACKAGES = ("ca", "ocsp", "repository")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _verifier_certificate() -> x509.Certificate:
    """The verifier's own certificate (its key is not needed here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=bench-verifier,O=Bench,C=JP")
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))


def _compile_revoca() -> None:
    """Write the bytecode of revoca's own modules, as `pip install` does for an installed revoca.

    With PYTHONDONTWRITEBYTECODE set (some shells and CI set it), an editable install has none,
    and every start compiles every revoca module it imports from source: about 0.6 billion
    instructions, an eighth of the timed publish, which a server never pays.  py_compile writes
    regardless of that variable, and Python reads bytecode whatever it says; stale files are
    ignored by their source timestamp.  The libraries in the venv were compiled when installed.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(PROJECT / p) for p in PACKAGES)], check=True)


def _timed(args: list[str], **kwargs: object) -> float:
    t = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--db-url", help="A PostgreSQL URL to use instead of SQLite in the data directory.")
    parser.add_argument("--keep", type=Path, help="Work in this directory and keep it.")
    parser.add_argument("--delta", type=int, default=1000,
                        help="Revocations after the base before the delta CRL is timed; 0 skips the delta case.")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="revoca-ldap-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    data = root / "var"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(data), REVOCA_HSM_KEY_ALGORITHM="p256", REVOCA_REPOSITORY_PORT=str(port))
    raw: dict[str, object] = {"data_dir": str(data), "hsm": {"key_algorithm": "p256"}, "repository": {"port": port}}
    if args.db_url:
        env["REVOCA_DATABASE_URL"] = raw["database_url"] = args.db_url
    settings = settings_from_dict(raw)
    engine = make_engine(settings.db_url)
    slapd = local_slapd(settings)
    try:
        print(f"setting up: demo hierarchy and {args.entries} revocations for tokyo in {data}", flush=True)
        result = ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=0)
        crl_bench.insert_revocations(engine, "tokyo", args.entries)
        secret = sharing.combine([share for _, share in result.shares[:2]])
        keys = token_for(settings).open(sharing.user_pin(secret))
        deltas = DeltaPolicy(settings.repository.base_dn)
        try:
            for ca in ("bridge", "tokyo", "osaka", "hokkaido"):
                if ca != "tokyo":
                    for list_type in (ListType.CRL, ListType.ARL):
                        issue_list(engine, keys, data, ca, list_type, now=NOW, time_guard=NO_NTP)
            issue_list(engine, keys, data, "tokyo", ListType.ARL, now=NOW, time_guard=NO_NTP)
            slapd.start()
            # a registered verifier; the publisher's sync gives it its account
            add_verifier(engine, name="bench-verifier", certificate=_verifier_certificate(), password=VERIFIER_PW,
                         now=dt.datetime.now(dt.UTC), base_dn=settings.repository.base_dn, actor="bench")
            # everything small in place first (and the account), so that the timed round is the big CRL alone
            first = make_publisher(settings, engine).round(side_work=True)
            if not first.ok:
                raise SystemExit(f"first publication failed: {first}")
            big = issue_list(engine, keys, data, "tokyo", ListType.CRL, now=NOW, deltas=deltas, time_guard=NO_NTP)
        except BaseException:
            keys.close()
            raise
        print(f"tokyo CRL #{big.number}: {big.entries} entries, {big.size / 1e6:.1f} MB", flush=True)
        _compile_revoca()

        login, password = crl_bench.bench_operator(engine)
        publish_s, publish_mb, out, publish_cpu = crl_bench.measure_cpu(
            [str(crl_bench.REVOCA), "repository", "publish", *login], env, stdin=password)
        print(out.rstrip(), flush=True)
        if f"#{big.number}" not in out:
            raise SystemExit("revoca repository publish did not publish the CRL")

        # the same, as `revoca serve publisher` does it: a running publisher (this process has
        # imported what it has), a new CRL of tokyo appears, its next round writes and reads it back
        publisher = make_publisher(settings, engine)
        publisher.round(side_work=True)  # untimed: its first round's queries, accounts, access log
        again = issue_list(engine, keys, data, "tokyo", ListType.CRL, now=NOW + dt.timedelta(minutes=1),
                           deltas=deltas, time_guard=NO_NTP)
        slapd_cpu = _cpu_seconds(int(slapd.pid_path.read_text()))
        c0, t0 = time.process_time(), time.perf_counter()
        report = publisher.round(side_work=False)
        service_s, service_cpu = time.perf_counter() - t0, time.process_time() - c0
        service_slapd_cpu = _cpu_seconds(int(slapd.pid_path.read_text())) - slapd_cpu
        if not any(f"tokyo CRL #{again.number}" in line for line in report.published):
            raise SystemExit(f"the publisher's round did not publish CRL #{again.number}: {report}")
        print(f"tokyo CRL #{again.number} published by the running publisher's round in {service_s:.2f} s "
              f"({service_cpu:.2f} s CPU here, {service_slapd_cpu:.2f} s in slapd)", flush=True)

        ldif = root / "reference.ldif"
        ldif.write_text(f"dn: {TOKYO_DN}\nchangetype: modify\nreplace: certificateRevocationList;binary\n"
                        f"certificateRevocationList;binary:< file://{big.path}\n")
        reference_s = _timed(["ldapmodify", "-x", "-H", slapd.uri, "-D", slapd.root_dn, "-y",
                              str(slapd.password_path), "-f", str(ldif)])

        fetched = root / "fetched"
        fetched.mkdir(exist_ok=True)
        fetch_s = _timed(["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", VERIFIER_DN, "-w", VERIFIER_PW,
                          "-b", TOKYO_DN, "-s", "base", "-t", "-T", str(fetched), "certificateRevocationList;binary"])
        files = list(fetched.iterdir())
        if len(files) != 1 or hashlib.sha256(files[0].read_bytes()).digest() != big.sha256:
            raise SystemExit("the CRL fetched by the verifier differs from the archived one")
        delta_line = _delta_case(args, engine, keys, settings, slapd, root, deltas) if args.delta else None
        keys.close()
    finally:
        slapd.stop()
        engine.dispose()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'operation':<62}{'wall s':>9}{'peak RSS MB':>13}")
    print(f"{'revoca repository publish (read, write, read back, record)':<62}{publish_s:>9.2f}{publish_mb:>13.1f}")
    print(f"{'revoca serve publisher: its round (write, read back, record)':<62}{service_s:>9.2f}{'':>13}")
    print(f"{'ldapmodify replace, same value (reference: write only)':<62}{reference_s:>9.2f}{'':>13}")
    print(f"{'ldapsearch as the verifier, whole CRL to a file':<62}{fetch_s:>9.2f}{'':>13}")
    print(f"ldap-reference entries={args.entries} ldapmodify_s={reference_s:.2f} size_mb={big.size / 1e6:.1f} "
          f"publish_rss_mb={publish_mb:.0f} publish_cpu_s={publish_cpu:.2f}")
    if delta_line:
        print(delta_line)
    print(f"ldap entries={args.entries} publish_s={publish_s:.2f} fetch_s={fetch_s:.2f} "
          f"service_publish_s={service_s:.2f} service_cpu_s={service_cpu:.2f} "
          f"service_slapd_cpu_s={service_slapd_cpu:.2f}")


def _delta_case(args: argparse.Namespace, engine: Any, keys: Any, settings: Any, slapd: Any, root: Path,
                deltas: DeltaPolicy) -> str:
    """D more revocations, then the delta CRL issued and published as the services do it, timed."""
    publisher = make_publisher(settings, engine)
    publisher.round(side_work=True)  # the base is already there; the account and access log are done
    # the scheduler issues a delta right after each base (empty, or nearly): that one, untimed,
    # is also the services' first round of these queries; the timed one is the next
    issue_list(engine, keys, settings.data_dir, "tokyo", ListType.DELTA, now=dt.datetime.now(dt.UTC), deltas=deltas,
               time_guard=NO_NTP)
    publisher.round(side_work=False)
    crl_bench.insert_revocations(engine, "tokyo", args.delta, start=args.entries)
    now = dt.datetime.now(dt.UTC)
    slapd_cpu = _cpu_seconds(int(slapd.pid_path.read_text()))
    c0, t0 = time.process_time(), time.perf_counter()
    delta = issue_list(engine, keys, settings.data_dir, "tokyo", ListType.DELTA, now=now, deltas=deltas,
                       time_guard=NO_NTP)
    t1 = time.perf_counter()
    report = publisher.round(now, side_work=False)
    c2, t2 = time.process_time(), time.perf_counter()
    slapd_cpu = _cpu_seconds(int(slapd.pid_path.read_text())) - slapd_cpu
    if not any(f"tokyo DELTA #{delta.number}" in line for line in report.published):
        raise SystemExit(f"the delta CRL was not published: {report}")
    if delta.entries != args.delta:
        raise SystemExit(f"the delta CRL has {delta.entries} entries, expected {args.delta}")
    fetched = root / "fetched-delta"
    fetched.mkdir(exist_ok=True)
    fetch_s = _timed(["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", VERIFIER_DN, "-w", VERIFIER_PW,
                      "-b", TOKYO_DN, "-s", "base", "-t", "-T", str(fetched), "deltaRevocationList;binary"])
    files = list(fetched.iterdir())
    if len(files) != 1 or hashlib.sha256(files[0].read_bytes()).digest() != delta.sha256:
        raise SystemExit("the delta CRL fetched by the verifier differs from the archived one")
    print(f"tokyo delta CRL #{delta.number}: {delta.entries} entries, {delta.size} bytes; issued in "
          f"{t1 - t0:.3f} s, published and read back in {t2 - t1:.3f} s", flush=True)
    return (f"ldap-delta base_entries={args.entries} changes={args.delta} issue_s={t1 - t0:.3f} "
            f"publish_s={t2 - t1:.3f} total_s={t2 - t0:.3f} cpu_s={c2 - c0:.3f} slapd_cpu_s={slapd_cpu:.3f} "
            f"fetch_s={fetch_s:.3f} size_kb={delta.size / 1000:.1f}")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/<pid>/stat): on a loaded machine the wall
    time says more about the other processes than about this one."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
