"""`revoca serve cvs`: the validation app under gunicorn; each worker has its own database pool
and HSM connection (made after the fork)."""

from __future__ import annotations

from typing import Any

from ca.audit.service_events import running
from ca.config import Settings
from ca.cvs.app import make_app
from ca.cvs.material import TrustSource
from ca.hsm.client import HSMClient
from ca.http.gunicorn import GunicornServer
from ca.storage.engine import make_engine
from ca.storage.grants import role_for
from ca.trusted_time import guard_for


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    options = {"bind": f"{host}:{port}", "workers": workers, "timeout": 60, "graceful_timeout": 10,
               "accesslog": "-"}

    def load() -> Any:
        engine = make_engine(settings.db_url, pool_pre_ping=True, role=role_for(settings, "cvs"))
        return make_app(engine, HSMClient(settings.hsm_socket), TrustSource(engine, settings.data_dir),
                        time_guard=guard_for(settings))

    with running(lambda: make_engine(settings.db_url, role=role_for(settings, "cvs")), "cvs",
                 address=f"{host}:{port}", workers=workers):
        GunicornServer(options, load).run()
