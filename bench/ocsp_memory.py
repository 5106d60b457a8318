"""OCSP worker memory under an unauthorized request stream (issue 12), with `openssl ocsp` as reference.

    .venv/bin/python bench/ocsp_memory.py [--total-mb 1024] [--size-kb 60] [--concurrency 8]
                                          [--distinct 256] [--skip-openssl] [--keep]

The goal checked: "an unauthorized request stream of 1 GB total leaves OCSP worker RSS within
the stated cap".  The attack that led to issue 12 sent requests without a nonce that revoca
parsed and cached before authorizing them (1,500 requests of 60 KB grew each worker from
79 MB to 171 MB in 2.5 s).  Now nothing from an unauthorized caller is kept and the caches a
worker fills from verifiers' requests are bounded in bytes, so the stated cap per worker is

    idle RSS + ocsp.responder.REQUESTS_MAX_BYTES + ocsp.responder.PRESIGNED_MAX_BYTES  (32 + 256 MiB)

and every worker's peak RSS must stay below it (PASS/FAIL per worker).  The peak is the
larger of the sampled RSS (VmRSS from /proc/<pid>/status, every 50 ms) and the kernel's
high-water mark VmHWM, so that a spike between two samples counts too.

Set-up (not measured), as in bench/ocsp.py and with its helpers: a demo hierarchy with
RSA-2048 keys in SoftHSM2 (SQLite in the data directory), 1,000 revoked certificates of CA
tokyo, `revoca serve hsm` started and activated with the demo shares, one registered verifier
(a self-made RSA-2048 certificate).  Then `revoca serve ocsp --workers 2` (granian, its
default HTTP server) with REVOCA_OCSP_RATE_PER_ADDRESS=0 and REVOCA_OCSP_RATE_PER_VERIFIER=0:
the per-address (HTTP 429) and per-verifier (tryLater) rate limits are off, so that the whole
stream, from one address, really reaches the parser and the authorizer; with the defaults
(1,000 requests/s per address) what passes that rate is answered 429 before its body is
read.  The workers are the server process's children; granian's main process (which does
not parse requests) is in the table without a cap.

Workload (what an attacker sends), exactly:

* `--total-mb` MiB (default 1024: 1 GiB) of request bodies, in requests of `--size-kb` KiB
  (default 60: 61,440 bytes each, 17,477 requests for 1 GiB), POSTed to / with Content-Type
  application/ocsp-request over loopback.
* Each request is a signed OCSPRequest from an outsider: one SHA-1 CertID of tokyo (its real
  issuer name and key hashes, a revoked serial), no nonce, no requestorName, an
  optionalSignature with algorithm ecdsa-with-SHA256, a "signature" BIT STRING of random bytes
  that fills the request to its size, and the outsider's self-signed P-256 certificate (not a
  registered verifier's).  `--distinct` (default 256) such requests are built, each with its
  own outsider certificate, serial and blob; request i is built request i mod --distinct
  with 8 bytes of its blob replaced by i, so that no two requests of the stream have the
  same bytes.
* `--concurrency` (default 8) client threads in this process, each with one keep-alive
  http.client connection (HTTP/1.1), sending its next request when the answer to the last
  one has been read; a connection the server closes is opened again for the next request
  (openssl closes after each answer, so there every request has its own connection).
* Every answer must be HTTP 200 with the OCSP response `unauthorized` (the 5 bytes
  30 03 0a 01 06); any other answer or a connection error is counted and reported, and
  makes the run fail.

The responder's RSS is sampled for 1 s before the stream ("idle": the median), during it,
and for 3 s after it ("after": the last sample; the query history is written once a
second).  Before the idle second comes a warm-up, so that the code paths of normal service
are loaded: 8 requests of the registered verifier (signed, no nonce) whose answers are
checked in full by bench/ocsp.py `check_responder` (revoked, right time and reason, RSA-2048
signature that verifies, responder certificate issued by tokyo), then 64 of them and 64
small unsigned requests (nobody's) over the same connections as the stream; those must be
answered successful and unauthorized.  "start" in the table is the RSS right after the
server answered its first request (one request of the stream), before the warm-up.
VmRSS and VmHWM are counters the kernel updates lazily, so a sample can exceed VmHWM by a
few hundred KB.

Reference, in the same run, after revoca has stopped (never both at once): `openssl ocsp
-index index.txt -port P -rsigner resp.pem -rkey resp.key -CA tokyo.pem -multi 2 -nmin 60`
started as bench/ocsp.py starts it (the same 1,000 serials in index.txt, a self-made RSA-2048
responder certificate and key file), and the same warm-up and stream.  openssl does not
authorize: it ignores request signatures and answers every request `successful` (signed, the
serial revoked), so it does more per request (an RSA-2048 signature) than revoca's refusal;
the comparison is of memory, not work.  Its rows are the parent and its two `-multi`
children, with no cap.  The client and the responder share this machine's cores.

The last line is

    ocsp_memory total_mb=M requests=N revoca_max_growth_mb=G revoca_cap_ok=1|0 openssl_max_growth_mb=G

with growth = peak RSS - idle RSS of the worker that grew most (MiB).  The exit status is 1
when a worker passed its cap or exited, or an answer was not `unauthorized`.  The bench
does catch the attack: with ocsp/ as of commit 53a6f52 (before the fix, which kept every
parsed request without a nonce), each of the two workers grew by about 1 GiB under the
1 GiB stream (1,065 and 1,003 MiB) and both FAILed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import http.client
import importlib.util
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

# As in bench/ocsp.py: this folder comes first on sys.path when run as a script and its
# ocsp.py would hide the ocsp package.  bench/ocsp.py takes the folder off and loads
# bench/crl.py; load it by its path too and use its set-up helpers.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
_spec = importlib.util.spec_from_file_location("bench_ocsp", _HERE / "ocsp.py")
assert _spec is not None and _spec.loader is not None
ocsp_bench = sys.modules["bench_ocsp"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ocsp_bench)
crl_bench = ocsp_bench.crl_bench

from asn1crypto import ocsp as asn1_ocsp  # noqa: E402
from asn1crypto import x509 as asn1_x509  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509 import ocsp as x509_ocsp  # noqa: E402

from ca import ceremony  # noqa: E402
from ca.config import settings_from_dict  # noqa: E402
from ca.storage.engine import make_engine  # noqa: E402
from ca.verifiers.registry import add_verifier  # noqa: E402
from ocsp.app import MAX_BODY  # noqa: E402
from ocsp.issuers import public_key_bits  # noqa: E402
from ocsp.responder import PRESIGNED_MAX_BYTES, REQUESTS_MAX_BYTES  # noqa: E402
from ocsp.response import error_response  # noqa: E402

MIB = 1 << 20
REVOKED = 1000  # tokyo's revoked certificates; the CertIDs name these serials
WARM_UP = 64
IDLE_SECONDS = 1.0
AFTER_SECONDS = 3.0
SAMPLE_EVERY = 0.05
UNAUTHORIZED = error_response("unauthorized")
CAP_BYTES = REQUESTS_MAX_BYTES + PRESIGNED_MAX_BYTES


# -- requests --------------------------------------------------------------------------------------


def outsider_certificate(i: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"outsider {i}"),
                      x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Elsewhere"),
                      x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "JP")])
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))


def unsigned_request(issuer: x509.Certificate, serial: int) -> bytes:
    """One SHA-1 CertID, no nonce (as tests/support/tools.py ocsp_request)."""
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        hashlib.sha1(issuer.subject.public_bytes()).digest(), hashlib.sha1(public_key_bits(spki)).digest(),
        serial, hashes.SHA1()).build().public_bytes(serialization.Encoding.DER)


def padded_outsider_request(issuer: x509.Certificate, serial: int, outsider: x509.Certificate,
                            size: int) -> tuple[bytes, int]:
    """(a signed request of exactly `size` bytes from an outsider, the offset of its signature blob):
    a real CertID, the outsider's certificate and a random "signature" that fills the rest
    (as tests/integration/isolation/test_ocsp_bounds.py `_padded_outsider_request`)."""
    tbs = asn1_ocsp.OCSPRequest.load(unsigned_request(issuer, serial))["tbs_request"]
    cert = asn1_x509.Certificate.load(outsider.public_bytes(serialization.Encoding.DER))

    def build(blob: bytes) -> bytes:
        return asn1_ocsp.OCSPRequest({"tbs_request": tbs, "optional_signature": {
            "signature_algorithm": {"algorithm": "sha256_ecdsa"}, "signature": blob, "certs": [cert]}}).dump()

    n = max(64, size - len(build(b"\0" * 64)) + 64)
    for _ in range(4):  # the length octets grow with the blob
        blob = os.urandom(n)
        der = build(blob)
        if len(der) == size:
            break
        n = max(64, n + size - len(der))
    offset = der.find(blob[:32])
    assert offset > 0 and der[offset:offset + n] == blob
    return der, offset


class Stream:
    """The attack's requests: request i is base i mod B with 8 bytes of its blob set to i."""

    def __init__(self, bases: list[tuple[bytes, int]], count: int) -> None:
        self.bases = bases
        self.count = count

    def body(self, i: int) -> bytes:
        base, offset = self.bases[i % len(self.bases)]
        body = bytearray(base)
        body[offset:offset + 8] = i.to_bytes(8, "big")
        return bytes(body)


