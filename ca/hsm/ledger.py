"""Every signature the HSM service makes, accounted in the audit log (issue 12).

OCSP alone can ask for thousands of signatures a second, too many for one audit record
each.  The ledger counts them per (caller, key label, what was signed) and keeps a running
SHA-256 over the SHA-256 of each signed input, and writes one `hsm.signatures` record per
group every `interval` seconds (and when the service stops): who, with which key, what, how
many, between when, and the digest that a later check of the callers' own records (CRL
archive, OCSP history, receipts) can be matched against.  Refusals are not batched: the
service audits each at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import threading

from ca import audit
from ca.storage.engine import Engine, session_scope

log = logging.getLogger("revoca.hsm")

INTERVAL = 60.0


@dataclasses.dataclass
class _Group:
    first: dt.datetime
    last: dt.datetime
    count: int = 0
    chain: hashlib._Hash = dataclasses.field(default_factory=hashlib.sha256)


class SignatureLedger:
    def __init__(self, engine: Engine, *, interval: float = INTERVAL, thread: bool = True) -> None:
        self.engine = engine
        self.interval = interval
        self._groups: dict[tuple[str, str, str], _Group] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hsm-ledger", daemon=True) if thread else None
        if self._thread is not None:
            self._thread.start()

    def add(self, caller: str, label: str, signed: str, data: bytes = b"", *, digest: bytes | None = None) -> None:
        """One signature over `data`, or over what `digest` is the hash of (a streamed list)."""
        now = dt.datetime.now(dt.UTC)
        digest = digest if digest is not None else hashlib.sha256(data).digest()
        with self._lock:
            group = self._groups.get((caller, label, signed))
            if group is None:
                group = self._groups[(caller, label, signed)] = _Group(now, now)
            group.count += 1
            group.last = now
            group.chain.update(digest)

    def flush(self) -> int:
        """Write what was counted since the last flush; the number of signatures written."""
        with self._lock:
            groups, self._groups = self._groups, {}
        if not groups:
            return 0
        try:
            with session_scope(self.engine) as session:
                for (caller, label, signed), group in sorted(groups.items()):
                    audit.record(session, "hsm.signatures", actor=caller, at=group.last, key_label=label,
                                 signed=signed, count=group.count, first=group.first.isoformat(),
                                 last=group.last.isoformat(), sha256_chain=group.chain.hexdigest())
        except Exception:
            log.exception("could not write the signature ledger; keeping it for the next try")
            with self._lock:
                for key, group in groups.items():
                    newer = self._groups.get(key)
                    if newer is not None:  # both kept: the older counts first
                        group.count += newer.count
                        group.last = newer.last
                        group.chain.update(newer.chain.digest())
                    self._groups[key] = group
            return 0
        return sum(g.count for g in groups.values())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
