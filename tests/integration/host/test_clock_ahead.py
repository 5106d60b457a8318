"""A clock that jumps ahead makes no future-dated list (issue 15).

Found: with the clock 50 h ahead, future-dated CRLs were signed, archived and published.  The
NTP check is reused for `recheck_s` (a minute) and the scheduler signs the time of its own
clock, so each signature is also compared with the last NTP-confirmed time plus the monotonic
time since.  Here the NTP server is a real one on loopback (support.ntp_server), the clock that
jumps is the scheduler's injected clock or the guard's injected wall clock, and signing goes
through SoftHSM2 and SQLite.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ca import trusted_time
from ca.config import Settings, TimeConfig
from ca.errors import UntrustedTime
from ca.scheduler import Scheduler, list_statuses
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent
from ca.trusted_time import ClockGuard
from ca.trusted_time.guard import AHEAD_EVENT

from support.installation import CeremonyTemplates, Installation, demo_installation
from support.ntp_server import LoopbackNTP
from support.tools import revoca


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("ahead")) as made:
        yield made


@pytest.fixture
def ntp() -> Iterator[LoopbackNTP]:
    with LoopbackNTP(0.0) as server:
        yield server


def checked(installation: Installation, ntp: LoopbackNTP) -> Settings:
    """The installation's settings with `ntp` as their only NTP server."""
    return dataclasses.replace(installation.settings, time=TimeConfig(ntp_servers=(ntp.address,), recheck_s=60))


def ahead_events(installation: Installation) -> list[dict[str, object]]:
    with session_scope(installation.engine) as s:
        rows = s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == AHEAD_EVENT).order_by(AuditEvent.seq))
        return [{"result": r.result, **json.loads(r.detail)} for r in rows]


def numbers(installation: Installation) -> dict[tuple[str, str], int | None]:
    return {(s.ca_name, s.list_type.value): s.number for s in list_statuses(installation.engine)}


def status_errors(installation: Installation) -> list[str]:
    _, _, err = revoca(installation.env(), "status")
    return [line for line in err.splitlines() if line.startswith("ERROR: lists are not being signed")]


def test_a_scheduler_clock_50_h_ahead_signs_nothing_until_ntp_confirms(installation: Installation,
                                                                       ntp: LoopbackNTP) -> None:
    guard = trusted_time.guard_for(checked(installation, ntp))  # as `revoca serve scheduler` makes its own
    assert installation.keys is not None
    real = dt.datetime.now(dt.UTC)
    clock = [real]
    scheduler = Scheduler(installation.engine, installation.keys, installation.data_dir,
                          installation.settings.crl,
                          clock=lambda: clock[0], time_guard=guard)
    first = scheduler.tick()
    assert first.issued and not first.failed  # on the real clock: confirmed by NTP, issued
    assert ntp.queries == 1
    before = numbers(installation)

    clock[0] = real + dt.timedelta(hours=50)  # the clock jumps ahead; NTP's check is still fresh
    ahead = scheduler.tick()
    assert not ahead.issued and len(ahead.failed) == len(before)
    for failure in ahead.failed:
        assert failure.exit_code == UntrustedTime.exit_code
        assert "\n" not in failure.error
        assert "ahead of the last NTP-confirmed time" in failure.error
        assert "not signed until NTP confirms the time" in failure.error
    assert numbers(installation) == before  # no number spent, nothing archived
    assert ntp.queries == len(before)  # each refusal after the first asked NTP again (which confirmed the real time)
    events = ahead_events(installation)
    assert len(events) == len(before) and all(e["result"] == "failure" for e in events)
    assert str(events[0]["signed_time"]).startswith(f"{clock[0]:%Y-%m-%dT%H:%M}")
    (error,) = status_errors(installation)
    assert "ahead of the last NTP-confirmed time" in error

    clock[0] = dt.datetime.now(dt.UTC)  # the clock is set right: NTP confirms the time signed
    again = scheduler.issue_now("tokyo")
    assert ntp.queries == len(before) + 1

    assert again.issued and not again.failed
    assert status_errors(installation) == []


def test_a_wall_clock_jump_between_two_ntp_checks_is_refused(installation: Installation,
                                                             ntp: LoopbackNTP) -> None:
    offset = [0.0]
    guard = ClockGuard(TimeConfig(ntp_servers=(ntp.address,), recheck_s=60), db_url=installation.settings.db_url,
                       wall=lambda: time.time() + offset[0])
    guard.require("test")
    offset[0] = 30.0  # 30 s ahead in a moment: beyond max_offset_s (1 s) plus the drift allowance
    with pytest.raises(UntrustedTime, match=r"the clock is 3\d s ahead of the last NTP-confirmed time"):
        guard.require("tokyo OCSP response")
    assert ahead_events(installation)[-1]["purpose"] == "tokyo OCSP response"
    offset[0] = 0.5  # back within the allowed skew: signing goes on
    guard.require("test")
    assert guard.ahead_by() == 0.0
