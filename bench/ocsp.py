"""OCSP under a realistic load: `revoca serve ocsp` against `openssl ocsp -multi 2`, same machine, same run.

    .venv/bin/python bench/ocsp.py [--entries 100000] [--good-entries 0] [--serials 20000]
        [--nonce-serials 5000] [--mix revoked=75,unknown=25] [--connections 16] [--seed 16]
        [--quick] [--skip-openssl] [--skip-token-rsa] [--history-cost] [--revoca-args ARGS] [--db-url URL]
        [--keep DIR]

Workload: what verifiers really send.  K different serials (--serials, default 20,000), each
asked once per pass: a verifier checks many citizens' certificates, not one again and again.
They are drawn uniformly from a population of N revoked certificates of CA tokyo (--entries,
default 100,000), G good ones (--good-entries, default 0) and serials tokyo never issued, in
the shares of --mix: by default 75% revoked and 25% unknown, as issue 16 measured, and
60% revoked, 20% good, 20% unknown when the population has good certificates (G > 0).
Every request is signed by a registered verifier (RSA-2048), one SHA-1 CertID; with a nonce,
each request has a nonce of its own.  Nonce cells ask the first --nonce-serials (default
5,000) of the same shuffled serials: a nonce answer is signed on demand whatever the serial,
so fewer requests measure the same thing in less time (give --nonce-serials 20000 for all).
bench/ocsp_requests.py makes the mix and the requests; they are written to files, never put
on a command line, so K has no limit but memory and disk.

Each cell is a fresh set of responder processes: a cold pass (every request once, first time
the responder sees any of these serials) and then a warm pass (the same requests again, in
the same order, in the same processes), each timed from the first connect to the last answer.
Before the cold pass, 2C requests for a serial outside the mix (a probe) make sure every
worker has started; nothing of the mix is asked before it.  Cells: no nonce and nonce, each
with one connection per request (`Connection: close`, as openssl's client, which cannot keep
alive, asks) and with HTTP/1.1 keep-alive, for:

* revoca, key in the token (the production default): `revoca serve ocsp --workers 2` (granian,
  its default server, one app thread per worker; `--revoca-args "--server gunicorn"` measures
  gunicorn's), answers signed with the delegated responder certificate the ceremony made for
  tokyo, its key in SoftHSM2 through `revoca serve hsm`: P-256 ([ocsp] responder_algorithm's
  default since issue 16; RSA-2048 before);
* revoca, key in the token, RSA-2048: after `revoca ocsp renew --ca tokyo --algorithm rsa2048`,
  one connection per request, without and with a nonce (--skip-token-rsa leaves it out);
* revoca, key file: the same with `--key-store file` after `revoca ocsp key-file --ca tokyo
  --algorithm rsa2048` (an RSA-2048 key in an encrypted file); skipped, said so, and its
  figures n/a when this revoca has no such command;
* revoca, P-256 key file: after `revoca ocsp key-file --ca tokyo --algorithm p256`, nonce
  cells only (signing is what a nonce costs); n/a, with the reason, when revoca cannot
  issue or use a P-256 responder key in a file;
* openssl: `openssl ocsp -index index.txt -CA tokyo.pem -rsigner resp.pem -rkey resp.key
  -multi 2 -nmin 60`, index.txt with the same population (revoked with the same times and
  reasons, good as valid), a self-made RSA-2048 responder certificate (OCSPSigning) with its
  key in an unencrypted PEM file (tokyo's key is in the token; openssl does not check the
  responder's chain when it serves).  It ignores request signatures, signs every answer,
  answers HTTP/1.0 and closes: it has no keep-alive cells.

Before each revoca responder (token P-256, token RSA-2048, RSA-2048 file) starts, `revoca serve
ocsp-signer --once` (with its --key-store) signs every certificate's answer ahead, as the running
signer keeps them in production (issue 16), and says how many it signed, how fast, and what the
table holds: with the default 100,000 entries that is the measure of a full re-sign.  The cold
pass is then the first time the responder processes see these serials, not the first time they
were signed; unknown serials are still signed on demand.

The single-serial figure the old bench gave (one revoked serial asked over and over, which
revoca answers from a per-worker cache) stays as one extra row, "single serial (friendly, not
representative)": revoca token, no nonce, keep-alive, after the warm pass of that cell.

Load: bench/ocsp_load.c, a small epoll client in C built at run time with the machine's C
compiler (bench/ocsp_load.py says why not wrk nor Python: a fixed pass of distinct bodies
from a file, the connect inside a close-mode latency, every answer kept for checking, and
little CPU taken from the 2 cores it shares with the responder), C connections at once
(--connections, default 16).  Latency: per request, from connect (close) or from the first
byte written on a kept connection (keep-alive) to the answer's last byte; p50 and p99 per
pass.  Every answer of every pass is checked after the pass (not timed) by
bench/ocsp_requests.py: successful, the right serial and status, revoked at the right time
for the right reason, the nonce echoed, from the expected responder certificate, every
distinct answer's signature verified; a wrong answer stops the bench, and so do more than
1% of requests without an HTTP 200 `successful` answer.  revoca's query history must hold a
row for every request of a responder's passes answered once the responder has stopped (a
stopped worker writes what it holds), and no more unsuccessful rows than the client saw.  Responders run one after
the other, never two at once.  With defaults a run takes about 8 minutes on a quiet 2-core
machine at the rates of issue 16 (most of it the token cells; set-up, 14 responder starts and
the checks about 2 minutes), more when other work shares the cores; --quick (2,000 entries,
1,000 serials, 300 with a nonce) is a smoke run of about two minutes.
--history-cost adds what recording every query costs (in process, and a key-file cell with
the app built without the history).

The last line, for scripts (one line, wrapped here; n/a where a responder was skipped or could
not run):

    ocsp-realistic serials=K entries=N revoca_token_close_rps=… revoca_file_close_rps=… openssl_close_rps=…
    ratio_token_close=… ratio_file_close=… ratio_keepalive=… ratio_nonce_p256=… ratio_nonce_token=… p99_ms=…
    openssl_p99_ms=… ratio_token_p256_close=… ratio_nonce_token_p256=… ratio_token_rsa_close=…

all from cold passes (the first time the responder sees each serial, the case a responder
serving millions of citizens meets), no nonce and one connection per request unless named:
*_close_rps are answers a second of revoca (key in the token, the production default: the
ceremony's responder key, P-256; RSA-2048 key file) and openssl;
ratio_token_close and ratio_file_close are those over openssl's; ratio_keepalive is revoca
(token) with keep-alive over openssl (which cannot keep alive); ratio_nonce_p256 and
ratio_nonce_token are revoca with a nonce (P-256 key file; RSA-2048 in the token), one
connection per request, over openssl with a nonce; p99_ms and openssl_p99_ms are the p99
latencies of revoca (token) and openssl in the no-nonce one-connection-per-request cell;
ratio_token_p256_close and ratio_nonce_token_p256 are the token P-256 cells over openssl's (the
production default's since P-256 became it, so the first equals ratio_token_close);
ratio_token_rsa_close is the RSA-2048 token cell without a nonce.
The table above it has every cell, cold and warm.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import http.client
import importlib.util
import io
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

# Run as `python bench/ocsp.py`, this file's folder comes first on sys.path and its name would hide
# the ocsp package: take the folder off and load the bench helpers (bench/crl.py: demo set-up,
# revocation rows, the HSM service; bench/ocsp_requests.py; bench/ocsp_load.py) by their paths.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_ocsp_requests", _HERE / "ocsp_requests.py")
assert _spec is not None and _spec.loader is not None
ocsp_requests = sys.modules["bench_ocsp_requests"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ocsp_requests)
crl_bench = ocsp_requests.crl_bench
load = ocsp_requests.bench_module("ocsp_load")

from ca import ceremony  # noqa: E402
from ca.config import TimeConfig, settings_from_dict  # noqa: E402
from ca.enums import CertKind  # noqa: E402
from ca.storage.engine import make_engine, session_scope  # noqa: E402
from ca.storage.models import Certificate, OCSPQuery  # noqa: E402
from ca.storage.store import Store  # noqa: E402
from ca.trusted_time import ClockGuard  # noqa: E402
from ca.verifiers.registry import add_verifier  # noqa: E402

# the embedded default [time] policy (no NTP server): a benchmark signs on the system clock
NO_NTP = ClockGuard(TimeConfig())

REVOCA = crl_bench.REVOCA
NOW = crl_bench.NOW
ocsp_request = ocsp_requests.ocsp_request  # bench/ocsp_memory.py builds its warm-up requests with it
REASON_FLAGS = ocsp_requests.REASON_FLAGS
HISTORY_WAIT = 5.0  # seconds: a stopped responder's rows are written; on a slow disk they may lag a little
SINGLE_SERIAL_MAX = 20_000  # requests of the single-serial row


# -- tools ----------------------------------------------------------------------------------------


def free_port() -> int:
    """A port free on 127.0.0.1 and on :: (openssl listens on [::]), below the ephemeral range:
    the load client's thousands of connections a second take ephemeral ports, which a responder
    started a moment later could then not bind."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        try:
            with socket.socket(socket.AF_INET6) as s6:
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # [::] and 0.0.0.0 both
                s6.bind(("::", port))
        except OSError:
            continue
        return port
    raise SystemExit("no free port between 20000 and 32000")


