"""The background signer: every certificate's OCSP answer signed ahead, for every responder (issue 16).

A responder that signs each answer is bounded by its signer (RSA-2048 in SoftHSM2: about 700
a second through the HSM service); verifiers ask about millions of different certificates.
So the answer for every unexpired certificate of every CA key (good and revoked) is signed
here, ahead, with the key's delegated responder certificate -- the same one responders use
(ocsp.issuers, `key_files` as their `--key-store file`) -- and stored in the database
(ca.storage.presigned), where every responder process on every machine reads it with the
status, in the same lookup (ocsp.responder; when it may be served: ocsp.presigned).

What it signs, in this order, each round (every POLL seconds while there is nothing to do):

1. revocations committed since the last round (and a window before it, for transactions that
   committed out of id order): signed within a second of the commit.  Until then responders
   sign such a query on demand, since the stored answer no longer says what they read.
2. a page of the walk over every certificate whose answer is missing, says another status,
   was signed by another responder certificate, or is due: all of them at start, again when a
   key's responder certificate changes (renewal, revocation; the index is read every minute)
   and every FULL_PASS; new certificates on the way.
3. a page of answers whose refresh time (ocsp.presigned.REFRESH) has come.

And with each hourly walk, in batches of PAGE, one a round: the answers of certificates past
notAfter are deleted (RFC 6960 lets a responder not answer for those; revoca's responders still
do, from the certificate row, signed on demand), so that the table holds the certificates
verifiers may still rely on, not every one ever issued.

Only one signer works at a time (the "ocsp-signer" lease: an advisory lock on PostgreSQL, a
file lock on SQLite); others stand by and take over.  Signatures go through the HSM service
as the OCSP identity, whose policy allows ResponseData with responder keys (ca.hsm.policy),
after the trusted-time check, in `threads` threads each with a connection of its own.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from ca import trusted_time
from ca.audit.service_events import running
from ca.errors import PermissionDenied
from ca.hsm.signer import KeyStore, Signer
from ca.storage.engine import Engine, session_scope
from ca.storage.leases import Lease
from ca.storage.presigned import PresignedStore, SignedAnswer, ToSign
from ca.storage.store import ReadStore
from ocsp.issuers import IssuerIndex, IssuerKey
from ocsp.presigned import refresh_at
from ocsp.response import Answer, sha1_cert_id, signed_part
from ocsp.status import GOOD, CertStatus, Status

log = logging.getLogger("revoca.ocsp.presigner")

POLL = 0.25  # seconds between rounds with nothing to do: a revocation is signed ahead within a second
PAGE = 1000  # certificates per page of the walk, answers per write
REVOKED_WINDOW = 1000  # revocation ids looked at again below the last seen (out-of-order commits)
RELOAD_EVERY = dt.timedelta(seconds=60)
FULL_PASS = dt.timedelta(hours=1)
FALLBACK_VALIDITY = dt.timedelta(hours=24)  # nextUpdate when the CA has no current CRL (as ocsp.responder)
LEASE = "ocsp-signer"

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass
class PassReport:
    signed: int = 0
    seconds: float = 0.0
    pruned: int = 0  # answers of expired certificates deleted


class Presigner:
    def __init__(self, engine: Engine, keys: Callable[[], KeyStore], *, clock: Clock = utc_now,
                 ca_signed: bool = False, key_files: bool = False, threads: int = 2,
                 time_guard: trusted_time.ClockGuard, lease: Lease | None = None) -> None:
        """`keys` makes a KeyStore for one signing thread (each its own HSM service connection);
        `time_guard` (the process's, ca.trusted_time) checks the clock before each round is signed."""
        self.engine = engine
        self.clock = clock
        self.ca_signed = ca_signed
        self.key_files = key_files
        self.time_guard = time_guard
        self.lease = lease or Lease(engine, LEASE)
        self.store = PresignedStore(engine)
        self._keys = keys
        self._local = threading.local()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, threads),
                                                           thread_name_prefix="ocsp-presign")
        self.threads = max(1, threads)
        self._index: IssuerIndex | None = None
        self._loaded_at: dt.datetime | None = None
        self._crl_next: dict[int, dt.datetime] = {}
        self._responders: dict[int, int | None] = {}  # key id -> responder serial the walk signed for
        self._walk: dict[int, int] = {}  # key id -> certificate id the walk continues after (absent: done)
        self._walk_started: dt.datetime | None = None
        self._revoked_after = 0
        self._prune = False  # expired certificates' answers left to delete in this hour's walk
        self._may_prune = True  # False once the database role refused the delete (said once in the log)
        self.pruned = 0

    # -- one round -----------------------------------------------------------------------------

    def round(self, now: dt.datetime | None = None) -> int:
        """Sign what is due now, a page of each kind at most; the number of answers signed."""
        now = now or self.clock()
        self._reload(now)
        signed = self._sign(self._revoked(now), now)
        signed += self._walk_page(now)
        if not self._walk:
            signed += self._sign(self.store.due_refresh(now, list(self._responders), limit=PAGE), now)
        self._prune_page(now)
        return signed

    def sign_all(self, now: dt.datetime | None = None) -> PassReport:
        """Everything missing or stale, to the end (`revoca serve ocsp-signer --once`)."""
        start = time.perf_counter()
        report = PassReport()
        self._reload(now or self.clock(), walk_all=True)
        while True:
            pruned = self.pruned
            done = self.round(now)
            report.signed += done
            report.pruned += self.pruned - pruned
            if not done and not self._walk and not self._prune:
                break
        report.seconds = time.perf_counter() - start
        return report

    # -- what is due ---------------------------------------------------------------------------

    def _reload(self, now: dt.datetime, *, walk_all: bool = False) -> None:
        if not walk_all and self._index is not None and self._loaded_at is not None and (
                now - self._loaded_at < RELOAD_EVERY
                and (self._index.valid_until is None or now < self._index.valid_until)):
            return
        index = IssuerIndex.load(self.engine, now=now, ca_signed=self.ca_signed, key_files=self.key_files)
        with session_scope(self.engine, readonly=True) as session:
            crl_next = ReadStore(session).crl_next_updates()
        self._crl_next = {ca_id: _aware(value) for ca_id, value in crl_next.items()}
        self._index, self._loaded_at = index, now
        responders = {k.key_id: k.responder.serial for k in index.keys() if k.responder is not None}
        changed = [key_id for key_id, serial in responders.items() if self._responders.get(key_id, -1) != serial]
        if walk_all or self._walk_started is None or now - self._walk_started >= FULL_PASS:
            changed = list(responders)
            self._walk_started = now
            self._prune = self._may_prune
        for key_id in changed:
            self._walk[key_id] = 0
        for key_id in list(self._walk):
            if key_id not in responders:
                del self._walk[key_id]
        self._responders = responders
        if changed:
            log.info("signing ahead the OCSP answers of %d CA key(s)", len(changed))

    def _revoked(self, now: dt.datetime) -> list[ToSign]:
        found, last, top = self.store.revoked_since(self._revoked_after, now, limit=PAGE)
        # a full page: continue after it; else all seen, and the next round looks from the top less a window
        self._revoked_after = last if len(found) == PAGE else max(0, top - REVOKED_WINDOW)
        return self._with_responder(found)

    def _walk_page(self, now: dt.datetime) -> int:
        if not self._walk:
            return 0
        key_id, after = next(iter(self._walk.items()))
        found, next_after = self.store.due_certificates(key_id, self._responders.get(key_id), now, after_id=after,
                                                        limit=PAGE)
        if next_after:
            self._walk[key_id] = next_after
        else:
            del self._walk[key_id]
        return self._sign(found, now)

    def _prune_page(self, now: dt.datetime) -> None:
        """One batch of the expired certificates' answers deleted, while the hour's walk has some left."""
        if not self._prune:
            return
        try:
            gone = self.store.prune_expired(now, limit=PAGE)
        except PermissionDenied as exc:  # PostgreSQL roles granted before revoca_ocsp could delete here
            log.warning("answers of expired certificates are kept: %s", exc)
            self._prune = self._may_prune = False
            return
        self.pruned += gone
        if gone < PAGE:
            self._prune = False
        if gone:
            log.info("deleted %d stored answers of expired certificates", gone)

    def _with_responder(self, found: list[ToSign]) -> list[ToSign]:
        return [t for t in found if t.key_id in self._responders]

    # -- signing -------------------------------------------------------------------------------

    def _sign(self, found: list[ToSign], now: dt.datetime) -> int:
        if not found:
            return 0
        assert self._index is not None
        issuers = {k.key_id: k for k in self._index.keys()}
        hashes = self._index.sha1_hashes()
        this_update = now.replace(microsecond=0)
        # never signed on an unconfirmed clock
        self.time_guard.require("OCSP response", engine=self.engine, actor="ocsp")
        work = [(issuers[t.key_id], hashes[t.key_id], t) for t in found if t.key_id in issuers]
        chunks = [work[i::self.threads] for i in range(self.threads)]
        answers: list[SignedAnswer] = []
        for part in self._pool.map(lambda chunk: [self._sign_one(i, h, t, this_update) for i, h, t in chunk],
                                   chunks):
            answers.extend(part)
        self.store.upsert(answers)
        return len(answers)

    def _sign_one(self, issuer: IssuerKey, hashes: tuple[bytes, bytes], item: ToSign,
                  this_update: dt.datetime) -> SignedAnswer:
        responder = issuer.responder
        assert responder is not None
        next_update = self._next_update(issuer.ca_id, this_update)
        status = GOOD if item.revoked_at is None else Status(CertStatus.REVOKED, item.revoked_at, item.reason)
        answer = Answer(sha1_cert_id(hashes[0], hashes[1], item.serial), status, this_update, next_update)
        signed = signed_part(self._signer(responder.key_label), responder_key_hash=responder.key_hash,
                             answers=[answer], produced_at=this_update, nonce=None)
        return SignedAnswer(item.key_id, item.serial, item.ca_id, item.revocation_id, responder.serial,
                            this_update, next_update, refresh_at(this_update, next_update), signed)

    def _signer(self, label: str) -> Signer:
        signers: dict[str, Signer] | None = getattr(self._local, "signers", None)
        if signers is None:
            signers = self._local.signers = {}
            self._local.keys = self._keys()
        signer = signers.get(label)
        if signer is None:
            signer = signers[label] = self._local.keys.signer(label)
        return signer

    def _next_update(self, ca_id: int, this_update: dt.datetime) -> dt.datetime:
        """The current CRL's nextUpdate, as the responder signs on demand."""
        crl_next = self._crl_next.get(ca_id)
        if crl_next is None or crl_next <= this_update:
            return this_update + FALLBACK_VALIDITY
        return crl_next

    # -- the service ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, lease_retry: float = 1.0) -> None:
        """While holding the lease, round after round; without it, stand by.  Until `stop` is set."""
        with running(self.engine, "ocsp-signer"):
            standing_by = False
            try:
                while not stop.is_set():
                    if not self.lease.try_acquire():
                        if not standing_by:
                            log.info("another OCSP signer holds the lease; standing by")
                            standing_by = True
                        stop.wait(lease_retry)
                        continue
                    if standing_by:
                        log.warning("took over the OCSP signer lease")
                        standing_by = False
                    try:
                        if not self.round():
                            stop.wait(POLL)
                    except Exception:  # the database or the HSM service went away: again shortly
                        log.exception("OCSP signer round failed; retrying")
                        stop.wait(5 * POLL)
            finally:
                self.lease.release()
                self._pool.shutdown(wait=False)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
