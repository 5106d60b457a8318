"""The status page itself: one read-only HTML page for CA officers, behind HTTP Basic."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template

from ca.errors import PermissionDenied, RevocaError
from ca.status_page import queries
from ca.status_page.auth import REALM, PasswordExpired, Unauthenticated
from ca.status_page.chart import stacked_bars
from ca.status_page.login import officer_of_request
from ca.storage.engine import session_scope
from ca.storage.publications import queue_states
from ca.storage.reporting import ReportingReads

log = logging.getLogger("revoca.status")
bp = Blueprint("status", __name__, template_folder="templates")

OCSP_MINUTES = 10
CHART_DAYS = 30


def _ext() -> dict[str, Any]:
    return current_app.extensions["revoca_status"]


@bp.before_request
def _require_officer() -> None:
    g.officer = officer_of_request()


@bp.errorhandler(Unauthenticated)
def _unauthenticated(exc: Unauthenticated) -> Response:
    response = _refusal(401, "Log in", str(exc))
    response.headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return response


@bp.errorhandler(PermissionDenied)
def _forbidden(exc: PermissionDenied) -> Response:
    return _refusal(403, "Password expired" if isinstance(exc, PasswordExpired) else "Not for this role", str(exc))


def _refusal(status: int, title: str, detail: str) -> Response:
    response = Response(render_template("refused.html", title=title, detail=detail), status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def page() -> Response:
    ext = _ext()
    engine = ext["engine"]
    now: dt.datetime = ext["clock"]()
    with session_scope(engine, readonly=True) as session:
        store = ReportingReads(session)
        lists = queries.list_lines(store.list_statuses(), now, ext["warn_before"])
        panels = queries.ca_panels(store, now)
        waiting = queries.waiting_requests(store)
        minutes = queries.ocsp_per_minute(store, now, OCSP_MINUTES)
        days = queries.revocations_per_day(ext["revocation_days"].update(session), now.date(), CHART_DAYS)
    publication = queue_states(engine)
    html = render_template(
        "status.html", now=now, officer=g.officer, lists=lists, panels=panels, waiting=waiting,
        minutes=minutes, chart=stacked_bars(days), chart_days=CHART_DAYS, publication=publication,
        publication_waiting=sum(q.pending for q in publication), hsm=_hsm(ext),
        warn_hours=ext["warn_before"].total_seconds() / 3600,
        ocsp_last_minute=minutes[-2].count if len(minutes) > 1 else 0,
        ocsp_peak=max((m.count for m in minutes), default=0))
    response = Response(html, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"  # officers' data: not kept by browsers or proxies
    return response


def _hsm(ext: dict[str, Any]) -> dict[str, Any]:
    """The HSM service's own status (what `revoca status` prints), or why it could not be read."""
    if ext["hsm_status"] is None:
        return {"reachable": False, "activated": False, "line": "not configured for this page"}
    try:
        return {"reachable": True, **ext["hsm_status"]()}
    except RevocaError as exc:
        return {"reachable": False, "activated": False, "line": str(exc)}
