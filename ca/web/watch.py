"""Making the pages again whenever what they show changes.

Roles never import each other, so nobody tells the web service that something changed: it asks
the database every few seconds for PublicReads.change_mark (a handful of aggregate queries over
indexed columns) and builds a new release only when the mark moved.  Whatever writes the change,
the publisher putting an ARL into the directory, `revoca ca compromise` writing its notice, a
provision report made, a cross certificate expiring, shows within one poll.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ca.errors import RevocaError
from ca.storage.engine import Engine
from ca.web.build import Sources, build, mark, publish_release

POLL_SECONDS = 5.0

log = logging.getLogger("revoca.web")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Watcher:
    def __init__(self, engine: Engine, sources: Sources, root: Path, *,
                 clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.engine, self.sources, self.root, self.clock = engine, sources, root, clock
        self.built_mark: str | None = None
        self.builds = 0

    def poll(self) -> bool:
        """Build a new release if the mark moved since the last build; whether it built.  A site
        whose ARL the directory did not hold yet is built again at the next poll."""
        now = self.clock()
        if self.built_mark is not None and mark(self.engine, now) == self.built_mark:
            return False
        site, files = build(self.engine, self.sources, now)
        publish_release(files, self.root, f"{now:%Y%m%dT%H%M%S%f}-{site.mark[:12]}")
        complete = all(v.arl is None or v.arl.der is not None for v in site.cas)
        self.built_mark = site.mark if complete else None
        self.builds += 1
        log.info("web: pages made (%d files, mark %s%s)", len(files), site.mark[:12],
                 "" if complete else "; an ARL is not in the directory yet, trying again")
        return True

    def run(self, stop: threading.Event, interval: float = POLL_SECONDS) -> None:
        """Poll until `stop` is set; a failed round (database or directory away) is logged and retried."""
        while not stop.wait(interval):
            try:
                self.poll()
            except RevocaError as exc:
                log.warning("web: pages not made this round: %s", exc)
