"""`revoca serve tsa`: the RFC 3161 app under gunicorn; each worker has its own database pool
and HSM connection (made after the fork)."""

from __future__ import annotations

from typing import Any

from ca.audit.service_events import running
from ca.config import Settings
from ca.hsm.client import HSMClient
from ca.http.client_filter import ClientFilter
from ca.http.gunicorn import GunicornServer
from ca.http.rate_limit import RateLimiter
from ca.storage.engine import make_engine
from ca.storage.grants import role_for
from ca.trusted_time import guard_for
from ca.tsa.app import make_app


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    options = {"bind": f"{host}:{port}", "workers": workers, "timeout": 30, "graceful_timeout": 10,
               "accesslog": "-"}

    def load() -> Any:
        engine = make_engine(settings.db_url, pool_pre_ping=True, role=role_for(settings, "tsa"))
        # each worker process checks the clock against the settings' [time] policy with a guard of its own
        return make_app(engine, HSMClient(settings.hsm_socket), time_guard=guard_for(settings),
                        clients=ClientFilter(settings.tsa.allowed_clients),
                        address_limit=RateLimiter(settings.tsa.rate_per_address))

    with running(lambda: make_engine(settings.db_url, role=role_for(settings, "tsa")), "tsa",
                 address=f"{host}:{port}", workers=workers):
        GunicornServer(options, load).run()
