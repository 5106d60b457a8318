"""`revoca serve status`: the status page and /metrics under gunicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ca.audit.service_events import running
from ca.config import Settings
from ca.hsm.client import HSMClient
from ca.http.gunicorn import GunicornServer
from ca.storage.engine import make_engine
from ca.storage.grants import role_for

if TYPE_CHECKING:  # flask and prometheus only in the workers, once build_app runs
    from ca.status_page.metrics import HeldLists

DEFAULT_PORT = 8090
#: The page asks the HSM service for its state at each load; it must not hang behind a long signing.
HSM_TIMEOUT = 3.0


def build_app(settings: Settings, *, public_verifier_names: bool = False, held_lists: HeldLists | None = None) -> Any:
    """The WSGI app with its own engine and HSM connection (one per gunicorn worker, after the fork);
    `held_lists` reads the lists back from the LDAP repository (wired by the CLI: ca.status_page
    does not import the repository role)."""
    from ca.status_page import create_app

    engine = make_engine(settings.db_url, pool_pre_ping=True, role=role_for(settings, "status"))
    hsm = HSMClient(settings.hsm_socket, timeout=HSM_TIMEOUT)
    return create_app(engine, hsm_status=hsm.status, warn_before=settings.crl.warn_before,
                      public_verifier_names=public_verifier_names, ldap_port=settings.repository.port,
                      password_policy=settings.operators.password_policy, held_lists=held_lists,
                      ocsp_ca_signed=settings.ocsp.ca_signed)


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, workers: int = 2,
          public_verifier_names: bool = False, held_lists: HeldLists | None = None) -> None:
    options = {"bind": f"{host}:{port}", "workers": workers, "accesslog": "-", "timeout": 60,
               "graceful_timeout": 10}
    with running(lambda: make_engine(settings.db_url, role=role_for(settings, "status")), "status",
                 address=f"{host}:{port}", workers=workers):
        GunicornServer(options, lambda: build_app(settings, public_verifier_names=public_verifier_names,
                                                  held_lists=held_lists)).run()
