"""Prometheus metrics at /metrics of `revoca serve status`, fetched over HTTP and parsed with
prometheus_client's own parser, checked against the database (counted here from the rows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from ca.config import Settings
from ca.crl.issue import issue_list
from ca.enums import ListType, PublicationState, RequestStatus
from ca.hsm.client import HSMClient
from ca.status_page import tallies
from ca.storage.engine import session_scope
from ca.storage.models import (
    AuditEvent,
    Certificate,
    CertificateAuthority,
    OCSPQuery,
    Publication,
    RevocationRequest,
    Verifier,
)
from ca.storage.store import ReadStore
from ocsp.history import QueryHistory
from ocsp.responder import Outcome

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, serving_installation
from support.ra_fixtures import PASSWORD
from support.status_site import PopulatedSite, StatusServer, running_site

Labels = tuple[tuple[str, str], ...]


@pytest.fixture
def site(settings: Settings, engine: sa.Engine, hsm_socket: Path, tmp_path: Path) -> Iterator[StatusServer]:
    """A site of the test's own, for a test that changes what the metrics count."""
    with running_site(settings, engine, hsm_socket, tmp_path) as server:
        yield server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_site(request: pytest.FixtureRequest, ceremony_templates: CeremonyTemplates,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopulatedSite]:
    """One site per database kind for the tests that only scrape it."""
    root = tmp_path_factory.mktemp(f"metrics-{request.param}")
    with serving_installation(ceremony_templates, request.param, root) as made:
        assert made.socket is not None
        with running_site(made.settings, made.engine, made.socket, root) as server:
            yield PopulatedSite(server, made.engine)


def scrape(server: StatusServer, auth: tuple[str, str] | None = None) -> dict[str, dict[Labels, float]]:
    """Every sample by name and labels, from /metrics fetched without credentials (or with `auth`)."""
    http = requests.Session()
    http.trust_env = False
    answer = http.get(server.url("/metrics"), timeout=30, auth=auth)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    out: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    out["_text"] = {(("text", answer.text),): 0.0}
    return out


def ocsp_from_rows(engine: sa.Engine) -> tuple[dict[Labels, float], dict[Labels, float]]:
    """(responses by status and verifier, certificate answers by status), counted from the history rows."""
    with session_scope(engine) as s:
        names = dict(s.execute(sa.select(Verifier.id, Verifier.name)).all())
        rows = s.execute(sa.select(OCSPQuery.response_status, OCSPQuery.verifier_id, OCSPQuery.answers)).all()
    responses: dict[Labels, float] = {}
    answers: dict[Labels, float] = {(("status", s),): 0 for s in ("good", "revoked", "unknown")}
    for status, verifier_id, text in rows:
        key = (("status", status), ("verifier", names[verifier_id] if verifier_id else "none"))
        responses[key] = responses.get(key, 0) + 1
        for item in filter(None, text.split(",")):
            a = (("status", item.split("=")[1]),)
            answers[a] = answers.get(a, 0) + 1
    return responses, answers


def audit_from_rows(engine: sa.Engine, events: dict[str, str], label: str) -> dict[Labels, float]:
    with session_scope(engine) as s:
        rows = s.execute(sa.select(AuditEvent.event_type, AuditEvent.result)).all()
    out: dict[Labels, float] = {}
    for event_type, result in rows:
        if event_type in events:
            key = ((label, events[event_type]), ("result", result))
            out[key] = out.get(key, 0) + 1
    return out


def test_metrics_match_the_database(shared_site: PopulatedSite) -> None:
    site, engine = shared_site.server, shared_site.engine
    before = dt.datetime.now(dt.UTC)
    got = scrape(site)
    after = dt.datetime.now(dt.UTC)

    with session_scope(engine) as s:
        store = ReadStore(s)
        names = {ca.id: ca.name for ca in store.cas()}
        latest = {(names[ca_id], t.value): row for (ca_id, t), row in store.latest_issued_crls().items()}
        pending = s.execute(sa.select(Publication.ca_id, Publication.item, Publication.enqueued_at)
                            .where(Publication.state == PublicationState.PENDING)).all()
        all_ids = s.scalars(sa.select(CertificateAuthority.id)).all()
        waiting = s.scalars(sa.select(RevocationRequest.status)).all()
        serials = {format(c, "x") for c in s.scalars(sa.select(Certificate.serial)).all()}

    assert len(latest) == 8
    for (ca, list_type), row in latest.items():
        key = (("ca", ca), ("list", list_type))
        left = got["revoca_crl_next_update_seconds"][key]
        assert (row.next_update - after).total_seconds() <= left <= (row.next_update - before).total_seconds()
        assert got["revoca_crl_number"][key] == row.number

    queue = got["revoca_publication_queue_length"]
    oldest = got["revoca_publication_oldest_pending_seconds"]
    assert sum(queue.values()) == len(pending) > 0
    for ca_id in all_ids:
        for item in ("crl", "arl", "certificates"):
            rows = [at for c, i, at in pending if c == ca_id and i.value == item]
            key = (("ca", names[ca_id]), ("item", item))
            assert queue[key] == len(rows)
            if rows:
                assert (before - min(rows)).total_seconds() <= oldest[key] <= (after - min(rows)).total_seconds()

    responses, answers = ocsp_from_rows(engine)
    # verifier names only for an officer (issue 12): anonymously, all verifiers are one series
    assert scrape(site, auth=("ren", PASSWORD))["revoca_ocsp_responses_total"] == responses
    assert responses[(("status", "successful"), ("verifier", "demo-verifier"))] == 7
    assert got["revoca_ocsp_responses_total"] == without_names(responses)
    assert got["revoca_ocsp_responses_total"][(("status", "successful"), ("verifier", "registered"))] == 7
    assert got["revoca_ocsp_certificate_answers_total"] == answers
    assert got["revoca_signing_operations_total"] == audit_from_rows(engine, tallies.SIGNING_EVENTS, "operation")
    assert got["revoca_signing_operations_total"][(("operation", "crl"), ("result", "success"))] == 9
    assert got["revoca_ra_requests_total"] == audit_from_rows(engine, tallies.REQUEST_EVENTS, "outcome")
    assert got["revoca_revocation_requests_waiting"] == {
        (("step", "review"),): waiting.count(RequestStatus.PENDING_REVIEW),
        (("step", "approval"),): waiting.count(RequestStatus.PENDING_APPROVAL)}
    assert got["revoca_hsm_up"][()] == 1 and got["revoca_hsm_activated"][()] == 1
    # issue 15: every component up or down, LDAP included (no slapd, scheduler or publisher runs here)
    assert got["revoca_component_up"] == {(("component", "database"),): 1, (("component", "hsm"),): 1,
                                          (("component", "ldap"),): 0, (("component", "scheduler"),): 0,
                                          (("component", "publisher"),): 0}

    # served without credentials, so it must name no certificate and no verifier
    text = next(iter(got["_text"]))[0][1]
    assert not [s for s in serials if s in text]
    assert "demo-verifier" not in text


