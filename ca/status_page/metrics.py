"""Prometheus metrics at /metrics, read from the database at scrape time by a custom Collector.

Served without credentials (Prometheus scrapes that way), so only aggregates are exposed: CA
names and list types, never a certificate, serial or person.  Which verifiers ask how often is
the verifiers' business: an anonymous scrape sees one "registered" series in their place, and
per-verifier series only with an officer's credentials (Prometheus `basic_auth`), unless the
service was started with public verifier names (`revoca serve status --public-verifier-names`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ca import health
from ca.enums import RequestStatus
from ca.errors import PermissionDenied, RevocaError
from ca.status_page import tallies
from ca.status_page.auth import REALM, Unauthenticated
from ca.status_page.login import optional_officer
from ca.storage.engine import Engine, session_scope
from ca.storage.publications import queue_states
from ca.storage.reporting import ReportingReads

log = logging.getLogger("revoca.status")
bp = Blueprint("metrics", __name__)

HSMStatus = Callable[[], dict[str, Any]]
HSM_UP = "1 when the HSM service answered"
HeldLists = Callable[[Engine], list[health.HeldList]]


class RevocaCollector(Collector):
    def __init__(self, engine: Engine, *, clock: Callable[[], dt.datetime],
                 hsm_status: HSMStatus | None = None, ldap_port: int | None = None,
                 held_lists: HeldLists | None = None, ocsp_ca_signed: bool = False) -> None:
        """`ldap_port`: the LDAP repository's, for revoca_component_up (None: no component series);
        `held_lists`: reads each CA's lists back from the LDAP repository (None: no such series);
        `ocsp_ca_signed`: [ocsp] ca_signed (answers signed ahead with the CA keys count as served)."""
        self.held_lists = held_lists
        self.ocsp_ca_signed = ocsp_ca_signed
        self.engine = engine
        self.ldap_port = ldap_port
        self.clock = clock
        self.hsm_status = hsm_status
        self.ocsp = tallies.Tally("ocsp_queries", tallies.ocsp_responses)
        self.ocsp_answers = tallies.Tally("ocsp_queries", tallies.ocsp_certificate_answers)
        self.signing = tallies.Tally("audit_events", tallies.signing_operations)
        self.requests = tallies.Tally("audit_events", tallies.request_steps)

    def collect(self, *, verifier_names: bool = True) -> Iterator[Metric]:
        now = self.clock()
        yield from self._lists(now)
        yield from self._deltas(now)
        yield from self._presigned(now)
        yield from self._responders(now)
        yield from self._backup(now)
        yield from self._publication(now)
        with session_scope(self.engine, readonly=True) as session:
            responses = self.ocsp.update(session)
            yield _counter("revoca_ocsp_responses", "OCSP responses by response status and verifier "
                           "(\"none\": no registered verifier identified; \"registered\": all verifiers, "
                           "when names are not shown)", ["status", "verifier"],
                           responses if verifier_names else _without_names(responses))
            yield _counter("revoca_ocsp_certificate_answers", "Certificate statuses answered by OCSP "
                           "(one per CertID asked)", ["status"], self.ocsp_answers.update(session))
            yield _counter("revoca_signing_operations", "Signatures by CA keys (CRL/ARL issues, certificates), "
                           "from the audit log", ["operation", "result"], self.signing.update(session))
            yield _counter("revoca_ra_requests", "Revocation request steps by outcome (filed, refused, reviewed, "
                           "approved, rejected), from the audit log", ["outcome", "result"],
                           self.requests.update(session))
            waiting = ReportingReads(session).waiting_counts()
        g = GaugeMetricFamily("revoca_revocation_requests_waiting", "Dual-control revocation requests waiting "
                              "for a person", labels=["step"])
        g.add_metric(["review"], waiting.get(RequestStatus.PENDING_REVIEW, 0))
        g.add_metric(["approval"], waiting.get(RequestStatus.PENDING_APPROVAL, 0))
        yield g
        yield from self._hsm()
        yield from self._components()
        yield from self._held(now)

    def _components(self) -> Iterator[Metric]:
        if self.hsm_status is None or self.ldap_port is None:
            return
        up = GaugeMetricFamily("revoca_component_up", "1 when the component answers (database, hsm, ldap) or "
                               "holds its lease (scheduler, publisher; ocsp-signer where answers are signed ahead); "
                               "see ca.health", labels=["component"])
        for component in health.check_all(self.engine, self.hsm_status, self.ldap_port):
            up.add_metric([component.name], 1 if component.up else 0)
        yield up

    def _held(self, now: dt.datetime) -> Iterator[Metric]:
        """The lists as relying parties get them from slapd (issue 15: the archive can look fine while
        the directory serves an expiring or older list); absent series when slapd cannot be read."""
        if self.held_lists is None:
            return
        read = GaugeMetricFamily("revoca_ldap_read_back_up", "1 when the lists could be read back from the LDAP "
                                 "repository at this scrape")
        left = GaugeMetricFamily("revoca_ldap_list_next_update_seconds", "Seconds until the nextUpdate of each CA's "
                                 "CRL or ARL as read back from the LDAP repository (negative: expired)",
                                 labels=["ca", "list"])
        number = GaugeMetricFamily("revoca_ldap_list_number", "CRL number of each CA's CRL or ARL as read back "
                                   "from the LDAP repository (compare with revoca_crl_number)", labels=["ca", "list"])
        try:
            held = self.held_lists(self.engine)
        except (RevocaError, OSError) as exc:  # slapd away: say so in a series, not with a failed scrape
            log.debug("LDAP read-back for /metrics: %s", exc)
            read.add_metric([], 0)
            yield read
            return
        read.add_metric([], 1)
        for h in held:
            if h.next_update is not None and h.number is not None:
                left.add_metric([h.ca_name, h.list_type.value], (h.next_update - now).total_seconds())
                number.add_metric([h.ca_name, h.list_type.value], h.number)
        yield from (read, left, number)

    def _lists(self, now: dt.datetime) -> Iterator[Metric]:
        left = GaugeMetricFamily("revoca_crl_next_update_seconds", "Seconds until the nextUpdate of each CA's "
                                 "newest CRL or ARL (negative: expired)", labels=["ca", "list"])
        number = GaugeMetricFamily("revoca_crl_number", "CRL number of each CA's newest CRL or ARL",
                                   labels=["ca", "list"])
        with session_scope(self.engine, readonly=True) as session:
            statuses = ReportingReads(session).list_statuses()
        for s in statuses:
            if s.next_update is None or s.number is None:
                continue  # never issued: absent, which an alert on absent() catches
            left.add_metric([s.ca_name, s.list_type.value], (s.next_update - now).total_seconds())
            number.add_metric([s.ca_name, s.list_type.value], s.number)
        yield left
        yield number

    def _deltas(self, now: dt.datetime) -> Iterator[Metric]:
        """Each CA's newest delta CRL (issue 16), apart from revoca_crl_next_update_seconds: a delta
        is valid hours, and an alert written for complete lists' days would always fire on it."""
        left = GaugeMetricFamily("revoca_delta_crl_next_update_seconds", "Seconds until the nextUpdate of each "
                                 "CA's newest delta CRL (negative: expired; `revoca status` warns below the share "
                                 "of its validity that crl.warn_hours is of a CRL's)", labels=["ca"])
        number = GaugeMetricFamily("revoca_delta_crl_number", "CRL number of each CA's newest delta CRL",
                                   labels=["ca"])
        for d in health.newest_deltas(self.engine):
            left.add_metric([d.ca_name], (d.next_update - now).total_seconds())
            number.add_metric([d.ca_name], d.number)
        yield left
        yield number

    def _presigned(self, now: dt.datetime) -> Iterator[Metric]:
        """How fresh the answers signed ahead are (ca.health.Presigned); absent where none are stored."""
        if not health.signs_ahead(self.engine):
            return
        oldest = health.presigned(self.engine, now, ca_signed=self.ocsp_ca_signed).oldest
        served = GaugeMetricFamily("revoca_ocsp_presigned_served", "1 when a responder would serve some stored "
                                   "pre-signed answer now (0: responders sign every answer)",
                                   value=0 if oldest is None else 1)
        yield served
        if oldest is None:
            return
        yield GaugeMetricFamily("revoca_ocsp_presigned_oldest_age_seconds", "Age of the stored answer due for "
                                "refresh first, of those a responder would serve now",
                                value=oldest.age(now).total_seconds())
        yield GaugeMetricFamily("revoca_ocsp_presigned_refresh_target_seconds", "The age at which the OCSP signer "
                                "means to sign that answer again (alert when the age passes it by an hour)",
                                value=oldest.target.total_seconds())

    def _responders(self, now: dt.datetime) -> Iterator[Metric]:
        left = GaugeMetricFamily("revoca_ocsp_responder_not_after_seconds", "Seconds until the notAfter of the "
                                 "last valid delegated OCSP responder certificate of each CA key (0: none is valid, "
                                 "and OCSP answers tryLater for that key unless it signs with the CA keys)",
                                 labels=["ca", "generation"])
        for c in health.responder_coverage(self.engine, now):
            left.add_metric([c.ca_name, str(c.generation)],
                            (c.not_after - now).total_seconds() if c.not_after is not None else 0.0)
        yield left

    def _backup(self, now: dt.datetime) -> Iterator[Metric]:
        age = GaugeMetricFamily("revoca_backup_verified_age_seconds", "Seconds since the newest backup that "
                                "verified by a scratch restore was made (absent: none yet)")
        at = health.newest_verified_backup(self.engine)
        if at is not None:
            age.add_metric([], (now - at).total_seconds())
        yield age

    def _publication(self, now: dt.datetime) -> Iterator[Metric]:
        length = GaugeMetricFamily("revoca_publication_queue_length", "Publications waiting to be written to "
                                   "the LDAP repository", labels=["ca", "item"])
        age = GaugeMetricFamily("revoca_publication_oldest_pending_seconds", "Age of the oldest waiting "
                                "publication (0 when nothing waits)", labels=["ca", "item"])
        for q in queue_states(self.engine):
            length.add_metric([q.ca_name, q.item.value], q.pending)
            age.add_metric([q.ca_name, q.item.value],
                           max((now - q.oldest_pending).total_seconds(), 0.0) if q.oldest_pending else 0.0)
        yield length
        yield age

    def _hsm(self) -> Iterator[Metric]:
        if self.hsm_status is None:
            return
        try:
            status = self.hsm_status()
        except RevocaError as exc:  # not running: say so in a series, not with a failed scrape
            log.debug("HSM status for /metrics: %s", exc)
            yield GaugeMetricFamily("revoca_hsm_up", HSM_UP, value=0)
            return
        yield GaugeMetricFamily("revoca_hsm_up", HSM_UP, value=1)
        yield GaugeMetricFamily("revoca_hsm_activated", "1 when the token is activated (M key manager shares "
                                "presented)", value=1 if status.get("activated") else 0)
        yield GaugeMetricFamily("revoca_hsm_signer_processes", "Signing processes the HSM service is configured "
                                "for ([hsm] signer_processes; 1: it signs in its own session)",
                                value=int(status.get("signer_processes", 1)))
        yield GaugeMetricFamily("revoca_hsm_signer_processes_up", "Signing processes running now (0 while not "
                                "activated or with one configured)", value=int(status.get("signers_up", 0)))