class StartFailed(Exception):
    pass


def wait_ready(port: int, body: bytes, proc: subprocess.Popen[bytes], log: Path, what: str,
               timeout: float = 300) -> None:
    """Until the responder answers a real request over HTTP.

    Not a bare connect: OpenSSL 3.0's responder process that accepts a connection closed
    before any request byte arrives loops on it for ever.
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise StartFailed(f"{what} exited with {proc.returncode} before answering on port {port}:\n{tail}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", "/", body, {"Content-Type": "application/ocsp-request"})
                conn.getresponse().read()
                return
            finally:
                conn.close()
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not answer on port {port} within {timeout:.0f} s")
        time.sleep(0.1)


@contextlib.contextmanager
def server(args: list[str], env: dict[str, str], cwd: Path, log: Path, port: int, what: str, probe: bytes, *,
           own_group: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """A responder and its children (gunicorn's workers, openssl's -multi processes) in one process group.

    `openssl ocsp -multi` makes that group itself (and exits if it cannot: a session leader
    cannot) and gets SIGKILL: on SIGTERM its parent took 2 s and its children ~2 s more (4 s a
    cell, measured), and it keeps nothing a stop could lose.  revoca's responders get SIGTERM, the
    whole group, as a service manager stops them: their query history is written as they exit.
    """
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=not own_group)
    try:
        wait_ready(port, probe, proc, log, what)
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL if own_group else signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        gone_by = time.monotonic() + 0.5  # the group's other processes go too before the next responder
        while time.monotonic() < gone_by:  # takes the cores: polled, 14 responders stop in a run
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


# -- certificates and requests ---------------------------------------------------------------------


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def self_signed(cn: str, key: rsa.RSAPrivateKey, *, ocsp_signing: bool = False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Bench"),
                      x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "JP")])
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
               .not_valid_after(now + dt.timedelta(days=30)))
    if ocsp_signing:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=True)
    return builder.sign(key, hashes.SHA256())


@dataclasses.dataclass(frozen=True)
class Query:
    serial: int
    revoked_at: dt.datetime
    reason: int
    path: Path  # the DER request
    nonce: bytes | None


# -- checking answers one by one (bench/ocsp_memory.py's warm-up) ----------------------------------


def post(port: int, body: bytes, conn: http.client.HTTPConnection | None = None
         ) -> tuple[bytes, bool, http.client.HTTPConnection]:
    """(response body, whether the server keeps the connection, the connection)."""
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/", body, {"Content-Type": "application/ocsp-request"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise SystemExit(f"HTTP {resp.status} from port {port}: {data[:200]!r}")
    return data, not resp.will_close, conn


def check_answer(body: bytes, query: Query, what: str, *, issuer: x509.Certificate | None,
                 responder: x509.Certificate | None) -> None:
    """Successful, revoked at the right time for the right reason, signed by an RSA-2048 responder
    certificate (issued by `issuer`, or being `responder`), nonce echoed.  SystemExit otherwise."""
    def fail(why: str) -> None:
        raise SystemExit(f"{what}: wrong answer for serial {query.serial:x}: {why}")

    resp = x509_ocsp.load_der_ocsp_response(body)
    if resp.response_status != x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
        fail(f"response status {resp.response_status.name}")
    if resp.serial_number != query.serial or resp.certificate_status != x509_ocsp.OCSPCertStatus.REVOKED:
        fail(f"{resp.certificate_status.name} for serial {resp.serial_number:x}")
    if resp.revocation_time_utc != query.revoked_at.replace(microsecond=0):
        fail(f"revoked at {resp.revocation_time_utc}, expected {query.revoked_at}")
    if resp.revocation_reason != REASON_FLAGS[query.reason]:
        fail(f"reason {resp.revocation_reason}, expected {REASON_FLAGS[query.reason]}")
    if len(resp.certificates) != 1:
        fail(f"{len(resp.certificates)} certificates in the response, expected the responder's")
    signer = resp.certificates[0]
    public = signer.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size != 2048:
        fail("the responder key is not RSA-2048")
    assert isinstance(public, rsa.RSAPublicKey) and resp.signature_hash_algorithm is not None
    public.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), resp.signature_hash_algorithm)
    if issuer is not None:
        signer.verify_directly_issued_by(issuer)
    if responder is not None and signer != responder:
        fail("signed by another certificate than the responder's")
    try:
        echoed: bytes | None = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed != query.nonce:
        fail(f"nonce {echoed!r}, expected {query.nonce!r}")


def check_responder(port: int, queries: list[Query], what: str, *, issuer: x509.Certificate | None = None,
                    responder: x509.Certificate | None = None) -> bool:
    """Every request answered correctly; returns whether the responder keeps connections open."""
    keep_alive, conn = True, None
    for query in queries:
        try:
            body, kept, conn = post(port, query.path.read_bytes(), conn)
        except OSError as exc:
            raise SystemExit(f"{what}: no answer from port {port} ({exc!r})") from None
        check_answer(body, query, what, issuer=issuer, responder=responder)
        if not kept:
            keep_alive = False
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return keep_alive


# -- responders and cells ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """One responder to measure and how to start it on a port."""

    label: str  # revoca, openssl, no-hist
    key: str  # token RSA-2048, file P-256, ...
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    cwd: Path
    log: Path
    issuer: x509.Certificate | None = None  # its responder certificate must be issued by this
    responder: x509.Certificate | None = None  # or must be this
    engine: sa.Engine | None = None  # revoca's database, for the query history
    own_group: bool = False  # see `server`
    keeps_alive: bool = True  # openssl answers HTTP/1.0 and closes: no keep-alive cells

    @contextlib.contextmanager
    def started(self, probe: bytes) -> Iterator[int]:
        """The responder answering on a port (see `on_a_free_port`)."""
        with on_a_free_port(self.argv, self.env, self.cwd, self.log, probe, own_group=self.own_group) as (port, _):
            yield port


@contextlib.contextmanager
def on_a_free_port(argv: Callable[[int], list[str]], env: dict[str, str], cwd: Path, log: Path, probe: bytes, *,
                   own_group: bool = False) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """(port, process) of a responder answering on a free port (`server`); started again on another
    port if it exits at once (a port taken between the check and the bind)."""
    for attempt in range(3):
        port = free_port()
        args = argv(port)
        try:
            with server(args, env, cwd, log, port, " ".join(args[:3]), probe, own_group=own_group) as proc:
                yield port, proc
                return
        except StartFailed as exc:
            if attempt == 2:
                raise SystemExit(str(exc)) from None
            print(f"  ({exc.args[0].splitlines()[0]}; again on another port)", flush=True)


@dataclasses.dataclass(frozen=True)
class Workload:
    """The requests of every pass, on disk (bench/ocsp_requests.py), and what each must get."""

    plain: list  # Expected, no nonce: the K serials
    nonce: list  # Expected, with a nonce: the first --nonce-serials of them
    probe: list  # Expected: 2C times the probe serial
    single: list  # Expected: one revoked serial, many times
    files: dict[str, Path]  # plain, nonce, probe, single: bodies files for the load client
    probe_body: bytes
    client: Path
    connections: int
    work: Path  # where each pass's answers go


@dataclasses.dataclass(frozen=True)
class Cell:
    label: str
    key: str
    nonce: bool
    keep_alive: bool
    cold: Any  # bench/ocsp_load.py Pass
    warm: Any


def run_pass(port: int, workload: Workload, which: str, keep_alive: bool, what: str, target: Target
             ) -> tuple[Any, Any]:
    """One pass of the `which` requests, every answer checked (after the timing)."""
    answers = workload.work / "answers.bin"
    done = load.run(workload.client, port, workload.files[which], workload.connections, keep_alive=keep_alive,
                    answers=answers)
    wanted = getattr(workload, which)
    checked = ocsp_requests.check_answers(done.answers(), wanted, f"{target.label} ({target.key}, {what})",
                                          responder=target.responder, issuer=target.issuer)
    answers.unlink()
    return done, checked


def measure(target: Target, workload: Workload, *, nonce: bool, keep_alive: bool, single: bool = False
            ) -> list[Cell]:
    """A fresh responder: the probe, the cold pass, the warm pass (and the single-serial pass)."""
    which = "nonce" if nonce else "plain"
    kind = f"{'nonce' if nonce else 'no nonce'}, {'keep-alive' if keep_alive else 'close'}"
    cells = []
    with target.started(workload.probe_body) as port:
        run_pass(port, workload, "probe", False, "probe", target)
        before = history_rows(target.engine) if target.engine is not None else (0, 0)
        sent = failed = 0  # requests answered over HTTP; of them, not `successful`
        passes = []
        for name in ("cold", "warm"):
            done, checked = run_pass(port, workload, which, keep_alive, f"{kind}, {name}", target)
            sent, failed = sent + done.requests - done.errors, failed + checked.not_successful
            passes.append((done, checked))
            print(f"  {target.label:<8} {target.key:<15} {kind:<22} {name}: {done.rps:>8.0f} req/s  "
                  f"p50 {done.p50_ms:6.2f} ms  p99 {done.p99_ms:7.2f} ms  ({done.requests} requests, "
                  f"{done.connections} connections, {done.errors} without answer, "
                  f"{checked.not_successful} not successful; {checked.signatures_checked} "
                  "signatures verified)", flush=True)
        cells.append(Cell(target.label, target.key, nonce, keep_alive, passes[0][0], passes[1][0]))
        if single:
            done, checked = run_pass(port, workload, "single", keep_alive, f"{kind}, single serial", target)
            sent, failed = sent + done.requests - done.errors, failed + checked.not_successful
            print(f"  {target.label:<8} {target.key:<15} {kind:<22} single serial: {done.rps:>8.0f} req/s  "
                  f"p99 {done.p99_ms:7.2f} ms (friendly, not representative)", flush=True)
            cells.append(Cell("single", target.key, nonce, keep_alive, done, done))
    if target.engine is not None:  # after the stop: each worker writes what it holds as it exits
        check_history(target.engine, before, sent, failed)
    return cells


def check_history(engine: sa.Engine, before: tuple[int, int], sent: int, failed: int) -> None:
    """The query history has a row for every request answered since `before`, and no more unsuccessful
    ones than the client counted (rows of the probe, written late, may add to the total)."""
    deadline = time.monotonic() + HISTORY_WAIT
    while True:
        after = history_rows(engine)
        recorded = after[0] - before[0]
        if recorded >= sent or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if after[1] - before[1] > failed or recorded < sent:
        raise SystemExit(f"the query history lost queries or recorded failed answers: {recorded} rows for {sent} "
                         f"requests answered, {after[1] - before[1]} unsuccessful where the client saw {failed}")


def history_rows(engine: sa.Engine) -> tuple[int, int]:
    """(rows in revoca's query history, rows of them whose answer was not `successful`)."""
    with engine.connect() as conn:
        total = conn.scalar(sa.select(sa.func.count()).select_from(OCSPQuery)) or 0
        failed = conn.scalar(sa.select(sa.func.count()).select_from(OCSPQuery)
                             .where(OCSPQuery.response_status != "successful")) or 0
    return total, failed


# -- the responders ----------------------------------------------------------------------------------


def key_file_support(env: dict[str, str]) -> str:
    """'' when this revoca has `revoca ocsp key-file`, else why not."""
    proc = subprocess.run([str(REVOCA), "ocsp", "key-file", "--help"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        first = (proc.stderr or proc.stdout).strip().splitlines()
        return f"`revoca ocsp key-file` is not in this revoca yet ({first[-1] if first else proc.returncode})"
    serve = subprocess.run([str(REVOCA), "serve", "ocsp", "--help"], env=env, capture_output=True, text=True)
    if "--key-store" not in serve.stdout:
        return "`revoca serve ocsp` has no --key-store option yet"
    return ""


def write_openssl_index(path: Path, n: int, good: int = 0) -> None:
    """openssl's index.txt: the N revoked entries of bench/crl.py, then G valid ones."""
    expires = f"{NOW + dt.timedelta(days=200):%y%m%d%H%M%SZ}"

    def hexserial(serial: int) -> str:
        text = format(serial, "X")
        return "0" * (len(text) % 2) + text

    with open(path, "w", encoding="ascii") as index:
        for serial, when, reason in crl_bench.entries(n):
            index.write(f"R\t{expires}\t{when:%y%m%d%H%M%SZ},{crl_bench.REASONS[reason]}\t{hexserial(serial)}\t"
                        "unknown\t/CN=bench\n")
        for serial in ocsp_requests.good_serials(n, good):
            index.write(f"V\t{expires}\t\t{hexserial(serial)}\tunknown\t/CN=bench\n")


def insert_good(engine: sa.Engine, ca_name: str, n_revoked: int, n_good: int) -> None:
    """G certificate rows of the CA, not revoked (serials from bench/ocsp_requests.py `good_serials`)."""
    cols = Certificate.__table__.c
    dialect = engine.dialect
    serial_of = crl_bench._bind(cols.serial, dialect)
    time_of = crl_bench._bind(cols.not_before, dialect)
    kind = crl_bench._bind(cols.kind, dialect)(CertKind.SUBSCRIBER)
    with session_scope(engine) as session:
        store = Store(session)
        ca = store.ca(ca_name)
        ca_id, key_id = ca.id, store.current_key(ca).id
        first_id = (session.scalar(sa.select(sa.func.max(Certificate.id))) or 0) + 1
    not_before, not_after, now = (time_of(NOW - dt.timedelta(days=900)), time_of(NOW + dt.timedelta(days=200)),
                                  time_of(NOW))
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = (f"INSERT INTO certificates (id, issuer_ca_id, issuer_key_id, kind, serial, subject_dn, not_before, "
           f"not_after, fingerprint_sha256, der, created_at) VALUES ({', '.join([mark] * 11)})")
    rows = [(first_id + i, ca_id, key_id, kind, serial_of(serial), "CN=bench", not_before, not_after,
             (first_id + i).to_bytes(32, "big"), b"", now)
            for i, serial in enumerate(ocsp_requests.good_serials(n_revoked, n_good))]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for i in range(0, len(rows), crl_bench.BATCH):
            cursor.executemany(sql, rows[i:i + crl_bench.BATCH])
        raw.commit()
    finally:
        raw.close()


def tokyo_responder(engine: sa.Engine, *, key_file: bool) -> x509.Certificate:
    """The delegated responder certificate revoca should sign tokyo's answers with: the newest
    one whose key is in a file (`--key-store file`) or in the token."""
    from ocsp.issuers import FILE_PREFIX  # with the key-file mode only

    in_file = Certificate.key_label.startswith(FILE_PREFIX)
    with session_scope(engine, readonly=True) as session:
        tokyo = Store(session).ca("tokyo")
        der = session.scalar(sa.select(Certificate.der).where(
            Certificate.issuer_ca_id == tokyo.id, Certificate.kind == CertKind.OCSP_RESPONDER,
            in_file if key_file else sa.not_(in_file)).order_by(Certificate.id.desc()).limit(1))
    if der is None:
        raise SystemExit(f"tokyo has no responder certificate with its key in {'a file' if key_file else 'the token'}")
    return x509.load_der_x509_certificate(der)


def tokyo_certificate(engine: sa.Engine) -> x509.Certificate:
    with session_scope(engine, readonly=True) as session:
        tokyo = Store(session).ca("tokyo")
        der = session.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo.id,
                                                              Certificate.kind == CertKind.SELF_SIGNED)
                             .order_by(Certificate.id.desc()).limit(1))
    assert der is not None
    return x509.load_der_x509_certificate(der)


REVOCA_ARGS: list[str] = []  # --revoca-args, e.g. "--server gunicorn"


def revoca_serve(port: int, *extra: str) -> list[str]:
    return [str(REVOCA), "serve", "ocsp", "--port", str(port), "--workers", "2", *REVOCA_ARGS, *extra]


def openssl_serve(port: int) -> list[str]:
    return ["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner", "resp.pem", "-rkey", "resp.key",
            "-CA", "tokyo.pem", "-multi", "2", "-nmin", "60"]


def key_file(env: dict[str, str], algorithm: str, shares_dir: Path, command: str = "key-file") -> None:
    """`revoca ocsp key-file --ca tokyo --algorithm ALG` (or `ocsp renew`, a key in the token) by two
    of the demo's key managers (their passwords are beside the demo shares); SystemExit with its last
    line if it fails."""
    names = sorted(p.stem for p in shares_dir.glob("keymanager*.password"))[:2]
    logins = [a for name in names for a in ("--operator", name)]
    passwords = "".join((shares_dir / f"{name}.password").read_text(encoding="utf-8").splitlines()[-1] + "\n"
                        for name in names)
    argv = [str(REVOCA), "ocsp", command, "--ca", "tokyo", "--algorithm", algorithm]
    proc = subprocess.run(argv + logins, env=env, input=passwords, capture_output=True, text=True)
    if proc.returncode != 0 and "--operator" in proc.stderr and "no such option" in proc.stderr.lower():
        proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)  # older CLI
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        raise SystemExit(f"revoca ocsp {command} --algorithm {algorithm} failed: {' '.join(last)}")
    print("  " + (proc.stdout.rstrip() or proc.stderr.rstrip()).replace("\n", "\n  "), flush=True)


