"""Signatures per second with 1, 4 and 16 concurrent clients: revoca's TokenSession in process, the
HSM service's socket (one connection per client) signing in the service itself (`[hsm]
signer_processes = 1`) and in a pool of P signing processes (ca.hsm.pool), beside SoftHSM2 through
python-pkcs11 with nothing of revoca (one session in one process, and P such processes at once:
the token's own rate on this machine) and OpenSSL (`openssl speed`, one core), in the same run.

One process signs through one PKCS#11 session at a time: python-pkcs11 (0.10) initialises the
module with C_Initialize(NULL), which tells it the application will not call it from several
threads, and SoftHSM2 then runs without its locks (two sessions signing at once in one process
fail with CKR_GENERAL_ERROR).  Hence the pool of processes, each with a session of its own.

    .venv/bin/python bench/signing.py [--algorithm rsa2048] [--seconds 3] [--clients 1,4,16] [--processes P]

Workload: each signature is over different bytes (about the size of an OCSP ResponseData); the
key is warm (found once); P defaults to the number of CPUs, as `[hsm] signer_processes` does.
Last line: `signing alg=A cores=C processes=P raw_1=.. raw_P=.. token_1=.. ... service_16=..
pool_16=.. openssl_sps=..`.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pkcs11
from pkcs11 import Mechanism, ObjectClass

from ca.config import SOFTHSM_MODULE, settings_from_dict
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import Token, TokenSession

OPENSSL_NAMES = {"rsa2048": "rsa2048", "rsa3072": "rsa3072", "rsa4096": "rsa4096", "p256": "ecdsap256",
                 "p384": "ecdsap384"}
PIN = "bench-user-pin"


def rate(make_signer: Callable[[], Callable[[bytes], bytes]], clients: int, seconds: float) -> float:
    """Signatures per second of `clients` threads, each with the signer `make_signer` gives it."""
    counts = [0] * clients
    signers = [make_signer() for _ in range(clients)]  # connections made before the clock starts
    start = threading.Barrier(clients + 1)
    stop = threading.Event()

    def work(i: int) -> None:
        sign = signers[i]
        data = bytearray(os.urandom(300))
        start.wait()
        while not stop.is_set():
            data[:8] = counts[i].to_bytes(8, "big")  # a different message each time
            sign(bytes(data))
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def openssl_rate(algorithm: str, seconds: int) -> float:
    out = subprocess.run(["openssl", "speed", "-seconds", str(seconds), OPENSSL_NAMES[algorithm]],
                         capture_output=True, text=True, check=True).stdout
    # "rsa 2048 bits 0.000577s 0.000017s   1733.0  58823.5": sign/s is the first rate
    line = next(ln for ln in out.splitlines() if re.match(r"^\s*(rsa|\d+ bits ecdsa)", ln) and "/s" not in ln)
    return float(line.split()[-2])


def raw_signer(token: Token, algorithm: KeyAlgorithm) -> Callable[[], Callable[[bytes], bytes]]:
    """SoftHSM2 through python-pkcs11 with nothing of revoca: a session of its own (logged in
    already: PKCS#11 login is per application, and the TokenSession logged in); one thread only."""
    tok = token._lib().get_token(token_label=token.label)
    sessions: list[pkcs11.Session] = []

    def make() -> Callable[[bytes], bytes]:
        session = tok.open()
        sessions.append(session)
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="k")
        assert isinstance(key, pkcs11.SignMixin)
        if algorithm.is_rsa:
            return lambda data: key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
        return lambda data: key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)

    return make


def _raw_process(conf: str, seconds: float, start_at: float, out: multiprocessing.Queue) -> None:
    """One process of the raw reference: its own C_Initialize, session and login; signs from
    `start_at` (wall clock, shared by all) for `seconds`; puts its count."""
    token = Token(SOFTHSM_MODULE, "bench", softhsm_conf=Path(conf))
    tok = token._lib().get_token(token_label="bench")
    session = tok.open(user_pin=PIN)
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="k")
    assert isinstance(key, pkcs11.SignMixin)
    rsa = key.key_type == pkcs11.KeyType.RSA
    data = bytearray(os.urandom(300))
    count = 0
    time.sleep(max(0.0, start_at - time.time()))
    end = start_at + seconds
    while time.time() < end:
        data[:8] = count.to_bytes(8, "big")
        if rsa:
            key.sign(bytes(data), mechanism=Mechanism.SHA256_RSA_PKCS)
        else:
            key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
        count += 1
    out.put(count)


