"""The responder: request bytes in, response bytes out, for registered verifiers only.

Per request: parse, authorize (ocsp.authorization: a signed request whose signer certificate is a registered,
unrevoked verifier's and whose signature verifies, or such a verifier's TLS client
certificate), find the issuer key of every CertID, read each status from the database,
then answer.  A request without a nonce for one certificate is answered with a pre-signed
response when one was signed for the same status and is still fresh; anything else is
signed on demand -- unless the background signer (ocsp.presigner) stored one for the status
read now and the current responder certificate: then it is served from the database, shared
by every responder process and machine, without a signature (issue 16).  What is signed on
demand for one CertID without a nonce (unknown serials above all) is kept in this worker and in
the table the server's workers share (ocsp.shared_answers), keyed by the status read now.  Everyone else gets
`unauthorized`; whatever cannot be parsed gets `malformedRequest`; nothing raises out of
`respond`.  Nothing is signed while the clock is not confirmed by NTP (ca.trusted_time): such a
query gets `tryLater`.

Nor for a CA key without a valid delegated responder certificate (expired, revoked, never
issued) unless the responder signs with the CA keys ([ocsp] ca_signed, RFC 6960 2.6): its
queries get `tryLater`.  Of RFC 6960 2.3's statuses, tryLater says what is true -- the service
exists and will answer once the officers renew the certificate (`revoca ocsp renew`) -- where
internalError claims an inconsistent state that another responder might not share (they all
read the same database), and unauthorized would tell a registered verifier it is not one.  It
is logged once when it starts and once when it ends, and `revoca status` reports it.  The index
is read again when its first responder certificate ends, so an expired one never signs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable

from ca import trusted_time
from ca.errors import ServiceUnavailable, UntrustedTime
from ca.hsm.signer import KeyStore, Signer
from ca.http.rate_limit import RateLimiter
from ca.storage.engine import Engine, session_scope
from ca.storage.ocsp_lookups import Lookups
from ca.storage.store import ReadStore
from ocsp.authorization import VerifierAuthorizer
from ocsp.bounded_cache import BoundedCache
from ocsp.issuers import IssuerIndex, IssuerKey, ResponderKey
from ocsp.presigned import usable
from ocsp.request import MalformedRequest, ParsedRequest
from ocsp.request_fast import parse_request
from ocsp.response import Answer, error_response, signed_part, with_certificate
from ocsp.shared_answers import SharedAnswers, key_of
from ocsp.status import Status, StatusSource, StoredStatus

log = logging.getLogger("revoca.ocsp")

Clock = Callable[[], dt.datetime]

RELOAD_EVERY = dt.timedelta(seconds=60)  # new CAs, rollovers, new responder certificates, new CRLs
PRESIGNED_REFRESH = dt.timedelta(hours=1)  # a pre-signed answer is re-signed at least this often
FALLBACK_VALIDITY = dt.timedelta(hours=24)  # nextUpdate when the CA has no current CRL
# What a worker keeps from requests is bounded in bytes, whatever arrives (issue 12): at most
# REQUESTS_MAX_BYTES + PRESIGNED_MAX_BYTES, oldest entries dropped first.
PRESIGNED_MAX = 1_000_000  # entries (about 1 KB each)
PRESIGNED_MAX_BYTES = 256 << 20
# Requests without a nonce that a verifier in effect sent, parsed and with their signature
# checked, by their bytes: a verifier asking again sends the same bytes.  Nothing from an
# unauthorized caller is kept.  What changes (the verifier's standing, the status) is still
# read at every query.
REQUESTS_MAX = 100_000
REQUESTS_MAX_BYTES = 32 << 20
ENTRY_OVERHEAD = 512  # bytes a cached entry costs beyond its DER (objects, dict slot)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """The response and what the query history records of it."""

    body: bytes
    response_status: str  # successful, malformed_request, unauthorized, internal_error, try_later
    channel: str = "none"  # signed | tls | none
    verifier_id: int | None = None
    ca_id: int | None = None
    nonce: bool = False
    answers: str = ""  # "<serial hex>=<status>,..."
    presigned: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class _Presigned:
    status: Status
    body: bytes
    refresh_at: dt.datetime


class Responder:
    def __init__(self, engine: Engine, keys: KeyStore, *, time_guard: trusted_time.ClockGuard, clock: Clock = utc_now,
                 ca_signed: bool = False, key_files: bool = False,
                 verifier_limit: RateLimiter | None = None, requests_max_bytes: int = REQUESTS_MAX_BYTES,
                 presigned_max_bytes: int = PRESIGNED_MAX_BYTES, audit_engine: Engine | None = None,
                 shared: SharedAnswers | None = None) -> None:
        """`keys` signs for the labels the index names (ocsp.keys.ResponderKeys when `key_files`);
        `time_guard` (the process's, ca.trusted_time) checks the clock before each signature;
        `verifier_limit` (per verifier id) turns a verifier beyond its rate away with tryLater;
        `audit_engine` is where refusals are audited when `engine` is a read-only replica
        ([database_read_url]); by default `engine`; `shared`: the answers signed on demand that
        this server's workers share (ocsp.shared_answers), None to keep them in this worker only."""
        self.engine = engine
        self.audit_engine = audit_engine or engine
        self.time_guard = time_guard
        self.keys = keys
        self.clock = clock
        self.ca_signed = ca_signed
        self.key_files = key_files
        self.lookups = Lookups(engine)
        self.stored_status = StoredStatus(self.lookups)
        self.status_source: StatusSource = self.stored_status
        self.authorizer = VerifierAuthorizer(self.lookups)
        self._lock = threading.Lock()
        self._signers: dict[str, Signer] = {}
        self.verifier_limit = verifier_limit or RateLimiter(0)
        self.shared = shared
        self._presigned: BoundedCache[_Presigned] = BoundedCache(max_entries=PRESIGNED_MAX,
                                                                 max_bytes=presigned_max_bytes)
        self._requests: BoundedCache[tuple[ParsedRequest, dict[bytes, bool]]] = BoundedCache(
            max_entries=REQUESTS_MAX, max_bytes=requests_max_bytes)
        self._index: IssuerIndex | None = None
        self._next_updates: dict[int, dt.datetime] = {}
        self._loaded_at: dt.datetime | None = None
        self._signing: dict[int, int | None] = {}  # key id -> serial of the responder certificate signing for it
        if ca_signed:
            log.warning("OCSP answers are signed with the CA keys themselves ([ocsp] ca_signed or --ca-signed), "
                        "not with delegated responder certificates")

    # -- the one entry point -------------------------------------------------------------------

    def respond(self, der: bytes, *, tls_client_cert: bytes | None = None) -> Outcome:
        known = self._requests.get(der)
        verified: dict[bytes, bool]
        if known is None:
            try:
                request = parse_request(der, known_certificates=self.authorizer.known_certificates)
            except MalformedRequest as exc:
                log.debug("malformed OCSP request: %s", exc)
                return Outcome(error_response("malformed_request"), "malformed_request")
            verified = {}
        else:
            request, verified = known
        try:
            outcome = self._respond(request, verified, tls_client_cert)
            if known is None and request.nonce is None and outcome.verifier_id is not None:
                # a verifier's request: the same bytes again are parsed, and signatures checked, once
                self._requests.put(der, (request, verified), 2 * len(der) + ENTRY_OVERHEAD)
            return outcome
        except UntrustedTime as exc:
            # RFC 6960 2.3 tryLater: the service exists but cannot answer for now; the clock,
            # not the responder's state, is at fault, and an answer signed now could lie about time.
            log.debug("OCSP answer not signed: %s", exc)  # logged and audited once per check by the guard
            return Outcome(error_response("try_later"), "try_later", nonce=request.nonce is not None)
        except ServiceUnavailable as exc:  # the database (or the HSM service) is busy or away: ask again
            log.warning("OCSP answer not possible now: %s", exc)
            return Outcome(error_response("try_later"), "try_later", nonce=request.nonce is not None)
        except Exception:  # the token went away, the database did: the client may retry
            log.exception("OCSP request failed")
            return Outcome(error_response("internal_error"), "internal_error", nonce=request.nonce is not None)

    def _respond(self, request: ParsedRequest, verified: dict[bytes, bool], tls_client_cert: bytes | None) -> Outcome:
        now = self.clock()
        nonce = request.nonce is not None
        who = self.authorizer.authorize(request, verified, tls_client_cert, now)
        if who is None:
            channel = "signed" if request.signed else ("tls" if tls_client_cert else "none")
            return Outcome(error_response("unauthorized"), "unauthorized", channel, nonce=nonce)
        verifier_id, channel = who
        if self.verifier_limit.retry_after(verifier_id):
            return Outcome(error_response("try_later"), "try_later", channel, verifier_id, nonce=nonce)
        index = self._current_index(now)
        issuers = [index.find(c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash) for c in request.cert_ids]
        first = issuers[0]
        # Not ours, or several CAs in one request: one signature cannot speak for them all.
        if first is None or any(i is None or i.key_id != first.key_id for i in issuers):
            return Outcome(error_response("unauthorized"), "unauthorized", channel, verifier_id, nonce=nonce)
        responder = first.responder
        if responder is None or (responder.not_after is not None and now >= responder.not_after):
            # ours, but no valid responder certificate: nothing signs (never the CA key in its place)
            return Outcome(error_response("try_later"), "try_later", channel, verifier_id, first.ca_id, nonce=nonce)
        single = not nonce and len(request.cert_ids) == 1
        if single:
            status, stored = self.stored_status.with_presigned(first.ca_id, first.key_id, request.cert_ids[0].serial)
            if stored is not None and usable(stored, status, request.cert_ids[0], responder, now):
                # signed ahead by ocsp.presigner, shared by every responder: no signature here
                return Outcome(with_certificate(stored.signed, responder.certificate_der), "successful", channel,
                               verifier_id, first.ca_id, False, f"{request.cert_ids[0].serial:x}={status.status.value}",
                               True)
            statuses = [status]
        else:
            statuses = [self.status_source.status(first.ca_id, first.key_id, c.serial) for c in request.cert_ids]
        answers = ",".join(f"{c.serial:x}={s.status.value}" for c, s in zip(request.cert_ids, statuses, strict=True))
        shared_key = None
        if single:
            key = request.cert_ids[0].der
            cached = self._presigned.get(key)
            if cached is not None and cached.status == statuses[0] and now < cached.refresh_at:
                return Outcome(cached.body, "successful", channel, verifier_id, first.ca_id, False, answers, True)
            if self.shared is not None:  # signed by another worker of this server (unknown serials above all)
                shared_key = _shared_key(responder, key, statuses[0])
                found = self.shared.get(shared_key, int(now.timestamp()))
                if found is not None:
                    return Outcome(with_certificate(found, responder.certificate_der), "successful", channel,
                                   verifier_id, first.ca_id, False, answers, True)
        signed, next_update = self._sign(first, request, statuses, now)
        body = with_certificate(signed, responder.certificate_der)
        if single:
            refresh = min(now + PRESIGNED_REFRESH, now + (next_update - now) / 2)
            self._presigned.put(request.cert_ids[0].der, _Presigned(statuses[0], body, refresh),
                                len(body) + len(request.cert_ids[0].der) + ENTRY_OVERHEAD)
            if shared_key is not None and self.shared is not None:
                self.shared.put(shared_key, int(refresh.timestamp()), signed)
        return Outcome(body, "successful", channel, verifier_id, first.ca_id, nonce, answers)

    def warm_up(self) -> None:
        """Do before the first query what the first query would: read the index and open the signer
        of every current responder key (a key file decrypted, the HSM service reached).  Measured
        (bench/ocsp.py): without it, a worker's first on-demand signature stalled every request
        queued behind it for ~55 ms.  Best effort: what fails here is tried again by a query."""
        try:
            self.reload()
            assert self._index is not None
            for key in self._index.keys():
                if key.responder is not None:
                    self._signer(key.responder.key_label)
        except Exception as exc:  # the HSM service or the database not there yet: the queries will say so
            log.info("OCSP worker warm-up not finished (%s); the first queries do the rest", exc)

    def cache_sizes(self) -> dict[str, tuple[int, int]]:
        """(entries, bytes) of what this worker keeps from requests, by cache."""
        return {"requests": (len(self._requests), self._requests.size_bytes),
                "presigned": (len(self._presigned), self._presigned.size_bytes)}

    # -- parts ---------------------------------------------------------------------------------

    def _current_index(self, now: dt.datetime) -> IssuerIndex:
        if self._stale(now):
            with self._lock:
                if self._stale(now):
                    self.reload(now)
        assert self._index is not None
        return self._index

    def _stale(self, now: dt.datetime) -> bool:
        index = self._index
        return (index is None or self._loaded_at is None or now - self._loaded_at >= RELOAD_EVERY
                or (index.valid_until is not None and now >= index.valid_until))

    def reload(self, now: dt.datetime | None = None) -> None:
        """Read the issuer keys, responder certificates and CRL schedule again."""
        now = now or self.clock()
        index = IssuerIndex.load(self.engine, now=now, ca_signed=self.ca_signed, key_files=self.key_files)
        with session_scope(self.engine, readonly=True) as session:
            next_updates = ReadStore(session).crl_next_updates()
        self._next_updates = {ca_id: _aware(next_update) for ca_id, next_update in next_updates.items()}
        self._report_responders(index)
        self._index, self._loaded_at = index, now
        self._presigned.clear()  # responder certificates may have changed

    def _report_responders(self, index: IssuerIndex) -> None:
        """One log line when a CA key loses its responder, gets one back, or changes to a new one."""
        if self.ca_signed:
            return
        signing = {k.key_id: (k, k.responder.serial if k.responder else None) for k in index.keys()}
        for key_id, (key, serial) in signing.items():
            before = self._signing.get(key_id, 0)  # 0: never seen (serials are positive)
            if serial == before:
                continue
            if serial is None:
                log.error("OCSP for %s: no valid delegated responder certificate (expired, revoked or never "
                          "issued); its queries are answered tryLater, never signed with the CA key. Issue one "
                          "with `revoca ocsp renew --ca %s --key-generation %d`, or set [ocsp] ca_signed to sign "
                          "with the CA key", key.label, key.ca_name, key.generation)
            elif before != 0 and key.responder is not None and key.responder.not_after is not None:
                log.info("OCSP for %s now signs with responder certificate %x (valid until %s)", key.label, serial,
                         f"{key.responder.not_after:%Y-%m-%d %H:%MZ}")
        self._signing = {key_id: serial for key_id, (_key, serial) in signing.items()}

    def _next_update(self, ca_id: int, this_update: dt.datetime) -> dt.datetime:
        """The current CRL's nextUpdate: a client caching the answer is as current as with the CRL."""
        crl_next = self._next_updates.get(ca_id)
        if crl_next is None or crl_next <= this_update:
            return this_update + FALLBACK_VALIDITY
        return crl_next

    def _signer(self, label: str) -> Signer:
        signer = self._signers.get(label)
        if signer is None:
            signer = self._signers[label] = self.keys.signer(label)
        return signer

    def _sign(self, issuer: IssuerKey, request: ParsedRequest, statuses: list[Status],
              now: dt.datetime) -> tuple[bytes, dt.datetime]:
        """The signed part (ocsp.response.signed_part) of the answer, and its nextUpdate."""
        responder = issuer.responder
        assert responder is not None
        this_update = now.replace(microsecond=0)
        next_update = self._next_update(issuer.ca_id, this_update)
        answers = [Answer(c.der, s, this_update, next_update)
                   for c, s in zip(request.cert_ids, statuses, strict=True)]
        # pre-signed and nonce answers alike; a good check is reused for [time] recheck_s
        self.time_guard.require("OCSP response", engine=self.audit_engine, actor="ocsp")
        signed = signed_part(self._signer(responder.key_label), responder_key_hash=responder.key_hash,
                             answers=answers, produced_at=this_update, nonce=request.nonce)
        return signed, next_update


def _shared_key(responder: ResponderKey, cert_id_der: bytes, status: Status) -> bytes:
    """What a shared answer depends on: who signs, the CertID as sent, the status read now."""
    revoked_at = "" if status.revoked_at is None else status.revoked_at.isoformat()
    return key_of(responder.key_label.encode(), responder.key_hash, str(responder.serial).encode(), cert_id_der,
                  f"{status.status.value}|{revoked_at}|{status.reason}".encode())


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
