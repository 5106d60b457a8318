"""The clock check tests hand to signing code (ca.trusted_time: a guard is passed in, never found
in the process).  NO_NTP is the embedded default [time] policy, no NTP server: one warning, then
signing on the system clock; it keeps no state, so every test may share it.  The tests of the
clock check itself (tests/integration/tsa/test_trusted_time.py, host/test_clock_ahead.py) make
guards of their own against loopback NTP servers."""

from __future__ import annotations

from ca.config import TimeConfig
from ca.trusted_time import ClockGuard

NO_NTP = ClockGuard(TimeConfig())
