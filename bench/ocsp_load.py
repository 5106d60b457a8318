"""The load client of bench/ocsp.py: bench/ocsp_load.c, built here with the machine's C compiler.

Why a C client of our own rather than wrk or Python: every request of a pass is sent exactly
once (K distinct request bodies, read from one file, none on a command line), a pass has a
fixed number of requests rather than a duration (so that "cold" is the first pass over the
serials and "warm" the second), a close-mode latency includes the connect (which a verifier
that cannot keep connections alive pays, and wrk leaves out), and every answer is kept so
that bench/ocsp_requests.py can check it after the pass.  One epoll thread in C costs the
two cores the responder shares with it far less than a Python client would at thousands of
connections a second, so the figures are the responder's, not the client's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("ocsp_load.c")


def build(directory: Path) -> Path:
    """The client binary, compiled into `directory` (once per source version)."""
    source = SOURCE.read_bytes()
    binary = directory / f"ocsp_load-{hashlib.sha1(source).hexdigest()[:12]}"
    if binary.exists():
        return binary
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("no C compiler (cc or gcc) to build bench/ocsp_load.c; install gcc (apt-get install gcc)")
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([compiler, "-O2", "-Wall", "-o", str(binary), str(SOURCE)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"building bench/ocsp_load.c failed:\n{proc.stderr}")
    return binary


def write_bodies(path: Path, bodies: list[bytes]) -> Path:
    """The requests of a pass, as the client reads them: 4-byte big-endian length, then the DER."""
    with open(path, "wb") as f:
        for body in bodies:
            f.write(struct.pack(">I", len(body)))
            f.write(body)
    return path


@dataclasses.dataclass(frozen=True)
class Answer:
    index: int  # the request's place in the bodies file
    status: int  # HTTP status; 0: no answer (connect or read error, timeout)
    latency_us: int
    body: bytes


@dataclasses.dataclass(frozen=True)
class Pass:
    requests: int
    errors: int  # requests without an HTTP answer
    connections: int  # TCP connections opened
    seconds: float  # first connect to last answer
    answers_path: Path
    latencies_us: tuple[int, ...]  # of the requests answered, sorted

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies_us:
            return 0.0
        i = min(len(self.latencies_us) - 1, max(0, round(p / 100 * len(self.latencies_us) + 0.5) - 1))
        return self.latencies_us[i] / 1000

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)

    def answers(self) -> Iterator[Answer]:
        yield from read_answers(self.answers_path)


def read_answers(path: Path) -> Iterator[Answer]:
    with open(path, "rb") as f:
        while head := f.read(16):
            index, status, latency, size = struct.unpack(">IIII", head)
            yield Answer(index, status, latency, f.read(size))


def run(client: Path, port: int, bodies: Path, concurrency: int, *, keep_alive: bool, answers: Path) -> Pass:
    """One pass: every request of `bodies` once, `concurrency` at a time; the answers go to `answers`."""
    proc = subprocess.run([str(client), str(port), str(bodies), str(concurrency),
                           "keepalive" if keep_alive else "close", str(answers)],
                          capture_output=True, text=True, check=False)
    found = re.search(r"^RESULT (.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"the load client failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    r = {k: int(v) for k, v in (kv.split("=") for kv in found.group(1).split())}
    latencies = sorted(a.latency_us for a in read_answers(answers) if a.status)
    return Pass(r["requests"], r["errors"], r["connections"], r["elapsed_us"] / 1e6, answers, tuple(latencies))