def presign(env: dict[str, str], root: Path, *extra: str) -> None:
    """`revoca serve ocsp-signer --once`: every answer signed ahead before the responders start, as the
    running signer keeps them in production; its line (how many, how long, the table's size) printed.
    Skipped, said so, when this revoca has no background signer."""
    argv = [str(REVOCA), "serve", "ocsp-signer", "--once", *extra]
    proc = subprocess.run(argv, env=env, cwd=root, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        print(f"  answers not signed ahead ({' '.join(argv[1:])}): {' '.join(last)}", flush=True)
        return
    print(f"  {' '.join(argv[1:])}: {proc.stdout.strip()}", flush=True)


CELLS = [(False, False), (False, True), (True, False), (True, True)]  # (nonce, keep-alive)


def run(root: Path, args: argparse.Namespace) -> tuple[list[Cell], dict[str, str]]:
    """Every cell, and why a responder was skipped (by key: file, p256, openssl)."""
    data = root / "var"
    sock_dir = Path(tempfile.mkdtemp(prefix="rvb"))  # Unix socket paths are short
    sock = sock_dir / "hsm.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(data), REVOCA_HSM_SOCKET=str(sock), REVOCA_HSM_KEY_ALGORITHM="rsa2048",
               # capacity is measured, not the configured rate limits (one address, one verifier here)
               REVOCA_OCSP_RATE_PER_ADDRESS="0", REVOCA_OCSP_RATE_PER_VERIFIER="0")
    raw: dict[str, object] = {"data_dir": str(data), "hsm": {"socket": str(sock), "key_algorithm": "rsa2048"}}
    if args.db_url:
        env["REVOCA_DATABASE_URL"] = raw["database_url"] = args.db_url
    settings = settings_from_dict(raw)
    engine = make_engine(settings.db_url)
    cells: list[Cell] = []
    skipped: dict[str, str] = {}
    try:
        t = time.perf_counter()
        client = load.build(root / "client")
        print(f"setting up: demo hierarchy (RSA-2048 CA keys in SoftHSM2, responder keys as [ocsp] "
              f"responder_algorithm: {settings.ocsp.responder_algorithm}) in {data}", flush=True)
        ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=0)
        print(f"setting up: {args.entries} revoked and {args.good_entries} good certificates of tokyo", flush=True)
        crl_bench.insert_revocations(engine, "tokyo", args.entries)
        if args.good_entries:
            insert_good(engine, "tokyo", args.entries, args.good_entries)
        tokyo = tokyo_certificate(engine)
        files = root / "files"
        files.mkdir(exist_ok=True)
        (files / "tokyo.pem").write_bytes(_pem(tokyo))
        verifier_key = rsa.generate_private_key(65537, 2048)
        verifier = self_signed("bench-verifier", verifier_key)
        add_verifier(engine, name="bench-verifier", certificate=verifier, password=None, now=dt.datetime.now(dt.UTC),
                     base_dn=settings.repository.base_dn, actor="bench")
        workload = make_workload(files, tokyo, verifier, verifier_key, client, args)
        print(f"set up in {time.perf_counter() - t:.1f} s: {len(workload.plain)} requests without a nonce "
              f"({describe(workload.plain)}), {len(workload.nonce)} with one", flush=True)

        token_responder = tokyo_responder(engine, key_file=False)
        revoca = dict(env=env, cwd=root, issuer=tokyo, engine=engine)
        with crl_bench.hsm_service(env, settings.demo_shares_dir, sock):
            print("revoca serve ocsp --workers 2, key in the token (SoftHSM2 via revoca serve hsm), the responder "
                  "certificate the ceremony made ([ocsp] responder_algorithm, the production default), fresh "
                  "processes per cell", flush=True)
            target = Target("revoca", f"token {ocsp_requests.key_name(token_responder)}", revoca_serve,
                            log=root / "revoca-token.log", responder=token_responder, **revoca)  # type: ignore[arg-type]
            presign(env, root)
            for nonce, keep_alive in CELLS:
                cells += measure(target, workload, nonce=nonce, keep_alive=keep_alive,
                                 single=not nonce and keep_alive)
            if not args.skip_token_rsa:
                print("revoca serve ocsp --workers 2, RSA-2048 responder key in the token (`revoca ocsp renew "
                      "--algorithm rsa2048`), one connection per request", flush=True)
                try:
                    key_file(env, "rsa2048", settings.demo_shares_dir, command="renew")
                    token_rsa = tokyo_responder(engine, key_file=False)
                    presign(env, root)
                    target = Target("revoca", f"token {ocsp_requests.key_name(token_rsa)}", revoca_serve,
                                    log=root / "revoca-token-rsa.log", responder=token_rsa,
                                    **revoca)  # type: ignore[arg-type]
                    for nonce in (False, True):
                        cells += measure(target, workload, nonce=nonce, keep_alive=False)
                except SystemExit as exc:
                    skipped["token-rsa"] = f"revoca cannot put an RSA-2048 responder key in the token: {exc}"
                    print(f"  skipped: {skipped['token-rsa']}", flush=True)
            if why := key_file_support(env):
                skipped["file"] = skipped["p256"] = why
                print(f"revoca with a key file: skipped: {why}", flush=True)
            else:
                print("revoca serve ocsp --workers 2 --key-store file (RSA-2048)", flush=True)
                key_file(env, "rsa2048", settings.demo_shares_dir)
                file_responder = tokyo_responder(engine, key_file=True)
                target = Target("revoca", f"file {ocsp_requests.key_name(file_responder)}",
                                lambda port: revoca_serve(port, "--key-store", "file"),
                                log=root / "revoca-file.log", responder=file_responder, **revoca)  # type: ignore[arg-type]
                presign(env, root, "--key-store", "file")
                for nonce, keep_alive in CELLS:
                    cells += measure(target, workload, nonce=nonce, keep_alive=keep_alive)
                if args.history_cost:
                    history_cost(settings, engine, sock, workload.probe_body)
                    cells += measure_without_history(root, env, tokyo, engine, workload)
                print("revoca serve ocsp --workers 2 --key-store file (P-256), nonce cells", flush=True)
                try:
                    key_file(env, "p256", settings.demo_shares_dir)
                    p256 = tokyo_responder(engine, key_file=True)
                    if ocsp_requests.key_name(p256) != "P-256":
                        raise SystemExit(f"the newest key-file responder certificate is {ocsp_requests.key_name(p256)}")
                    target = Target("revoca", "file P-256", lambda port: revoca_serve(port, "--key-store", "file"),
                                    log=root / "revoca-p256.log", responder=p256, **revoca)  # type: ignore[arg-type]
                    for keep_alive in (False, True):
                        cells += measure(target, workload, nonce=True, keep_alive=keep_alive)
                except SystemExit as exc:
                    skipped["p256"] = f"revoca cannot use a P-256 responder key in a file yet: {exc}"
                    print(f"  skipped: {skipped['p256']}", flush=True)

        if args.skip_openssl:
            skipped["openssl"] = "--skip-openssl"
        else:
            work = root / "openssl"
            work.mkdir(exist_ok=True)
            t = time.perf_counter()
            write_openssl_index(work / "index.txt", args.entries, args.good_entries)
            (work / "index.txt.attr").write_text("unique_subject = no\n")
            responder_key = rsa.generate_private_key(65537, 2048)
            responder = self_signed("Bench OpenSSL OCSP Responder", responder_key, ocsp_signing=True)
            (work / "resp.pem").write_bytes(_pem(responder))
            (work / "resp.key").write_bytes(_key_pem(responder_key))
            (work / "resp.key").chmod(0o600)
            shutil.copy(files / "tokyo.pem", work / "tokyo.pem")
            print(f"openssl index.txt with {args.entries + args.good_entries} entries written in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
            print("openssl ocsp -multi 2, RSA-2048 key file, fresh processes per cell", flush=True)
            target = Target("openssl", "file RSA-2048", openssl_serve, dict(os.environ), work, root / "openssl.log",
                            responder=responder, own_group=True, keeps_alive=False)
            for nonce in (False, True):
                cells += measure(target, workload, nonce=nonce, keep_alive=False)
    finally:
        engine.dispose()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return cells, skipped


def make_workload(files: Path, tokyo: x509.Certificate, verifier: x509.Certificate, verifier_key: rsa.RSAPrivateKey,
                  client: Path, args: argparse.Namespace) -> Workload:
    """The mix (bench/ocsp_requests.py), its signed requests, and the bodies files of every pass."""
    plain = ocsp_requests.choose(args.entries, args.good_entries, args.serials, args.mix, args.seed)
    nonce = ocsp_requests.with_nonces(plain[:args.nonce_serials], args.seed)
    probe = ocsp_requests.probe_serial(args.seed)
    bodies = ocsp_requests.signed_requests(tokyo, verifier, verifier_key, [probe, *plain, *nonce])
    probe_body, plain_bodies, nonce_bodies = bodies[0], bodies[1:1 + len(plain)], bodies[1 + len(plain):]
    single_index = next(i for i, e in enumerate(plain) if e.status == ocsp_requests.REVOKED) if any(
        e.status == ocsp_requests.REVOKED for e in plain) else 0
    n_single = min(len(plain), SINGLE_SERIAL_MAX)
    n_probe = 2 * args.connections
    paths = {
        "plain": load.write_bodies(files / "plain.bin", plain_bodies),
        "nonce": load.write_bodies(files / "nonce.bin", nonce_bodies),
        "probe": load.write_bodies(files / "probe.bin", [probe_body] * n_probe),
        "single": load.write_bodies(files / "single.bin", [plain_bodies[single_index]] * n_single),
    }
    ocsp_requests.write_manifest(files / "plain.tsv", plain)
    ocsp_requests.write_manifest(files / "nonce.tsv", nonce)
    return Workload(plain, nonce, [probe] * n_probe, [plain[single_index]] * n_single, paths, probe_body, client,
                    args.connections, files)


def describe(wanted: list) -> str:
    counts: dict[str, int] = {}
    for e in wanted:
        counts[e.status] = counts.get(e.status, 0) + 1
    order = (ocsp_requests.REVOKED, ocsp_requests.GOOD, ocsp_requests.UNKNOWN)
    return ", ".join(f"{counts[s]} {s}" for s in order if s in counts)


def measure_without_history(root: Path, env: dict[str, str], tokyo: x509.Certificate, engine: sa.Engine,
                            workload: Workload) -> list[Cell]:
    """The key-file cell (no nonce, one connection per request) again with the app built without the
    query history, under the same granian, so that the history's cost shows in throughput (label
    "no-hist").  revoca has no switch for this (the seed requires the history): the bench builds the
    app itself."""
    app_dir = root / "no-history"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "revoca_ocsp_no_history.py").write_text("from ocsp.wsgi import build\n\napp = build(history=False)\n")
    granian = str(Path(sys.executable).with_name("granian"))

    def argv(port: int) -> list[str]:
        return [granian, "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
                "--working-dir", str(app_dir), "revoca_ocsp_no_history:app"]

    print("the key-file cell again, the app built without the query history (granian, 2 workers)", flush=True)
    responder = tokyo_responder(engine, key_file=True)
    return measure(Target("no-hist", f"file {ocsp_requests.key_name(responder)}", argv,
                          {**env, "REVOCA_OCSP_KEY_FILES": "1"}, root, root / "revoca-no-history.log", issuer=tokyo,
                          responder=responder), workload, nonce=False, keep_alive=False)


