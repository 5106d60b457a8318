"""One log line format for every revoca service and the HTTP servers they run in (issue 17).

Under `make run` the lines of a dozen processes interleave on one terminal: revoca's own
(`%(asctime)s %(name)s ...`), gunicorn's (`[2026-12-03 08:00:01 +0000] [1234] [INFO] ...`) and
granian's (`[INFO] ...`, no time at all) were three formats, and granian opened with a warning
about "256 Python threads".  Now every line is

    2026-12-03T08:00:01Z ocsp INFO message

time (UTC), service, level, message; gunicorn's and granian's loggers (access lines included)
are configured to the same formatter, and the granian warning is dropped (see
`QuietGranianThreads`).
"""

from __future__ import annotations

import logging
import logging.config
import time
from typing import Any

DATEFMT = "%Y-%m-%dT%H:%M:%SZ"
#: gunicorn's access line without its own time stamp (the formatter puts the time first)
ACCESS_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss "%(a)s"'
#: granian's access line likewise
GRANIAN_ACCESS_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3fms'


class ServiceFormatter(logging.Formatter):
    """`time service level message`, the time in UTC."""

    converter = staticmethod(time.gmtime)

    def __init__(self, service: str = "revoca") -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(message)s", DATEFMT)


class QuietGranianThreads(logging.Filter):
    """Drops granian's start-up warning that its WSGI configuration "allows spawning up to N Python
    threads": N is its default (half the back-pressure limit), intended here, because the responder's
    handlers block on the database and the HSM service rather than on the CPU."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Python threads" not in record.getMessage()


def current_service(default: str = "revoca") -> str:
    """The service this process runs: the name of the `revoca serve NAME` command being run."""
    try:
        import click
    except ImportError:  # pragma: no cover - click is a dependency
        return default
    context = click.get_current_context(silent=True)
    return context.info_name if context is not None and context.info_name else default


def dict_config(service: str, *, level: str = "INFO") -> dict[str, Any]:
    """A logging.config dictionary: the root logger, gunicorn's and granian's, all on stderr in one format."""
    handler = {"class": "logging.StreamHandler", "formatter": "revoca", "stream": "ext://sys.stderr"}
    quiet_server = {"handlers": ["console"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"revoca": {"()": ServiceFormatter, "service": service}},
        "filters": {"quiet_granian": {"()": QuietGranianThreads}},
        "handlers": {"console": handler, "error_console": handler},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "gunicorn.error": quiet_server,
            "gunicorn.access": quiet_server,
            "_granian": {**quiet_server, "filters": ["quiet_granian"]},
            "granian.access": quiet_server,
            "alembic": {"level": "WARNING"},
        },
    }


def configure(service: str | None = None) -> None:
    """This process's logging in the one format (a long-running `revoca serve ...`)."""
    logging.config.dictConfig(dict_config(service or current_service()))
