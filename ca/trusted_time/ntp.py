"""Asking one NTP server how far the local clock is off (RFC 5905 client mode, through ntplib).

ntplib sends the request and computes offset and delay; what it leaves to its caller is
checked here: that the answer comes from a synchronised server (not leap indicator 3, not
stratum 0, the kiss-o'-death, nor 16) and that it echoes a time this request could have been
sent at (ntplib does not compare the origin timestamp with the one it sent).
"""

from __future__ import annotations

import dataclasses

import ntplib

from ca.config import split_ntp_server

SERVER_MODE = 4
UNSYNCHRONISED = 3  # leap indicator: the server's own clock is not set


@dataclasses.dataclass(frozen=True, slots=True)
class Reading:
    """One server's answer: `offset_s` is server time minus local time (None when unusable)."""

    server: str
    offset_s: float | None = None
    delay_s: float | None = None
    error: str = ""

    def __post_init__(self) -> None:
        if (self.offset_s is None) == (not self.error):
            raise ValueError("a reading has either an offset or an error")

    @property
    def answered(self) -> bool:
        return self.offset_s is not None


def query(server: str, timeout_s: float) -> Reading:
    """Ask `server` ("host[:port]") once; never raises for a network or protocol fault."""
    host, port = split_ntp_server(server)
    try:
        stats = ntplib.NTPClient().request(host, version=4, port=port, timeout=timeout_s)
    except ntplib.NTPException as exc:
        no_answer = "No response" in str(exc)
        return Reading(server, error=f"no answer within {timeout_s:g} s" if no_answer else f"bad answer: {exc}")
    except OSError as exc:  # name not found, network unreachable, port refused
        return Reading(server, error=f"unreachable: {exc.strerror or exc}")
    return _usable(server, stats, timeout_s)


def _usable(server: str, stats: ntplib.NTPStats, timeout_s: float) -> Reading:
    if stats.mode != SERVER_MODE:
        return Reading(server, error=f"answered in NTP mode {stats.mode}, not as a server")
    if stats.leap == UNSYNCHRONISED or not 1 <= stats.stratum <= 15:
        return Reading(server, error=f"is not synchronised itself (leap {stats.leap}, stratum {stats.stratum})")
    waited = stats.dest_timestamp - stats.orig_timestamp
    if not 0 <= waited <= timeout_s + 1:
        return Reading(server, error="answered a request this client did not send (origin timestamp mismatch)")
    if stats.delay < 0:
        return Reading(server, error=f"reported an impossible round trip ({stats.delay:.3f} s)")
    return Reading(server, offset_s=stats.offset, delay_s=stats.delay)
