"""`revoca serve web`: the pages of the current release over HTTP, and the watcher beside them.

The pages are static files, so the WSGI app only maps a path to a file under root/current
(never outside it), with the right media type and headers that forbid scripts.  gunicorn's
workers serve; the watcher thread runs in the master, which forks the workers and itself serves
nothing.  Behind a production web server, `revoca web build --out DIR` is the alternative.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ca.audit.service_events import running
from ca.config import Settings
from ca.http.gunicorn import GunicornServer
from ca.storage.engine import make_engine
from ca.storage.grants import role_for
from ca.web.build import Sources, current
from ca.web.watch import POLL_SECONDS, Watcher

DEFAULT_PORT = 8070
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".cer": "application/pkix-cert",
         ".pem": "application/x-pem-file", ".arl": "application/pkix-crl", ".csv": "text/csv; charset=utf-8",
         ".tsr": "application/timestamp-reply", ".txt": "text/plain; charset=utf-8"}
HEADERS = [("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'none'; "
                                       "frame-ancestors 'none'"),
           ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
           ("Cache-Control", "public, max-age=60")]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def static_app(root: Path) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app serving the files of root/current (its target is read at each request, so a new
    release shows at once and a request never mixes two)."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), *HEADERS])
            return [b""]
        base = current(root).resolve()
        relative = environ.get("PATH_INFO", "/").lstrip("/")
        path = (base / relative).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(base) or not path.is_file() or path.name.startswith("."):
            body = b"not found\n"
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body))), *HEADERS])
            return [body] if method == "GET" else [b""]
        data = path.read_bytes()
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(data))), *HEADERS])
        return [data] if method == "GET" else [b""]

    return app


def serve(settings: Settings, sources: Sources, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          workers: int = 2, interval: float = POLL_SECONDS) -> None:
    root = settings.data_dir / "web"
    engine = make_engine(settings.db_url, role=role_for(settings, "web"))
    watcher = Watcher(engine, sources, root)
    watcher.poll()  # the first release before anyone is served
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop, interval), name="web-watcher", daemon=True)
    options = {"bind": f"{host}:{port}", "workers": workers, "accesslog": "-", "timeout": 30,
               "graceful_timeout": 5}
    with running(lambda: make_engine(settings.db_url, role=role_for(settings, "web")), "web",
                 address=f"{host}:{port}", workers=workers):
        thread.start()
        try:
            GunicornServer(options, lambda: static_app(root)).run()
        finally:
            stop.set()