def raw_processes_rate(conf: Path, processes: int, seconds: float) -> float:
    """SoftHSM2 in `processes` processes at once, nothing of revoca: what a pool could reach."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # time for every process to start and log in
    procs = [ctx.Process(target=_raw_process, args=(str(conf), seconds, start_at, out)) for _ in range(processes)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=60 + seconds) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithm", default="rsa2048", choices=[a.value for a in KeyAlgorithm])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)),
                        help="signing processes of the pooled service (default: the CPUs, as [hsm])")
    args = parser.parse_args()
    processes = args.processes
    algorithm = KeyAlgorithm(args.algorithm)
    levels = [int(n) for n in args.clients.split(",")]
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="rvbench") as tmp:
        settings = settings_from_dict({"data_dir": tmp})
        token = Token(SOFTHSM_MODULE, "bench", softhsm_conf=settings.softhsm_conf)
        token.initialize_softhsm(so_pin="bench-so-pin", user_pin=PIN)
        session = token.open(PIN)
        session.generate("k", algorithm)
        raw = raw_signer(token, algorithm)
        rates["raw_1"] = rate(raw, 1, args.seconds)
        rates[f"raw_{processes}"] = raw_processes_rate(settings.softhsm_conf, processes, args.seconds)
        for n in levels:
            rates[f"token_{n}"] = rate(lambda: session.signer("k").sign, n, args.seconds)
            rates[f"service_{n}"] = _service_rate(token, session, Path(tmp), n, args.seconds, 1)
            rates[f"pool_{n}"] = _service_rate(token, session, Path(tmp), n, args.seconds, processes)
        session.close()
    openssl_sps = openssl_rate(algorithm.value, max(1, int(args.seconds)))
    print(f"{'path':<34}" + "".join(f"{f'{n} client(s)':>14}" for n in levels))
    print(f"{'SoftHSM2 in process, raw':<34}{rates['raw_1']:>14.0f}")
    print(f"{f'SoftHSM2 raw, {processes} processes':<34}{rates[f'raw_{processes}']:>14.0f}")
    for key, name in (("token", "revoca TokenSession, in process"), ("service", "HSM service, 1 process"),
                      ("pool", f"HSM service, {processes} signing proc.")):
        print(f"{name:<34}" + "".join(f"{rates[f'{key}_{n}']:>14.0f}" for n in levels))
    print(f"{'openssl speed (1 core)':<34}{openssl_sps:>14.0f}")
    print(f"signing alg={algorithm.value} cores={os.cpu_count()} processes={processes} "
          + " ".join(f"{k}={v:.0f}" for k, v in rates.items()) + f" openssl_sps={openssl_sps:.0f}")


def _service_rate(token: Token, session: TokenSession, tmp: Path, clients: int, seconds: float,
                  processes: int) -> float:
    """The socket path without a database: a service whose activation is the open session (and,
    with `processes` > 1, a pool of that many signing processes), each client on a connection of
    its own (the admin identity: this process's user)."""
    from ca.hsm.activation import Activation, ShareSetInfo
    from ca.hsm.callers import CallerMap
    from ca.hsm.client import HSMClient
    from ca.hsm.ledger import SignatureLedger
    from ca.hsm.policy import SigningPolicy
    from ca.hsm.pool import SignerPool
    from ca.hsm.service import HSMService, serve_in_thread

    service = HSMService.__new__(HSMService)  # no database: nothing here is audited or looked up
    service.engine = None  # type: ignore[assignment]
    service.activation = Activation(token, ShareSetInfo(0, 2, 3, ()), signer_processes=processes)
    service.activation._session = session  # already open: measure signing, not activation
    pool = None
    if processes > 1:
        pool = service.activation._pool = SignerPool(token, PIN, processes)
        if not pool.wait_ready(120):
            raise SystemExit("the signing processes did not start")
    service.policy = SigningPolicy()
    service.callers = CallerMap({}, frozenset({0, os.getuid()}))
    service.ledger = SignatureLedger(None, thread=False)  # type: ignore[arg-type]
    service._audit_writers = []
    service._list_issuers = {}
    sock = tmp / f"hsm-{clients}-{processes}.sock"
    server, _ = serve_in_thread(sock, service)
    clients_made: list[HSMClient] = []

    def make() -> Callable[[bytes], bytes]:
        client = HSMClient(sock)
        clients_made.append(client)
        return client.signer("k").sign

    try:
        return rate(make, clients, seconds)
    finally:
        for client in clients_made:
            client.close()
        server.shutdown()
        server.server_close()
        if pool is not None:
            pool.close()


if __name__ == "__main__":
    main()
