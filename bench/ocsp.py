"""OCSP throughput: `revoca serve ocsp` against `openssl ocsp` as a responder, same machine, same run.

    .venv/bin/python bench/ocsp.py [--entries 100000] [--duration 10] [--connections 16] [--serials 1]
                                   [--db-url URL] [--keep DIR] [--skip-openssl] [--revoca-args ARGS]

Set-up (not timed), as in bench/crl.py: a demo hierarchy with RSA-2048 keys in SoftHSM2, N
revoked subscriber certificates of CA tokyo (certificate rows and revocations), `revoca serve
hsm` started and activated with the demo shares.  A verifier is registered with a self-made
RSA-2048 certificate, and OCSP requests are made for revoked tokyo serials (SHA-1 CertIDs,
one certificate each), signed by that verifier: one without a nonce and one with a nonce per
serial (`--serials K` spreads K serials over the N entries; the default is one).  With a
nonce, every request carries the same nonce: that does not help either responder, which
both sign each nonce answer on demand, but the figure is throughput, not a replay test.

The responders, one after the other (never two at once), each on a free loopback port:

* revoca, key in the token: `revoca serve ocsp --workers 2` (granian, its default HTTP server;
  `--revoca-args "--server gunicorn"` measures gunicorn's sync workers); answers are signed by
  tokyo's delegated responder certificate (RSA-2048) through the HSM service.  A request
  without a nonce for one certificate gets a pre-signed answer (RFC 5019) while the status
  read from the database for it is unchanged: revoca still looks the verifier up (one query)
  and reads the status (one query) every time; the request bytes, already parsed and their
  signature checked, are recognised.
* revoca, key file: the same with `--key-store file` after `revoca ocsp key-file --ca tokyo
  --algorithm rsa2048` (a delegated RSA-2048 responder certificate whose key is an encrypted
  file), when this revoca has that command; otherwise that run is skipped, said so, the
  ratios use the token run and p99_ms is 0.  The answers must come from that certificate.
* openssl: `openssl ocsp -index index.txt -CA tokyo.pem -rsigner resp.pem -rkey resp.key
  -multi 2 -nmin 60`, index.txt with the same N serials, revocation times and reasons.  `-CA`
  is tokyo's own certificate, so that openssl matches the same CertIDs; its responder
  certificate is a self-made RSA-2048 one (OCSPSigning) with its key in an unencrypted PEM
  file, because tokyo's key is in the token and openssl does not check the responder's chain
  when it serves (the load generator does not verify answers either).  It ignores the request
  signature (the same bytes go to both) and signs every answer, nonce or not.  It is started
  anew for each run: see `measure` (an OpenSSL 3.0 responder process spins for ever on a
  connection closed before a request arrived, as wrk leaves some when it stops).

Before any timing each responder must answer every request correctly (successful, revoked at
the right time for the right reason, an RSA-2048 signature that verifies, from the expected
responder certificate, the nonce echoed); under load the wrk script counts every answer that
is not HTTP 200 with a body of a signed size, and the run fails when that or wrk's own error
count exceeds 1%.  revoca's query history must have a row for every request wrk counted (it
is written in batches, once a second per worker) and none unsuccessful.

Load: `wrk -t 2 -c C -d D --latency` with a Lua script (POST, Content-Type
application/ocsp-request), on the same 2 cores as the responder; revoca gets a short warm-up
run first.  No `Connection: keep-alive` header is sent: OpenSSL 3.0's responder keeps such a
connection open after an HTTP/1.0 answer that does not say so, the client closes it, and the
process spins on it.  granian keeps HTTP/1.1 connections open (the table says so per run);
openssl answers HTTP/1.0 and closes, so wrk reconnects for every request to it, which is part
of the cost measured; gunicorn's sync workers close too.  wrk's latency is from request sent
to response read, the reconnection not included.

After the key-file run, `history_cost` measures in this process what recording every query
in the query history costs (the WSGI app with and without it, the batch writes included).

The last line is

    ocsp revoca_rps=X openssl_rps=Y ratio_nononce=R revoca_nonce_rps=X openssl_nonce_rps=Y ratio_nonce=R p99_ms=L

with ratio = revoca / openssl, revoca being the key-file run (like with like: openssl's key is
a file too; the token run is in the table above it); p99_ms is revoca's p99 latency without
a nonce, key-file run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import http.client
import importlib.util
import io
import os
import random
import re
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

import sqlalchemy as sa
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

# Run as `python bench/ocsp.py`, this file's folder comes first on sys.path and its name would hide
# the ocsp package: take the folder off and load bench/crl.py (demo set-up, revocation rows, the
# HSM service) by its path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_crl", _HERE / "crl.py")
assert _spec is not None and _spec.loader is not None
crl_bench = sys.modules["bench_crl"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(crl_bench)

from ca import ceremony  # noqa: E402
from ca.config import settings_from_dict  # noqa: E402
from ca.enums import CertKind  # noqa: E402
from ca.storage.engine import make_engine, session_scope  # noqa: E402
from ca.storage.models import Certificate, OCSPQuery  # noqa: E402
from ca.storage.store import Store  # noqa: E402
from ca.verifiers.registry import add_verifier  # noqa: E402
from ocsp.issuers import public_key_bits  # noqa: E402

REVOCA = crl_bench.REVOCA
NOW = crl_bench.NOW
MAX_ERROR_SHARE = 0.01
HISTORY_SETTLE = 2.5  # seconds: each revoca worker writes its query history once a second
MIN_SIGNED_BODY = 300  # an RSA-2048 signature alone is 256 bytes; error responses are 5
REASON_FLAGS = {1: x509.ReasonFlags.key_compromise, 2: x509.ReasonFlags.ca_compromise,
                3: x509.ReasonFlags.affiliation_changed, 4: x509.ReasonFlags.superseded,
                5: x509.ReasonFlags.cessation_of_operation}

# Written to the work directory at run time.  Each wrk thread loads it into its own Lua state.
WRK_SCRIPT = r"""
-- bench/ocsp.py: POST the DER requests listed in OCSP_BODIES (':'-separated), round robin.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/ocsp-request"
local bodies = {}
for path in string.gmatch(os.getenv("OCSP_BODIES"), "[^:]+") do
  local f = assert(io.open(path, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
wrk.body = bodies[1]

if #bodies > 1 then
  local formatted, next_index = {}, 0
  function init(args)
    for i, body in ipairs(bodies) do formatted[i] = wrk.format(nil, nil, nil, body) end
    next_index = math.random(#bodies) - 1
  end
  function request()
    next_index = next_index % #formatted + 1
    return formatted[next_index]
  end
end

bad = 0  -- global: done() reads it from each thread
function response(status, headers, body)
  if status ~= 200 or #body < MIN_SIGNED_BODY then bad = bad + 1 end
end

local threads = {}
function setup(thread) threads[#threads + 1] = thread end

function done(summary, latency, requests)
  local total_bad = 0
  for _, thread in ipairs(threads) do total_bad = total_bad + thread:get("bad") end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d bad=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, total_bad,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# -- tools ----------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk (the HTTP load generator) is missing: installing the Debian package wrk", flush=True)
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing; install it (apt-get install wrk) or run this as root")
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=apt, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "wrk"], check=True, env=apt,
                   stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get installed wrk but it is not on PATH")
    return found


def free_port() -> int:
    """A port free on 127.0.0.1 and on :: (openssl listens on [::]), below the ephemeral range:
    wrk's thousands of connections a second take ephemeral ports, which a responder started
    a moment later could then not bind."""
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
    before any request byte arrives loops on it for ever (see `measure`).
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
    cannot), and only stops on SIGTERM once a child has gone, so the whole group gets it.
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
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        time.sleep(0.5)  # the group's other processes go too before the next responder takes the cores
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


def ocsp_request(issuer: x509.Certificate, serial: int, signer: x509.Certificate, key: rsa.RSAPrivateKey,
                 nonce: bytes | None) -> bytes:
    """One SHA-1 CertID, optionally a nonce; tbsRequest signed by the verifier, who names itself and
    attaches its certificate (RFC 6960 4.1.2)."""
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        hashlib.sha1(issuer.subject.public_bytes()).digest(), hashlib.sha1(public_key_bits(spki)).digest(),
        serial, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    unsigned = asn1_ocsp.OCSPRequest.load(builder.build().public_bytes(serialization.Encoding.DER))
    signer_asn1 = asn1_x509.Certificate.load(signer.public_bytes(serialization.Encoding.DER))
    tbs = unsigned["tbs_request"]
    tbs["requestor_name"] = asn1_x509.GeneralName(name="directory_name", value=signer_asn1.subject)
    signature = key.sign(tbs.dump(force=True), padding.PKCS1v15(), hashes.SHA256())
    signed = asn1_ocsp.OCSPRequest({
        "tbs_request": tbs,
        "optional_signature": {"signature_algorithm": {"algorithm": "sha256_rsa"}, "signature": signature,
                               "certs": [signer_asn1]},
    })
    return signed.dump()


@dataclasses.dataclass(frozen=True)
class Query:
    serial: int
    revoked_at: dt.datetime
    reason: int
    path: Path  # the DER request
    nonce: bytes | None


def pick_serials(n: int, k: int) -> list[tuple[int, dt.datetime, int]]:
    """K of the N revoked serials, spread evenly (bench/crl.py `entries` is deterministic)."""
    k = max(1, min(k, n))
    step = n // k
    return [e for i, e in enumerate(crl_bench.entries(n)) if i % step == 0][:k]


# -- checking answers ------------------------------------------------------------------------------


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


# -- load ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    errors: int  # connect/read/write/timeout errors and non-2xx, as wrk counts them
    bad: int  # answers that are not HTTP 200 with a signed-size body
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(binary: str, script: Path, port: int, bodies: list[Path], seconds: float, connections: int,
        log: Path) -> Load:
    env = {**os.environ, "OCSP_BODIES": ":".join(str(p) for p in bodies)}
    proc = subprocess.run([binary, "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--latency",
                           "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/"],
                          env=env, capture_output=True, text=True, check=False)
    with open(log, "a") as out:
        out.write(proc.stdout + proc.stderr + "\n")
    found = re.search(r"^RESULT (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    r = {k: int(v) for k, v in (kv.split("=") for kv in found.group(1).split())}
    errors = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
    load = Load(r["requests"], r["duration_us"] / 1e6, errors, r["bad"], r["p50_us"] / 1000, r["p99_us"] / 1000)
    total = max(load.requests, 1)
    if load.requests == 0 or errors / total > MAX_ERROR_SHARE or load.bad / total > MAX_ERROR_SHARE:
        raise SystemExit(f"too many failures under load on port {port}: {load}\n{proc.stdout}")
    return load


@dataclasses.dataclass(frozen=True)
class Row:
    responder: str
    key: str
    nonce: bool
    load: Load
    keep_alive: bool


@dataclasses.dataclass(frozen=True)
class Target:
    """One responder to measure and how to start it on a port."""

    label: str
    key: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    cwd: Path
    log: Path
    issuer: x509.Certificate | None = None  # its responder certificate must be issued by this
    responder: x509.Certificate | None = None  # or must be this
    engine: sa.Engine | None = None  # revoca's database, for the query history
    own_group: bool = False  # see `server`
    fresh_per_run: bool = False  # started anew for each run (openssl: see `measure`)

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


def measure(target: Target, queries: dict[bool, list[Query]], args: argparse.Namespace,
            tools: dict[str, object]) -> list[Row]:
    """Check and load one responder without, then with a nonce.

    A responder that keeps state (revoca: per-worker database pool, HSM connection, issuer index,
    pre-signed answers) serves both and is warmed up with a short wrk run first, and checked
    again after the warm-up and after the run.  `openssl ocsp -multi` is started anew for each
    run instead: OpenSSL 3.0's responder process loops forever on a connection its client
    closed before sending a request, which is what wrk's last connections do when it stops,
    so after one wrk run both of its processes are stuck (and spin).  It loads its index and
    key at start and signs every answer, so it has nothing to warm up; the checks before the
    run are its first requests.
    """
    script, binary, log = tools["script"], tools["wrk"], tools["log"]
    assert isinstance(script, Path) and isinstance(binary, str) and isinstance(log, Path)
    engine = target.engine
    rows = []

    def check(port: int, nonce: bool, what: str, few: bool = False) -> bool:
        chosen = queries[nonce][:1] if few else queries[nonce]
        return check_responder(port, chosen, f"{target.label} ({target.key}, {what})", issuer=target.issuer,
                               responder=target.responder)

    with contextlib.ExitStack() as stack:
        probe = queries[False][0].path.read_bytes()
        shared_port = None if target.fresh_per_run else stack.enter_context(target.started(probe))
        for nonce in (False, True):
            kind = "nonce" if nonce else "no nonce"
            bodies = [q.path for q in queries[nonce]]
            with contextlib.ExitStack() as run_stack:
                port = shared_port if shared_port is not None else run_stack.enter_context(target.started(probe))
                keep_alive = check(port, nonce, kind)
                if not target.fresh_per_run:
                    wrk(binary, script, port, bodies, min(2.0, args.duration), args.connections, log)  # warm-up
                    if engine is not None and not nonce:
                        time.sleep(HISTORY_SETTLE)  # the warm-up's last queries reach the history first
                    check(port, nonce, f"{kind}, after the warm-up", few=True)
                before = history_rows(engine) if engine is not None else (0, 0)
                load = wrk(binary, script, port, bodies, args.duration, args.connections, log)
                if not target.fresh_per_run:
                    check(port, nonce, f"{kind}, after the run", few=True)
            print(f"  {target.label:<8} {target.key:<6} {kind:<9} {load.rps:>9.0f} req/s  p50 {load.p50_ms:.2f} ms  "
                  f"p99 {load.p99_ms:.2f} ms  ({load.requests} requests, {load.errors} wrk errors, "
                  f"{load.bad} bad answers, keep-alive {'yes' if keep_alive else 'no: one connection per request'})",
                  flush=True)
            if engine is not None and not nonce:
                time.sleep(HISTORY_SETTLE)
                after = history_rows(engine)
                recorded = after[0] - before[0] - 1  # the check after the run is one query
                print(f"  query history: {recorded} rows recorded for {load.requests} requests wrk counted "
                      f"({recorded / max(load.requests, 1):.4f}; requests still in flight when wrk stopped "
                      f"are answered and recorded but not counted by wrk); {after[1] - before[1]} of them not "
                      "successful", flush=True)
                if after[1] != before[1] or recorded < load.requests:
                    raise SystemExit("the query history lost queries or recorded failed answers")
            rows.append(Row(target.label, target.key, nonce, load, keep_alive))
    return rows


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


def write_openssl_index(path: Path, n: int) -> None:
    expires = f"{NOW + dt.timedelta(days=200):%y%m%d%H%M%SZ}"
    with open(path, "w", encoding="ascii") as index:
        for serial, when, reason in crl_bench.entries(n):
            hexserial = format(serial, "X")
            hexserial = "0" * (len(hexserial) % 2) + hexserial
            index.write(f"R\t{expires}\t{when:%y%m%d%H%M%SZ},{crl_bench.REASONS[reason]}\t{hexserial}\t"
                        "unknown\t/CN=bench\n")


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


REVOCA_ARGS: list[str] = []  # --revoca-args, e.g. "--threads 4"


def revoca_serve(port: int, *extra: str) -> list[str]:
    return [str(REVOCA), "serve", "ocsp", "--port", str(port), "--workers", "2", *REVOCA_ARGS, *extra]


def openssl_serve(port: int) -> list[str]:
    return ["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner", "resp.pem", "-rkey", "resp.key",
            "-CA", "tokyo.pem", "-multi", "2", "-nmin", "60"]


def run(root: Path, args: argparse.Namespace) -> list[Row]:
    tools: dict[str, object] = {"wrk": ensure_wrk(), "script": root / "ocsp.lua", "log": root / "wrk.log"}
    (root / "ocsp.lua").write_text(WRK_SCRIPT.replace("MIN_SIGNED_BODY", str(MIN_SIGNED_BODY)))
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
    rows: list[Row] = []
    try:
        t = time.perf_counter()
        print(f"setting up: demo hierarchy (RSA-2048 in SoftHSM2) in {data}", flush=True)
        ceremony.run(settings, engine, demo=True, now=NOW, demo_subscribers=0)
        print(f"setting up: {args.entries} revocations for tokyo", flush=True)
        crl_bench.insert_revocations(engine, "tokyo", args.entries)
        tokyo = tokyo_certificate(engine)
        files = root / "files"
        files.mkdir(exist_ok=True)
        (files / "tokyo.pem").write_bytes(_pem(tokyo))
        verifier_key = rsa.generate_private_key(65537, 2048)
        verifier = self_signed("bench-verifier", verifier_key)
        add_verifier(engine, name="bench-verifier", certificate=verifier, password=None, now=dt.datetime.now(dt.UTC),
                     base_dn=settings.repository.base_dn, actor="bench")
        nonce = os.urandom(16)
        queries: dict[bool, list[Query]] = {False: [], True: []}
        for i, (serial, when, reason) in enumerate(pick_serials(args.entries, args.serials)):
            for with_nonce in (False, True):
                path = files / f"request-{i}{'-nonce' if with_nonce else ''}.der"
                path.write_bytes(ocsp_request(tokyo, serial, verifier, verifier_key, nonce if with_nonce else None))
                queries[with_nonce].append(Query(serial, when, reason, path, nonce if with_nonce else None))
        print(f"set up in {time.perf_counter() - t:.1f} s; {len(queries[False])} serial(s) asked, "
              f"requests of {queries[False][0].path.stat().st_size} and {queries[True][0].path.stat().st_size} "
              "bytes", flush=True)

        no_key_file = key_file_support(env)
        token_responder = None if no_key_file else tokyo_responder(engine, key_file=False)
        with crl_bench.hsm_service(env, settings.demo_shares_dir, sock):
            print("revoca serve ocsp --workers 2, key in the token (SoftHSM2 via revoca serve hsm)", flush=True)
            rows += measure(Target("revoca", "token", revoca_serve, env, root, root / "revoca-token.log", issuer=tokyo,
                                   responder=token_responder, engine=engine), queries, args, tools)
            if no_key_file:
                print(f"revoca with a key file: skipped: {no_key_file}", flush=True)
            else:
                proc = subprocess.run([str(REVOCA), "ocsp", "key-file", "--ca", "tokyo", "--algorithm", "rsa2048"],
                                      env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"revoca ocsp key-file failed:\n{proc.stdout}{proc.stderr}")
                print(proc.stdout.rstrip() or proc.stderr.rstrip(), flush=True)
                print("revoca serve ocsp --workers 2 --key-store file", flush=True)
                rows += measure(Target("revoca", "file", lambda port: revoca_serve(port, "--key-store", "file"), env,
                                       root, root / "revoca-file.log", issuer=tokyo,
                                       responder=tokyo_responder(engine, key_file=True), engine=engine),
                                queries, args, tools)
                history_cost(settings, engine, sock, queries[False][0].path.read_bytes())
                rows += measure_without_history(root, env, tokyo, engine, queries, args, tools)

        if not args.skip_openssl:
            work = root / "openssl"
            work.mkdir(exist_ok=True)
            t = time.perf_counter()
            write_openssl_index(work / "index.txt", args.entries)
            (work / "index.txt.attr").write_text("unique_subject = no\n")
            responder_key = rsa.generate_private_key(65537, 2048)
            responder = self_signed("Bench OpenSSL OCSP Responder", responder_key, ocsp_signing=True)
            (work / "resp.pem").write_bytes(_pem(responder))
            (work / "resp.key").write_bytes(_key_pem(responder_key))
            (work / "resp.key").chmod(0o600)
            shutil.copy(files / "tokyo.pem", work / "tokyo.pem")
            print(f"openssl index.txt with {args.entries} entries written in {time.perf_counter() - t:.1f} s",
                  flush=True)
            print("openssl ocsp -multi 2, key file (started anew for each run)", flush=True)
            rows += measure(Target("openssl", "file", openssl_serve, dict(os.environ), work, root / "openssl.log",
                                   responder=responder, own_group=True, fresh_per_run=True), queries, args, tools)
    finally:
        engine.dispose()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return rows


def measure_without_history(root: Path, env: dict[str, str], tokyo: x509.Certificate, engine: sa.Engine,
                            queries: dict[bool, list[Query]], args: argparse.Namespace,
                            tools: dict[str, object]) -> list[Row]:
    """The key-file run again with the app built without the query history, under the same
    granian, so that the history's cost shows in throughput (label "no-hist").  revoca has no
    switch for this (the seed requires the history): the bench builds the app itself."""
    app_dir = root / "no-history"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "revoca_ocsp_no_history.py").write_text("from ocsp.wsgi import build\n\napp = build(history=False)\n")
    granian = str(Path(sys.executable).with_name("granian"))

    def argv(port: int) -> list[str]:
        return [granian, "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
                "--working-dir", str(app_dir), "revoca_ocsp_no_history:app"]

    print("the key-file run again, the app built without the query history (granian, 2 workers)", flush=True)
    return measure(Target("no-hist", "file", argv, {**env, "REVOCA_OCSP_KEY_FILES": "1"}, root,
                          root / "revoca-no-history.log", issuer=tokyo,
                          responder=tokyo_responder(engine, key_file=True)), queries, args, tools)


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
        responder = Responder(engine, keys, key_files=True)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000, help="Revoked certificates of tokyo (also 1000000).")
    parser.add_argument("--duration", type=float, default=10, help="Seconds per measurement.")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (2 threads).")
    parser.add_argument("--serials", type=int, default=1,
                        help="Distinct revoked serials asked, round robin (one request file each).")
    parser.add_argument("--skip-openssl", action="store_true", help="Only measure revoca.")
    parser.add_argument("--revoca-args", default="", help="More options for `revoca serve ocsp`, e.g. '--threads 4'.")
    parser.add_argument("--db-url", help="A PostgreSQL URL to use instead of SQLite in the data directory.")
    parser.add_argument("--keep", type=Path, help="Work in this directory and keep it (logs, requests, index.txt).")
    args = parser.parse_args()
    REVOCA_ARGS.extend(shlex.split(args.revoca_args))
    if args.entries < 1 or args.duration <= 0 or args.connections < 2 or args.serials < 1:
        parser.error("--entries and --serials must be positive, --connections at least 2, --duration above 0")
    root = args.keep or Path(tempfile.mkdtemp(prefix="revoca-ocsp-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        rows = run(root, args)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\nOCSP, {args.entries} revoked entries, wrk -t 2 -c {args.connections} -d {args.duration:g}s, "
          f"{args.serials} serial(s), {os.cpu_count()} cores shared by responder and load generator")
    print(f"{'responder':<10}{'key':<7}{'nonce':<7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'keep-alive':>12}")
    for r in rows:
        print(f"{r.responder:<10}{r.key:<7}{'yes' if r.nonce else 'no':<7}{r.load.rps:>9.0f}{r.load.p50_ms:>9.2f}"
              f"{r.load.p99_ms:>9.2f}{'yes' if r.keep_alive else 'no':>12}")

    def find(responder: str, key: str, nonce: bool) -> Load | None:
        return next((r.load for r in rows if (r.responder, r.key, r.nonce) == (responder, key, nonce)), None)

    revoca_key = "file" if find("revoca", "file", False) is not None else "token"
    if revoca_key == "token":
        print("ratios below use revoca with the key in the token: the key-file run was skipped")
    figures = {}
    for nonce in (False, True):
        ours, theirs = find("revoca", revoca_key, nonce), find("openssl", "file", nonce)
        ours_rps, theirs_rps = (ours.rps if ours else 0.0), (theirs.rps if theirs else 0.0)
        figures[nonce] = (ours_rps, theirs_rps, ours_rps / theirs_rps if theirs_rps else 0.0)
    key_file = find("revoca", "file", False)
    p99 = key_file.p99_ms if key_file else 0.0
    without = find("no-hist", "file", False)
    if key_file and without:
        print(f"query history cost in throughput (no nonce, key file): {without.rps:.0f} req/s without it, "
              f"{key_file.rps:.0f} with it ({key_file.rps / without.rps - 1:+.1%})")
    print(f"ocsp revoca_rps={figures[False][0]:.0f} openssl_rps={figures[False][1]:.0f} "
          f"ratio_nononce={figures[False][2]:.2f} revoca_nonce_rps={figures[True][0]:.0f} "
          f"openssl_nonce_rps={figures[True][1]:.0f} ratio_nonce={figures[True][2]:.2f} p99_ms={p99:.2f}")


if __name__ == "__main__":
    main()