def history_cost(settings: object, engine: sa.Engine, sock: Path, request: bytes, n: int = 20_000) -> None:
    """What recording every query costs: the WSGI app in this process, with and without the history.

    With it, the history thread runs and writes its batches as in service, and the final
    flush is timed too, so every row's database cost is in the figure.
    """
    from ca.hsm.client import HSMClient
    from ocsp.app import make_app
    from ocsp.history import QueryHistory
    from ocsp.keys import ResponderKeys, keys_dir, passphrase_path
    from ocsp.responder import Responder

    def environ() -> dict[str, object]:
        return {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "CONTENT_TYPE": "application/ocsp-request",
                "CONTENT_LENGTH": str(len(request)), "wsgi.input": io.BytesIO(request)}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status.startswith("200"), status

    per_query = {}
    for label in ("without", "with"):
        keys = ResponderKeys(HSMClient(sock), keys_dir(settings), passphrase_path(settings))  # type: ignore[arg-type]
        responder = Responder(engine, keys, key_files=True, time_guard=NO_NTP)
        history = QueryHistory(engine) if label == "with" else None
        app = make_app(responder, history)
        b"".join(app(environ(), start_response))  # signs once; the rest are pre-signed answers
        t = time.perf_counter()
        for _ in range(n):
            b"".join(app(environ(), start_response))
        if history is not None:
            history.close()
        per_query[label] = (time.perf_counter() - t) / n * 1e6
    extra = per_query["with"] / per_query["without"] - 1
    print(f"query history, in process, {n} pre-signed answers: {per_query['without']:.1f} us per query without, "
          f"{per_query['with']:.1f} us with (+{extra:.0%} for recording every query)", flush=True)