def without_names(responses: dict[Labels, float]) -> dict[Labels, float]:
    out: dict[Labels, float] = {}
    for (status, (_, verifier)), n in responses.items():
        key = (status, ("verifier", verifier if verifier == "none" else "registered"))
        out[key] = out.get(key, 0) + n
    return out


def test_wrong_credentials_on_metrics_are_refused_not_served_anonymously(shared_site: PopulatedSite) -> None:
    http = requests.Session()
    http.trust_env = False
    answer = http.get(shared_site.server.url("/metrics"), timeout=30, auth=("ren", "not the password"))
    assert answer.status_code == 401 and "WWW-Authenticate" in answer.headers
    assert "revoca_" not in answer.text


def test_counters_grow_with_new_ocsp_history_and_a_new_crl(site: StatusServer, engine: sa.Engine,
                                                            hsm_socket: Path, settings: Settings) -> None:
    first = scrape(site)
    history = QueryHistory(engine, thread=False)
    for _ in range(5):
        history.record(Outcome(b"", "successful", "signed", None, None, False, "1=good,2=unknown"))
    history.record(Outcome(b"", "unauthorized"))
    history.close()
    issue_list(engine, HSMClient(hsm_socket), settings.data_dir, "osaka", ListType.CRL,
               now=dt.datetime.now(dt.UTC), time_guard=NO_NTP)

    second = scrape(site)
    responses, answers = ocsp_from_rows(engine)
    assert second["revoca_ocsp_responses_total"] == without_names(responses)
    assert second["revoca_ocsp_certificate_answers_total"] == answers
    anonymous_ok = (("status", "successful"), ("verifier", "none"))
    assert first["revoca_ocsp_responses_total"].get(anonymous_ok, 0) == 0 and responses[anonymous_ok] == 5
    assert answers[(("status", "unknown"),)] == first["revoca_ocsp_certificate_answers_total"].get(
        (("status", "unknown"),), 0) + 5
    crl_ok = (("operation", "crl"), ("result", "success"))
    assert second["revoca_signing_operations_total"][crl_ok] == first["revoca_signing_operations_total"][crl_ok] + 1
    osaka = (("ca", "osaka"), ("list", "crl"))
    assert second["revoca_crl_number"][osaka] == first["revoca_crl_number"][osaka] + 1
    assert scrape(site)["revoca_ocsp_responses_total"] == without_names(responses)  # counted once, however often
    assert scrape(site, auth=("ren", PASSWORD))["revoca_ocsp_responses_total"] == responses  # scraped, either way


# --- the incremental count itself ----------------------------------------------------------------------


def _history_rows(engine: sa.Engine, ids: list[int]) -> None:
    at = dt.datetime.now(dt.UTC)
    with session_scope(engine) as s:
        s.execute(sa.insert(OCSPQuery), [{"id": i, "at": at, "verifier_id": None, "ca_id": None, "channel": "none",
                                          "nonce": False, "response_status": "unauthorized", "answers": ""}
                                         for i in ids])


def test_a_row_committed_after_a_higher_id_is_counted_at_the_next_scrape(engine: sa.Engine) -> None:
    """What two OCSP workers committing out of id order on PostgreSQL look like: id 11 appears after 12."""
    tally = tallies.Tally(OCSPQuery, tallies.ocsp_responses)
    key = ("unauthorized", "none")

    def update() -> int:
        with session_scope(engine, readonly=True) as s:
            return tally.update(s).get(key, 0)

    _history_rows(engine, list(range(1, 11)))
    assert update() == 10
    _history_rows(engine, [12])
    assert update() == 11
    _history_rows(engine, [11])
    assert update() == 12  # 11 became visible after 12 but is not lost
    assert update() == 12  # and nothing is counted twice


def test_a_scrape_reads_only_rows_newer_than_the_last_counted() -> None:
    mark = tallies.Watermark()
    assert mark.next_range(1000) == (0, 1000)
    mark.done(1000)
    assert mark.next_range(1500) == (1000, 1000)
    mark.done(1000)
    assert mark.next_range(1600) == (1000, 1500)
