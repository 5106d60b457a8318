"""Whether several NTP answers let the clock be trusted: a pure function of the readings.

Policy (seed 000 1.3.3: stop issuing when the clock is off by more than the limit):

1. Every configured server is asked; a majority of them (more than half) must answer
   usably, or the clock is not trusted: the silent ones are named.
2. The answers are compared with their median; a server further than the limit from it is
   an outlier (a falseticker) and is named.  The others must still be a majority of the
   configured servers, or the servers disagree and nothing is trusted.
3. The agreed offset (the median of the servers that agree) must be within the limit.

A minority of silent or lying servers is tolerated but reported, so one bad server can
neither stop signing nor move the clock the check accepts.
"""

from __future__ import annotations

import dataclasses
import statistics

from ca.trusted_time.ntp import Reading


@dataclasses.dataclass(frozen=True, slots=True)
class TimeCheck:
    """The outcome of one check; `refusal` is "" when the clock may be used to sign."""

    readings: tuple[Reading, ...]
    max_offset_s: float
    offset_s: float | None = None  # agreed: server time minus local time
    outliers: tuple[str, ...] = ()
    unreachable: tuple[str, ...] = ()
    refusal: str = ""

    @property
    def trusted(self) -> bool:
        return not self.refusal

    @property
    def checked(self) -> bool:
        """False with no NTP server configured: the clock was used as it is."""
        return bool(self.readings)

    @property
    def degraded(self) -> bool:
        return bool(self.outliers or self.unreachable)

    def offsets(self) -> dict[str, float | None]:
        """Per server, rounded to the microsecond (for the audit record)."""
        return {r.server: None if r.offset_s is None else round(r.offset_s, 6) for r in self.readings}

    def delays(self) -> dict[str, float | None]:
        """Per server, the round trip of its answer (None when unusable), rounded to the microsecond."""
        return {r.server: None if r.delay_s is None else round(r.delay_s, 6) for r in self.readings}

    def errors(self) -> dict[str, str]:
        return {r.server: r.error for r in self.readings if r.error}

    def notes(self) -> str:
        """The tolerated faults, one line: which servers were silent or disagreed, and why."""
        by_name = {r.server: r for r in self.readings}
        parts = [f"{s} {by_name[s].error}" for s in self.unreachable]
        parts += [f"{s} disagrees with the others ({_signed(by_name[s].offset_s)})" for s in self.outliers]
        return "; ".join(parts)


def unchecked(max_offset_s: float) -> TimeCheck:
    return TimeCheck(readings=(), max_offset_s=max_offset_s)


def assess(readings: tuple[Reading, ...], max_offset_s: float) -> TimeCheck:
    if not readings:
        return unchecked(max_offset_s)
    needed = len(readings) // 2 + 1
    answered = [r for r in readings if r.answered]
    unreachable = tuple(r.server for r in readings if not r.answered)
    base = TimeCheck(readings, max_offset_s, unreachable=unreachable)
    if len(answered) < needed:
        silent = "; ".join(f"{r.server} {r.error}" for r in readings if not r.answered)
        return dataclasses.replace(base, refusal=(
            f"only {len(answered)} of {len(readings)} NTP servers answered ({silent}); {needed} needed: "
            "check that the servers are reachable, or fix [time] ntp_servers"))
    median = statistics.median(r.offset_s for r in answered if r.offset_s is not None)
    agree = [r for r in answered if r.offset_s is not None and abs(r.offset_s - median) <= max_offset_s]
    outliers = tuple(r.server for r in answered if r not in agree)
    base = dataclasses.replace(base, outliers=outliers)
    if len(agree) < needed:
        each = ", ".join(f"{r.server} {_signed(r.offset_s)}" for r in answered)
        return dataclasses.replace(base, refusal=(
            f"NTP servers disagree by more than {max_offset_s:g} s ({each}); fewer than {needed} agree: "
            "find the server that is wrong"))
    offset = statistics.median(r.offset_s for r in agree if r.offset_s is not None)
    base = dataclasses.replace(base, offset_s=offset)
    if abs(offset) > max_offset_s:
        servers = ", ".join(r.server for r in agree)
        direction = "behind" if offset > 0 else "ahead of"
        return dataclasses.replace(base, refusal=(
            f"the system clock is {abs(offset):.3f} s {direction} NTP {servers} (offset {_signed(offset)}, "
            f"limit ±{max_offset_s:g} s): correct the clock (chrony/ntpd)"))
    return base


def _signed(offset: float | None) -> str:
    return "no answer" if offset is None else f"{offset:+.3f} s"
