"""Answers signed on demand, shared by every worker of one responder (issue 16: the negative cache).

What the background signer cannot sign ahead -- above all unknown serials, a quarter of what
verifiers ask, and CertIDs by SHA-256 -- a worker signs when asked.  Kept only in that worker,
the same question reaching another worker was signed again: with 2 workers about half the
repeated unknowns of a warm pass.  Here a signed answer is kept once for all the workers of one
`revoca serve ocsp` on this machine.

How: a file of fixed size (SIZE, 64 MiB), mapped by every worker, made by the server before
the workers start (`create`, path in REVOCA_OCSP_SHARED_ANSWERS) and removed when it stops.
It is a direct-mapped table of SLOT-byte slots: a key's slot is fixed by the key, a new answer
overwrites whatever was there.  So it is bounded in size whatever arrives, and in time: an
entry is served only until its `refresh_at`, which the responder sets as for its own cache.
No schema, no lock: each slot carries a SHA-256 of its contents, and a slot read while another
worker writes it (a torn read) fails that check and is a miss -- the answer is signed again.

The key is a digest of everything the answer depends on: the CertID as sent, the status read
now (with time and reason), the responder certificate and key that sign.  A status change, a
renewed responder certificate, another CertID: another key, never a stale answer.  Only the
responder writes here, after the verifier is authorized, never for a request with a nonce.
The file is the OCSP user's alone (0600), in /dev/shm (memory) when the machine has it.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import tempfile
from pathlib import Path

ENVIRON = "REVOCA_OCSP_SHARED_ANSWERS"
SIZE = 64 << 20
SLOT = 1024
_PREFIX = "revoca-ocsp-answers-"
_HEAD = struct.Struct(">32s32sqH")  # checksum, key, refresh_at (Unix seconds), body length
BODY_MAX = SLOT - _HEAD.size  # RSA-4096 answers (~750 bytes) fit


def create(directory: Path | None = None, size: int = SIZE) -> Path:
    """A new zeroed table file (0600), for the server to name in ENVIRON before its workers start.
    Files left by a server that died without removing its own are removed first."""
    where = directory or (Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir()))
    _remove_orphans(where)
    fd, name = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=where)
    try:
        os.ftruncate(fd, size - size % SLOT)
    finally:
        os.close(fd)
    return Path(name)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _remove_orphans(where: Path) -> None:
    for path in where.glob(f"{_PREFIX}*"):
        try:
            pid = int(path.name[len(_PREFIX):].split("-", 1)[0])
            if path.stat().st_uid != os.getuid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            remove(path)
        except (ValueError, OSError):
            continue


def key_of(*parts: bytes) -> bytes:
    """The 32-byte key of an answer: SHA-256 over its parts, each length-prefixed."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.digest()


class SharedAnswers:
    """The table, mapped by this process."""

    def __init__(self, path: Path) -> None:
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), 0)
        self.slots = len(self._map) // SLOT
        if self.slots == 0:
            raise ValueError(f"{path}: an empty shared answers file")

    @classmethod
    def from_environment(cls) -> SharedAnswers | None:
        """The table the server made for its workers, or None (a responder built on its own, in tests)."""
        path = os.environ.get(ENVIRON)
        if not path:
            return None
        try:
            return cls(Path(path))
        except (OSError, ValueError):
            return None  # gone or unreadable: each worker keeps its own answers, as before

    def _offset(self, key: bytes) -> int:
        return int.from_bytes(key[:8], "big") % self.slots * SLOT

    def get(self, key: bytes, now: int) -> bytes | None:
        """The answer stored under `key` while `now` (Unix seconds) is before its refresh time."""
        at = self._offset(key)
        slot = self._map[at:at + SLOT]
        checksum, found, refresh_at, length = _HEAD.unpack_from(slot)
        if found != key or now >= refresh_at or length > BODY_MAX:
            return None
        end = _HEAD.size + length
        if hashlib.sha256(slot[32:end]).digest() != checksum:
            return None  # torn by a writer in another worker, or never written whole
        return slot[_HEAD.size:end]

    def put(self, key: bytes, refresh_at: int, body: bytes) -> None:
        if len(body) > BODY_MAX:
            return
        contents = _HEAD.pack(b"", key, refresh_at, len(body))[32:] + body
        at = self._offset(key)
        self._map[at:at + 32 + len(contents)] = hashlib.sha256(contents).digest() + contents

    def close(self) -> None:
        self._map.close()
