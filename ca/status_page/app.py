"""The status page application: the officers' page at / and Prometheus metrics at /metrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from ca.config import CRLConfig
from ca.officers.passwords import PasswordPolicy
from ca.status_page import metrics, views
from ca.status_page.auth import CACHE_SECONDS, CredentialCache
from ca.status_page.metrics import HeldLists, HSMStatus, RevocaCollector, make_registries
from ca.status_page.tallies import Tally, revocations_by_day
from ca.storage.engine import Engine

WARN_BEFORE = CRLConfig().warn_before  # the [crl] default; `revoca serve status` passes the configured one


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_app(engine: Engine, *, hsm_status: HSMStatus | None = None,
               clock: Callable[[], dt.datetime] = utc_now, warn_before: dt.timedelta = WARN_BEFORE,
               auth_seconds: float = CACHE_SECONDS, public_verifier_names: bool = False,
               ldap_port: int | None = None, password_policy: PasswordPolicy | None = None,
               held_lists: HeldLists | None = None, ocsp_ca_signed: bool = False) -> Flask:
    """`hsm_status` returns what the HSM service's status call does (or raises ServiceUnavailable);
    `public_verifier_names` shows per-verifier OCSP counts in /metrics without a login;
    `password_policy` is [operators] (its defaults when None); `ocsp_ca_signed` is [ocsp] ca_signed
    (which answers signed ahead count as served)."""
    app = Flask("revoca.status", root_path=str(Path(__file__).parent))
    collector = RevocaCollector(engine, clock=clock, hsm_status=hsm_status, ldap_port=ldap_port,
                                held_lists=held_lists, ocsp_ca_signed=ocsp_ca_signed)
    named, anonymous = make_registries(collector)
    app.extensions["revoca_status"] = {
        "engine": engine, "hsm_status": hsm_status, "clock": clock, "warn_before": warn_before,
        "auth_cache": CredentialCache(auth_seconds), "registry": named, "anonymous_registry": anonymous,
        "public_verifier_names": public_verifier_names, "password_policy": password_policy or PasswordPolicy(),
        # revocations per day and reason, counted incrementally: a page load reads only new rows
        "revocation_days": Tally("revocations", revocations_by_day),
    }
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["left"] = time_left
    app.register_blueprint(views.bp)
    app.register_blueprint(metrics.bp)
    return app


def when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "—"


def time_left(value: dt.timedelta | None) -> str:
    """"2 d 03 h", "5 h 12 min", or "expired 3 h ago"."""
    if value is None:
        return "—"
    seconds = int(abs(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{days} d {hours:02d} h" if days else f"{hours} h {rest // 60:02d} min"
    return f"expired {text} ago" if value.total_seconds() <= 0 else text