def _counter(name: str, doc: str, labels: list[str], totals: dict[tuple[str, ...], int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, n in sorted(totals.items()):
        family.add_metric(list(values), n)
    return family


def _without_names(totals: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    merged: dict[tuple[str, ...], int] = {}
    for (status, verifier), n in totals.items():
        key = (status, verifier if verifier == "none" else "registered")
        merged[key] = merged.get(key, 0) + n
    return merged


class _Anonymous(Collector):
    """The collector's view for a scrape without credentials: no verifier names."""

    def __init__(self, collector: RevocaCollector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        return self.collector.collect(verifier_names=False)


def make_registries(collector: RevocaCollector) -> tuple[CollectorRegistry, CollectorRegistry]:
    """(with verifier names, without): registries of our own, not the global one (each app, e.g.
    each test, has its own), over one collector so that its tallies are counted once."""
    named = CollectorRegistry(auto_describe=False)
    named.register(collector)
    anonymous = CollectorRegistry(auto_describe=False)
    anonymous.register(_Anonymous(collector))
    return named, anonymous


@bp.get("/metrics")
def metrics() -> Response:
    ext = current_app.extensions["revoca_status"]
    try:
        named = ext["public_verifier_names"] or optional_officer() is not None
    except Unauthenticated as exc:  # credentials sent and wrong: say so rather than answer as if none came
        return Response(f"{exc}\n", status=401, content_type="text/plain; charset=utf-8",
                        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
    except PermissionDenied as exc:  # a role the page is not for, or an expired password: 403, never a 500
        return Response(f"{exc}\n", status=403, content_type="text/plain; charset=utf-8")
    registry: CollectorRegistry = ext["registry"] if named else ext["anonymous_registry"]
    response = Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
    if request.headers.get("Authorization"):
        response.headers["Cache-Control"] = "no-store"
    return response
