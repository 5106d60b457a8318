"""`revoca serve ocsp`: the responder under granian (HTTP) or gunicorn (HTTP or HTTPS with client certificates).

Each worker builds its own app (ocsp.wsgi.build): its own database pool and connection to the
HSM service (after the fork), a Responder with its own pre-signed answers, and a QueryHistory
thread that writes the worker's queries once a second and at exit.  Answers signed on demand
are also kept in one table all the workers map (ocsp.shared_answers), made here before they start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
from collections.abc import Callable, Iterator
from typing import Any

from ca.audit.service_events import running
from ca.config import Settings
from ca.host import logs
from ca.host.notify import ready_when_listening
from ca.hsm.client import HSMClient
from ca.http.client_cert import ClientCertificate
from ca.http.gunicorn import GunicornServer
from ca.http.server_tls import ensure_server_tls
from ca.storage.engine import Engine, make_engine
from ca.storage.grants import role_for
from ocsp import shared_answers, wsgi
from ocsp.wsgi import build, wake_main_thread_on_stop_signals

log = logging.getLogger("revoca.ocsp")


def serve_granian(settings: Settings, *, config_path: str | None, host: str, port: int, workers: int,
                  threads: int = 1, ca_signed: bool = False, key_files: bool = False) -> None:
    """The same app under granian (a Rust HTTP server): plain HTTP only, no client certificates.

    `threads`: the Python threads each worker runs the app in (granian's blocking threads). One is
    the default on purpose: an answer is CPU work under the GIL, and with granian's own default
    several threads of one worker took turns on the GIL: with one, a cold pass of 1,000 signed
    requests (bench/ocsp.py's load client, 16 connections, 2 cores) went from 3,479 to 5,694
    answers a second and its p99 from 22 to 7 ms (issue 16)."""
    from granian import Granian
    from granian.constants import Interfaces

    if config_path:
        os.environ["REVOCA_CONFIG"] = config_path
    os.environ["REVOCA_OCSP_KEY_FILES"] = "1" if key_files else "0"
    os.environ["REVOCA_OCSP_CA_SIGNED"] = "1" if ca_signed else "0"
    # a worker that dies (kill -9, a crash) is started again rather than taking the server down (issue 15)
    with running(_engine_for(settings), "ocsp", address=f"{host}:{port}", workers=workers, server="granian"), \
            _shared_answers():
        ready_when_listening(host, port)  # under systemd (Type=notify): READY=1 once granian accepts
        wake_main_thread_on_stop_signals()  # granian's server waits for its stop on a lock, as its workers
        wsgi.server = Granian("ocsp.wsgi:app", address=host, port=port, interface=Interfaces.WSGI, workers=workers,
                              blocking_threads=threads, respawn_failed_workers=True, websockets=False,
                              log_dictconfig=logs.dict_config(logs.current_service("ocsp")))
        wsgi.server.serve()


def serve(settings: Settings, *, host: str, port: int, workers: int, threads: int = 1, tls: bool = False,
          ca_signed: bool = False, key_files: bool = False) -> None:
    options: dict[str, Any] = {"bind": f"{host}:{port}", "workers": workers, "timeout": 30, "graceful_timeout": 10,
                               "keepalive": 5}
    if threads > 1:  # gthread: keep-alive connections; the responder's caches are shared by the threads
        options.update(worker_class="gthread", threads=threads)
    if tls:
        engine = make_engine(settings.db_url)
        # the server certificate and the roots client certificates must chain to (the bridge's)
        cert, key, roots = ensure_server_tls(settings, engine, HSMClient(settings.hsm_socket), host)
        engine.dispose()
        options.update(certfile=str(cert), keyfile=str(key), ca_certs=str(roots), cert_reqs=ssl.CERT_OPTIONAL)

    def load() -> Any:
        app = build(settings, ca_signed=ca_signed, key_files=key_files)
        return ClientCertificate(app) if tls else app

    with running(_engine_for(settings), "ocsp", address=f"{host}:{port}", workers=workers, server="gunicorn",
                 tls=tls), _shared_answers():
        GunicornServer(options, load).run()


@contextlib.contextmanager
def _shared_answers() -> Iterator[None]:
    """The table of answers the workers share (ocsp.shared_answers), made before they start, named to
    them in the environment, removed when the server stops."""
    try:
        path = shared_answers.create()
    except OSError as exc:  # no writable memory file system: each worker keeps its own answers, as before
        log.warning("OCSP workers will not share the answers they sign: %s", exc)
        yield
        return
    os.environ[shared_answers.ENVIRON] = str(path)
    try:
        yield
    finally:
        os.environ.pop(shared_answers.ENVIRON, None)
        shared_answers.remove(path)


def _engine_for(settings: Settings) -> Callable[[], Engine]:
    """Engines for the master's start and stop records, as the responder's database role."""
    return lambda: make_engine(settings.db_url, role=role_for(settings, "ocsp"))