# -- report -------------------------------------------------------------------------------------------


def report(cells: list[Cell], skipped: dict[str, str], args: argparse.Namespace, workload_note: str) -> None:
    def find(label: str, key_prefix: str, nonce: bool, keep_alive: bool) -> Cell | None:
        return next((c for c in cells if c.label == label and c.key.startswith(key_prefix) and c.nonce == nonce
                     and c.keep_alive == keep_alive), None)

    print(f"\nOCSP, realistic mix: {workload_note}; {args.connections} connections at once; "
          f"{os.cpu_count()} cores shared by the responder and the load client; cold = first pass in fresh "
          "processes, warm = second pass; conns: connections the cold pass opened; x openssl: cold req/s over "
          "openssl's with one connection per request and the same nonce setting; p99<=openssl: cold and warm")
    head = (f"{'responder':<10}{'key':<16}{'nonce':<7}{'connection':<12}{'cold req/s':>11}{'p50 ms':>8}"
            f"{'p99 ms':>9}{'warm req/s':>11}{'p50 ms':>8}{'p99 ms':>9}{'conns':>7}{'x openssl':>10}"
            f"{'p99<=openssl':>13}")
    print(head)
    for c in cells:
        if c.label == "single":
            continue
        theirs = find("openssl", "file RSA", c.nonce, False)
        ratio = f"{c.cold.rps / theirs.cold.rps:.2f}" if theirs and theirs.cold.rps and c.label != "openssl" else ""
        p99_ok = ("yes" if c.cold.p99_ms <= theirs.cold.p99_ms and c.warm.p99_ms <= theirs.warm.p99_ms else "no") \
            if theirs and c.label != "openssl" else ""
        print(f"{c.label:<10}{c.key:<16}{'yes' if c.nonce else 'no':<7}{'keep-alive' if c.keep_alive else 'close':<12}"
              f"{c.cold.rps:>11.0f}{c.cold.p50_ms:>8.2f}{c.cold.p99_ms:>9.2f}{c.warm.rps:>11.0f}{c.warm.p50_ms:>8.2f}"
              f"{c.warm.p99_ms:>9.2f}{c.cold.connections:>7}{ratio:>10}{p99_ok:>13}")
    for c in cells:
        if c.label == "single":
            print(f"single serial (friendly, not representative): revoca {c.key}, no nonce, keep-alive, "
                  f"{c.cold.requests} requests for one revoked serial after the warm pass: {c.cold.rps:.0f} req/s, "
                  f"p99 {c.cold.p99_ms:.2f} ms")
    without, with_ = find("no-hist", "file", False, False), find("revoca", "file RSA", False, False)
    if without and with_:
        print(f"query history cost in throughput (no nonce, RSA-2048 key file, one connection per request): "
              f"cold {without.cold.rps:.0f} req/s without it, {with_.cold.rps:.0f} with it; warm "
              f"{without.warm.rps:.0f} and {with_.warm.rps:.0f}")
    for what, why in skipped.items():
        print(f"{what}: n/a: {why}")

    def rps(cell: Cell | None) -> float | None:
        return cell.cold.rps if cell else None

    def fmt(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    def ratio(ours: float | None, theirs: float | None) -> str:
        return "n/a" if ours is None or not theirs else f"{ours / theirs:.2f}"

    token = cells[0] if cells and cells[0].label == "revoca" else None  # the production default: the first cell
    file_ = find("revoca", "file RSA", False, False)
    openssl = find("openssl", "file RSA", False, False)
    openssl_nonce = find("openssl", "file RSA", True, False)
    keepalive = find("revoca", token.key, False, True) if token else None
    p256 = find("revoca", "file P-256", True, False)
    token_nonce = find("revoca", "token RSA", True, False)
    token_rsa = find("revoca", "token RSA", False, False)
    token_p256 = find("revoca", "token P-256", False, False)
    token_p256_nonce = find("revoca", "token P-256", True, False)
    print(f"ocsp-realistic serials={args.serials} entries={args.entries} "
          f"revoca_token_close_rps={fmt(rps(token), 0)} revoca_file_close_rps={fmt(rps(file_), 0)} "
          f"openssl_close_rps={fmt(rps(openssl), 0)} ratio_token_close={ratio(rps(token), rps(openssl))} "
          f"ratio_file_close={ratio(rps(file_), rps(openssl))} ratio_keepalive={ratio(rps(keepalive), rps(openssl))} "
          f"ratio_nonce_p256={ratio(rps(p256), rps(openssl_nonce))} "
          f"ratio_nonce_token={ratio(rps(token_nonce), rps(openssl_nonce))} "
          f"p99_ms={fmt(token.cold.p99_ms if token else None, 2)} "
          f"openssl_p99_ms={fmt(openssl.cold.p99_ms if openssl else None, 2)} "
          f"ratio_token_p256_close={ratio(rps(token_p256), rps(openssl))} "
          f"ratio_nonce_token_p256={ratio(rps(token_p256_nonce), rps(openssl_nonce))} "
          f"ratio_token_rsa_close={ratio(rps(token_rsa), rps(openssl))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=None, help="Revoked certificates of tokyo (default 100000).")
    parser.add_argument("--good-entries", type=int, default=0, help="Good (not revoked) certificates of tokyo.")
    parser.add_argument("--serials", type=int, default=None, help="K: distinct serials asked (default 20000).")
    parser.add_argument("--nonce-serials", type=int, default=None,
                        help="How many of them the nonce cells ask (default 5000, at most K).")
    parser.add_argument("--mix", default=None, help="Shares in percent, e.g. revoked=75,unknown=25 (the default; "
                        "revoked=60,good=20,unknown=20 with --good-entries).")
    parser.add_argument("--connections", type=int, default=16, help="Requests in flight at once.")
    parser.add_argument("--seed", type=int, default=16, help="Seed of the serials chosen and the nonces.")
    parser.add_argument("--quick", action="store_true",
                        help="Smoke run: 2000 entries, 1000 serials, 300 with a nonce (unless given).")
    parser.add_argument("--skip-openssl", action="store_true", help="Only measure revoca.")
    parser.add_argument("--skip-token-rsa", action="store_true",
                        help="Leave out the cells with an RSA-2048 responder key in the token.")
    parser.add_argument("--history-cost", action="store_true", help="Also measure what the query history costs.")
    parser.add_argument("--revoca-args", default="", help="More options for `revoca serve ocsp`, e.g. "
                        "'--server gunicorn'.")
    parser.add_argument("--db-url", help="A PostgreSQL URL to use instead of SQLite in the data directory.")
    parser.add_argument("--keep", type=Path, help="Work in this directory and keep it (logs, requests, index.txt).")
    args = parser.parse_args()
    quick = args.quick
    args.entries = args.entries if args.entries is not None else (2000 if quick else 100_000)
    args.serials = args.serials if args.serials is not None else (1000 if quick else 20_000)
    args.nonce_serials = min(args.serials, args.nonce_serials if args.nonce_serials is not None
                             else (300 if quick else 5000))
    if args.entries < 1 or args.good_entries < 0 or args.serials < 1 or args.nonce_serials < 1 \
            or args.connections < 1:
        parser.error("--entries, --serials, --nonce-serials and --connections must be positive, "
                     "--good-entries not negative")
    try:
        args.mix = ocsp_requests.Mix.parse(args.mix or ("revoked=60,good=20,unknown=20" if args.good_entries
                                                   else "revoked=75,unknown=25"))
        k_revoked, k_good, _ = args.mix.counts(args.serials)
        if k_revoked > args.entries or k_good > args.good_entries:
            raise ValueError(f"{args.serials} serials at {args.mix} need {k_revoked} revoked and {k_good} good "
                             f"certificates; the population has {args.entries} and {args.good_entries}")
    except ValueError as exc:
        parser.error(f"--mix/--serials: {exc}")
    REVOCA_ARGS.extend(shlex.split(args.revoca_args))
    root = args.keep or Path(tempfile.mkdtemp(prefix="revoca-ocsp-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        cells, skipped = run(root, args)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    k_revoked, k_good, k_unknown = args.mix.counts(args.serials)
    note = (f"{args.serials} distinct serials ({k_revoked} of {args.entries} revoked, {k_good} of "
            f"{args.good_entries} good, {k_unknown} unknown), nonce cells the first {args.nonce_serials}; "
            f"run took {time.perf_counter() - started:.0f} s")
    report(cells, skipped, args, note)


if __name__ == "__main__":
    main()
