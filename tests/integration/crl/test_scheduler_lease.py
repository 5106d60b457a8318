"""Two schedulers at once issue each list once; a standby takes over when the holder goes (issue 15).

Found: two schedulers started at once both issued 6 of 8 lists (tokyo CRL 27 and 28 for the
same period).  Each scheduler here has its own lease (its own file descriptor on SQLite, its own
connection on PostgreSQL), as two processes or machines would.

Each scheduler counts its finished rounds and its lease's refusals (the real Scheduler and Lease,
counted, not replaced), so that "no second issue" is checked once the rounds that could have made
one are over, rather than after a fixed wait.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter

import sqlalchemy as sa

from ca.scheduler import Scheduler, TickResult
from ca.storage.engine import session_scope
from ca.storage.leases import Lease
from ca.storage.models import IssuedCRL

from support.clock import NO_NTP
from support.installation import Installation


class _CountedLease(Lease):
    """The real lease, with a count of the times it was asked for and refused."""

    refused = 0

    def try_acquire(self) -> bool:
        got = super().try_acquire()
        if not got:
            self.refused += 1
        return got


class _CountedScheduler(Scheduler):
    """The real scheduler, keeping what each of its finished rounds issued."""

    lease: _CountedLease

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.rounds: list[TickResult] = []

    def tick(self, now: dt.datetime | None = None) -> TickResult:
        result = super().tick(now)
        self.rounds.append(result)
        return result


def _issued(installation: Installation) -> Counter[tuple[int, str]]:
    with session_scope(installation.engine, readonly=True) as s:
        return Counter((ca_id, list_type.value) for ca_id, list_type in
                       s.execute(sa.select(IssuedCRL.ca_id, IssuedCRL.list_type)).all())


def _until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within time"
        time.sleep(0.05)


def test_two_schedulers_issue_each_list_once_and_a_standby_takes_over(installation: Installation) -> None:
    days = [2]  # the schedulers' clock runs ahead: every list is due

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(days=days[0])

    before = _issued(installation)
    schedulers = [_CountedScheduler(installation.engine, installation.keys, installation.data_dir, clock=clock,
                                    lease=_CountedLease(installation.engine, "scheduler"), lease_retry=0.1,
                                    time_guard=NO_NTP) for _ in range(2)]
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s, stop in zip(schedulers, stops,
                                                                                            strict=True)]
    for thread in threads:
        thread.start()
    lists = len(before) or 8
    _until(lambda: sum((_issued(installation) - before).values()) >= lists)
    # the round that issued them is over; the other scheduler has since either finished a round of
    # its own (were it allowed to) or been refused the lease twice more (it asks every 0.1 s)
    _until(lambda: any(s.rounds for s in schedulers))
    refused = [s.lease.refused for s in schedulers]
    _until(lambda: all(s.rounds or s.lease.refused >= n + 2 for s, n in zip(schedulers, refused, strict=True)))
    first_round = _issued(installation) - before
    assert set(first_round.values()) == {1} and len(first_round) == lists  # each list exactly once
    holders = [s for s in schedulers if s.lease.held()]
    assert len(holders) == 1
    leader = schedulers.index(holders[0])
    # the leader goes (its lease with it); two days on, the standby issues the next round, once
    stops[leader].set()
    threads[leader].join(timeout=10)
    days[0] = 4
    standby = schedulers[1 - leader]
    _until(lambda: standby.lease.held())
    _until(lambda: sum((_issued(installation) - before).values()) >= 2 * lists)
    _until(lambda: any(r.issued for r in standby.rounds))  # the standby's round that issued them is over
    assert set((_issued(installation) - before).values()) == {2}
    stops[1 - leader].set()
    threads[1 - leader].join(timeout=10)
    assert not standby.lease.held()


def test_a_lease_is_one_holders_until_released(installation: Installation) -> None:
    first, second = Lease(installation.engine, "publisher"), Lease(installation.engine, "publisher")
    assert first.try_acquire() and first.held()
    assert not second.try_acquire() and not second.held()
    other_job = Lease(installation.engine, "scheduler")
    assert other_job.try_acquire()  # another job's lease is another lease
    other_job.release()
    first.release()
    assert second.try_acquire()
    second.release()
