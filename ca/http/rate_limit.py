"""Per-key request rate limits (token buckets), shared by the services that face verifiers.

Each key (a client address, a verifier) gets a bucket of `burst` requests that refills at
`rate` per second.  A request that finds its bucket empty is refused with the time until the
next token, which the service turns into 429 + Retry-After (HTTP) or tryLater (OCSP).  The
limits are per worker process: with W workers a client may get up to W times `rate`.

Memory stays bounded whatever keys arrive: at most `max_keys` buckets are kept, and when a
new key finds the table full the oldest buckets (by insertion) go first.  A dropped bucket
only forgets a client's debt, which is what a full bucket would have been after a pause.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable

MAX_KEYS = 100_000  # about 100 bytes each


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None, *, max_keys: int = MAX_KEYS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`rate` requests per second per key (0: no limit), bursts of `burst` (default 2 × rate)."""
        if rate < 0 or (burst is not None and burst < 1):
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, 2 * rate))
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def retry_after(self, key: Hashable) -> float:
        """0 when `key` may go ahead now (and a token is taken), else seconds until it may."""
        if not self.rate:
            return 0.0
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                tokens -= 1
                wait = 0.0
            else:
                wait = (1 - tokens) / self.rate
            if len(self._buckets) >= self.max_keys:
                for old in list(self._buckets)[: max(1, self.max_keys // 10)]:
                    del self._buckets[old]
            self._buckets[key] = (tokens, now)  # re-inserted: most recent last
        return wait


def retry_after_header(wait: float) -> tuple[str, str]:
    """Retry-After in whole seconds, at least 1 (RFC 9110 10.2.3)."""
    return ("Retry-After", str(max(1, math.ceil(wait))))