# -- processes and their memory --------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def memory(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in bytes, None once the process has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, kb = line.split()[:2]
            values[name] = int(kb) * 1024
    if "VmRSS:" not in values:
        return None
    return values["VmRSS:"], values.get("VmHWM:", 0)


class Sampler:
    """VmRSS of some processes every 50 ms in a thread, by phase (idle, stream, after)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.phase = "idle"
        self.samples: dict[int, dict[str, list[int]]] = {pid: {} for pid in pids}
        self.gone: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                found = memory(pid)
                if found is None:
                    self.gone.add(pid)
                else:
                    self.samples[pid].setdefault(self.phase, []).append(found[0])
            self._stop.wait(SAMPLE_EVERY)


@dataclasses.dataclass(frozen=True)
class ProcessRow:
    responder: str
    role: str
    pid: int
    started: int  # bytes: RSS right after start, before the warm-up
    idle: int  # the median idle sample
    peak: int  # max(samples during and after the stream, VmHWM)
    hwm: int
    after: int
    capped: bool
    gone: bool = False  # exited during the measurement (a worker that died and was replaced fails)

    @property
    def cap(self) -> int:
        return self.idle + CAP_BYTES

    @property
    def ok(self) -> bool:
        return self.peak <= self.cap and not self.gone


# -- load ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    requests: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    connections: int = 0  # opened: the responder closes after each answer, or keeps them
    answers: Counter[str] = dataclasses.field(default_factory=Counter)


def classify(status: int, body: bytes) -> str:
    if body == UNAUTHORIZED:
        return f"HTTP {status} unauthorized"
    try:
        name = asn1_ocsp.OCSPResponse.load(body)["response_status"].native
    except Exception:  # noqa: BLE001 - anything that is not an OCSPResponse
        return f"HTTP {status} not an OCSP response ({len(body)} bytes)"
    return f"HTTP {status} {name}"


def send(port: int, count: int, body: Callable[[int], bytes], concurrency: int, stop: threading.Event) -> Result:
    """Requests 0..count-1 over `concurrency` threads, each with one keep-alive connection."""
    result = Result()
    lock = threading.Lock()
    numbers = itertools.count()

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        sent, opened, answers = 0, 0, Counter[str]()
        try:
            while not stop.is_set():
                i = next(numbers)
                if i >= count:
                    break
                data = body(i)
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                        opened += 1
                    conn.request("POST", "/", data, {"Content-Type": "application/ocsp-request"})
                    resp = conn.getresponse()
                    answer = resp.read()
                    answers[classify(resp.status, answer)] += 1
                    if resp.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as exc:
                    answers[f"connection error {type(exc).__name__}"] += 1
                    if conn is not None:
                        conn.close()
                    conn = None
                sent += len(data)
        finally:
            if conn is not None:
                conn.close()
            with lock:
                result.bytes_sent += sent
                result.connections += opened
                result.answers.update(answers)

    threads = [threading.Thread(target=worker, name=f"client-{n}", daemon=True) for n in range(concurrency)]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.2)
    result.seconds = time.perf_counter() - t
    result.requests = sum(result.answers.values())
    return result


# -- the responders ----------------------------------------------------------------------------------


def wait_for_children(pid: int, n: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        found = [c for c in children(pid) if "resource_tracker" not in cmdline(c)]
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def measure(label: str, port: int, proc: subprocess.Popen[bytes], processes: list[tuple[str, int]], *,
            warm_up: list[bytes], warm_answers: tuple[str, str], check_warm_up: Callable[[], None], stream: Stream,
            concurrency: int, capped: bool, stop: threading.Event) -> tuple[list[ProcessRow], Result]:
    pids = [pid for _, pid in processes]
    at_start = {pid: (memory(pid) or (0, 0))[0] for pid in pids}
    check_warm_up()
    signed, unsigned = warm_up[:len(warm_up) // 2], warm_up[len(warm_up) // 2:]  # a verifier's, nobody's
    warm = send(port, WARM_UP, lambda i: signed[i % len(signed)], concurrency, stop)
    warm.answers.update(send(port, WARM_UP, lambda i: unsigned[i % len(unsigned)], concurrency, stop).answers)
    print(f"  warm-up: {dict(sorted(warm.answers.items()))}", flush=True)
    expected = Counter({f"HTTP 200 {warm_answers[0]}": WARM_UP}) + Counter({f"HTTP 200 {warm_answers[1]}": WARM_UP})
    if warm.answers != expected:
        raise SystemExit(f"{label}: wrong answers in the warm-up, expected {dict(expected)}")
    with Sampler(pids) as sampler:
        time.sleep(IDLE_SECONDS)
        sampler.phase = "stream"
        print(f"  {label}: {stream.count} requests of {len(stream.body(0))} bytes, {concurrency} connections ...",
              flush=True)
        result = send(port, stream.count, stream.body, concurrency, stop)
        sampler.phase = "after"
        time.sleep(AFTER_SECONDS)
    if stop.is_set():
        raise KeyboardInterrupt
    rows = []
    for role, pid in processes:
        phases = sampler.samples[pid]
        idle = sorted(phases.get("idle", [0]))[len(phases.get("idle", [0])) // 2]
        hwm = (memory(pid) or (0, 0))[1]
        seen = phases.get("stream", []) + phases.get("after", [])
        rows.append(ProcessRow(label, role, pid, at_start[pid], idle, max([hwm, *seen]), hwm,
                               phases.get("after", [0])[-1], capped, pid in sampler.gone))
    if sampler.gone or proc.poll() is not None:
        print(f"  {label}: processes gone during the run: {sorted(sampler.gone)} (server exit code {proc.poll()})",
              flush=True)
    now = [c for c in children(proc.pid) if "resource_tracker" not in cmdline(c)]
    if sorted(now) != sorted(p for r, p in processes if r != "main" and r != "parent"):
        print(f"  {label}: children now {now}, before {[p for _, p in processes]}", flush=True)
    return rows, result


def run(root: Path, args: argparse.Namespace, stop: threading.Event) -> tuple[list[ProcessRow], dict[str, Result]]:
    data = root / "var"
    sock_dir = Path(tempfile.mkdtemp(prefix="rvb"))  # Unix socket paths are short
    sock = sock_dir / "hsm.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(data), REVOCA_HSM_SOCKET=str(sock), REVOCA_HSM_KEY_ALGORITHM="rsa2048",
               # the whole stream reaches the parser: no 429 per address, no tryLater per verifier
               REVOCA_OCSP_RATE_PER_ADDRESS="0", REVOCA_OCSP_RATE_PER_VERIFIER="0")
    settings = settings_from_dict({"data_dir": str(data), "hsm": {"socket": str(sock), "key_algorithm": "rsa2048"}})
    engine = make_engine(settings.db_url)
    rows: list[ProcessRow] = []
    results: dict[str, Result] = {}
    try:
        t = time.perf_counter()
        print(f"setting up: demo hierarchy (RSA-2048 in SoftHSM2) in {data}", flush=True)
        ceremony.run(settings, engine, demo=True, now=crl_bench.NOW, demo_subscribers=0)
        crl_bench.insert_revocations(engine, "tokyo", REVOKED)
        tokyo = ocsp_bench.tokyo_certificate(engine)
        verifier_key = rsa.generate_private_key(65537, 2048)
        verifier = ocsp_bench.self_signed("bench-verifier", verifier_key)
        add_verifier(engine, name="bench-verifier", certificate=verifier, password=None, now=dt.datetime.now(dt.UTC),
                     base_dn=settings.repository.base_dn, actor="bench")
        serials = list(crl_bench.entries(REVOKED))
        files = root / "files"
        files.mkdir(exist_ok=True)
        queries = []
        for i, (serial, when, reason) in enumerate(serials[:8]):
            path = files / f"verifier-{i}.der"
            path.write_bytes(ocsp_bench.ocsp_request(tokyo, serial, verifier, verifier_key, None))
            queries.append(ocsp_bench.Query(serial, when, reason, path, None))
        warm_up = [q.path.read_bytes() for q in queries] + [unsigned_request(tokyo, s) for s, _, _ in serials[8:16]]
        size = args.size_kb * 1024
        bases = [padded_outsider_request(tokyo, serials[(i * 7) % REVOKED][0], outsider_certificate(i), size)
                 for i in range(args.distinct)]
        stream = Stream(bases, -(-args.total_mb * MIB // size))
        assert len({stream.body(i) for i in range(min(stream.count, 2 * args.distinct))}) == min(
            stream.count, 2 * args.distinct)
        print(f"set up in {time.perf_counter() - t:.1f} s: {args.distinct} distinct outsider requests of {size} bytes",
              flush=True)

        with crl_bench.hsm_service(env, settings.demo_shares_dir, sock):
            print("revoca serve ocsp --workers 2 (granian), rate limits off", flush=True)
            def revoca_serve(port: int) -> list[str]:
                return [str(crl_bench.REVOCA), "serve", "ocsp", "--port", str(port), "--workers", "2"]

            log = root / "revoca.log"
            with ocsp_bench.on_a_free_port(revoca_serve, env, root, log, stream.body(0)) as (port, proc):
                workers = wait_for_children(proc.pid, 2)
                print(f"  server pid {proc.pid}, workers {workers}", flush=True)
                for pid in workers:
                    print(f"    {pid}: {cmdline(pid)[:120]}", flush=True)
                processes = [("main", proc.pid)] + [(f"worker {n + 1}", pid) for n, pid in enumerate(workers)]

                def check_revoca() -> None:
                    ocsp_bench.check_responder(port, queries, "revoca (warm-up)", issuer=tokyo)

                got, results["revoca"] = measure("revoca", port, proc, processes, warm_up=warm_up,
                                                 warm_answers=("successful", "unauthorized"),
                                                 check_warm_up=check_revoca, stream=stream,
                                                 concurrency=args.concurrency, capped=True, stop=stop)
                rows += [dataclasses.replace(r, capped=r.role != "main") for r in got]

        if args.skip_openssl:
            return rows, results
        work = root / "openssl"
        work.mkdir(exist_ok=True)
        ocsp_bench.write_openssl_index(work / "index.txt", REVOKED)
        (work / "index.txt.attr").write_text("unique_subject = no\n")
        responder_key = rsa.generate_private_key(65537, 2048)
        responder = ocsp_bench.self_signed("Bench OpenSSL OCSP Responder", responder_key, ocsp_signing=True)
        (work / "resp.pem").write_bytes(ocsp_bench._pem(responder))
        (work / "resp.key").write_bytes(ocsp_bench._key_pem(responder_key))
        (work / "resp.key").chmod(0o600)
        (work / "tokyo.pem").write_bytes(ocsp_bench._pem(tokyo))
        print("openssl ocsp -multi 2 (reference)", flush=True)
        with ocsp_bench.on_a_free_port(ocsp_bench.openssl_serve, dict(os.environ), work, root / "openssl.log",
                                       warm_up[0], own_group=True) as (port, proc):
            kids = wait_for_children(proc.pid, 2)
            print(f"  parent pid {proc.pid}, children {kids}", flush=True)
            processes = [("parent", proc.pid)] + [(f"child {n + 1}", pid) for n, pid in enumerate(kids)]

            def check_openssl() -> None:
                ocsp_bench.check_responder(port, queries, "openssl (warm-up)", responder=responder)

            got, results["openssl"] = measure("openssl", port, proc, processes, warm_up=warm_up,
                                              warm_answers=("successful", "successful"),
                                              check_warm_up=check_openssl, stream=stream,
                                              concurrency=args.concurrency, capped=False, stop=stop)
            rows += got
    finally:
        engine.dispose()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return rows, results


def mib(n: int) -> str:
    return f"{n / MIB:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-mb", type=int, default=1024, help="MiB of request bodies in the stream (1024: 1 GiB).")
    parser.add_argument("--size-kb", type=int, default=60, help="KiB per request (at most the responder's 64).")
    parser.add_argument("--concurrency", type=int, default=8, help="Client threads, one keep-alive connection each.")
    parser.add_argument("--distinct", type=int, default=256, help="Distinct outsider requests (certificate, blob).")
    parser.add_argument("--skip-openssl", action="store_true", help="Only measure revoca.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory (logs, data).")
    args = parser.parse_args()
    if args.total_mb < 1 or args.concurrency < 1 or args.distinct < 1 or args.size_kb < 2:
        parser.error("--total-mb, --concurrency and --distinct must be positive, --size-kb at least 2")
    if args.size_kb * 1024 > MAX_BODY:
        parser.error(f"--size-kb: revoca refuses bodies above {MAX_BODY} bytes with 413 before parsing; "
                     "such a stream would not reach the parser")

    stop = threading.Event()

    def terminate(signum: int, frame: object) -> None:
        """Ctrl-C or SIGTERM: the processes are stopped on the way out; a second signal does not cut that short."""
        if not stop.is_set():
            stop.set()
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)  # also when started with SIGINT ignored (a background job)
    root = Path(tempfile.mkdtemp(prefix="revoca-ocsp-memory-"))
    try:
        rows, results = run(root, args, stop)
    except KeyboardInterrupt:
        stop.set()
        print("interrupted; every process this bench started has been stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        stop.set()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\nOCSP worker RSS under an unauthorized stream: {args.total_mb} MiB in requests of "
          f"{args.size_kb * 1024} bytes, {args.concurrency} keep-alive connections, rate limits off, "
          f"{os.cpu_count()} cores shared by responder and client")
    for label, r in results.items():
        answers = ", ".join(f"{n} {what}" for what, n in r.answers.most_common())
        print(f"{label:<8} {r.requests} requests, {r.bytes_sent} bytes ({r.bytes_sent / MIB:.0f} MiB) sent in "
              f"{r.seconds:.1f} s ({r.requests / r.seconds:.0f} req/s, {r.bytes_sent / MIB / r.seconds:.0f} MiB/s) "
              f"over {r.connections} connections; answers: {answers}")
    print(f"cap per revoca worker = idle + REQUESTS_MAX_BYTES ({mib(REQUESTS_MAX_BYTES)}) + "
          f"PRESIGNED_MAX_BYTES ({mib(PRESIGNED_MAX_BYTES)}) MiB; peak = max(sampled VmRSS, VmHWM)")
    print(f"{'responder':<10}{'process':<10}{'pid':>8}{'start MiB':>11}{'idle MiB':>10}{'peak MiB':>10}"
          f"{'HWM MiB':>9}{'after MiB':>11}{'growth':>8}{'cap MiB':>9}  verdict")
    for r in rows:
        cap, verdict = ("-", "-")
        if r.capped:
            cap, verdict = mib(r.cap), "PASS" if r.ok else "FAIL (exited)" if r.gone else (
                f"FAIL (+{mib(r.peak - r.cap)} MiB)")
        print(f"{r.responder:<10}{r.role:<10}{r.pid:>8}{mib(r.started):>11}{mib(r.idle):>10}{mib(r.peak):>10}"
              f"{mib(r.hwm):>9}{mib(r.after):>11}{mib(r.peak - r.idle):>8}{cap:>9}  {verdict}")
    workers = [r for r in rows if r.capped]
    others = [r for r in rows if r.responder == "openssl"]
    revoca = results.get("revoca")
    wrong = revoca.requests - revoca.answers["HTTP 200 unauthorized"] if revoca else 0
    if wrong:
        print(f"revoca: {wrong} answers were not HTTP 200 unauthorized")
    ok = bool(workers) and all(r.ok for r in workers) and not wrong
    growth = max((r.peak - r.idle for r in workers), default=0)
    reference = max((r.peak - r.idle for r in others), default=0)
    print(f"ocsp_memory total_mb={args.total_mb} requests={revoca.requests if revoca else 0} "
          f"revoca_max_growth_mb={growth / MIB:.1f} revoca_cap_ok={int(ok)} "
          f"openssl_max_growth_mb={reference / MIB:.1f}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
