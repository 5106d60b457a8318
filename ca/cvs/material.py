"""The trust material a validator is built from: revoca's anchors, cross and link certificates
and newest lists (ca.storage.cvs), and the external CAs' CRLs an operator put in the CVS
directory (`external_crl_dir`: DER or PEM files, one list each, e.g. fetched from the
government PKI's repository).  Loaded again when the database shows a new certificate or list,
or a file of the directory changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from ca.cvs.validate import Validator
from ca.storage.cvs import CVSReads
from ca.storage.engine import Engine, session_scope

log = logging.getLogger("revoca.cvs")

RECHECK_SECONDS = 30.0  # how often the database and the directory are asked whether anything changed


def external_crl_dir(data_dir: Path) -> Path:
    return data_dir / "cvs" / "crls"


def read_list(path: Path) -> x509.CertificateRevocationList:
    raw = path.read_bytes()
    if raw.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(raw)
    return x509.load_der_x509_crl(raw)


def _dir_mark(directory: Path) -> tuple[tuple[str, int, int], ...]:
    if not directory.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()
                        if p.is_file()))


class TrustSource:
    """The current Validator, rebuilt when the trust material changed (checked every `recheck` seconds)."""

    def __init__(self, engine: Engine, data_dir: Path, *, recheck: float = RECHECK_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._data_dir = data_dir
        self._recheck = recheck
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._validator: Validator | None = None
        self._mark: object = None
        self._checked = float("-inf")

    def validator(self) -> Validator:
        with self._lock:
            if self._validator is None or self._monotonic() - self._checked >= self._recheck:
                with session_scope(self._engine) as session:
                    reads = CVSReads(session)
                    mark = (reads.mark(), _dir_mark(external_crl_dir(self._data_dir)))
                    if self._validator is None or mark != self._mark:
                        self._validator = self._load(reads)
                        self._mark = mark
                self._checked = self._monotonic()
            return self._validator

    def _load(self, reads: CVSReads) -> Validator:
        held = reads.trust_material()
        lists = []
        for relative in held.list_paths:
            try:
                lists.append(read_list(self._data_dir / relative))
            except (OSError, ValueError) as exc:  # a missing file leaves its certificates "unknown"
                log.warning("CRL/ARL %s cannot be read: %s", relative, exc)
        directory = external_crl_dir(self._data_dir)
        for path in sorted(directory.iterdir()) if directory.is_dir() else ():
            try:
                lists.append(read_list(path))
            except (OSError, ValueError) as exc:
                log.warning("external CRL %s is not a CRL: %s", path, exc)
        return Validator([x509.load_der_x509_certificate(d) for d in held.anchors],
                         [x509.load_der_x509_certificate(d) for d in held.intermediates], lists)
