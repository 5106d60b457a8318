"""Two schedulers at once issue each list once; a standby takes over when the holder goes (issue 15).

Found: two schedulers started at once both issued 6 of 8 lists (tokyo CRL 27 and 28 for the
same period).  Each scheduler here has its own lease (its own file descriptor on SQLite, its own
connection on PostgreSQL), as two processes or machines would.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter

import sqlalchemy as sa

from ca.scheduler import Scheduler
from ca.storage.engine import session_scope
from ca.storage.leases import Lease
from ca.storage.models import IssuedCRL

from support.clock import NO_NTP
from support.installation import Installation


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
    schedulers = [Scheduler(installation.engine, installation.keys, installation.data_dir, clock=clock,
                            lease=Lease(installation.engine, "scheduler"), lease_retry=0.1,
                            time_guard=NO_NTP) for _ in range(2)]
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=s.run, args=(stop,), daemon=True) for s, stop in zip(schedulers, stops,
                                                                                            strict=True)]
    for thread in threads:
        thread.start()
    lists = len(before) or 8
    _until(lambda: sum((_issued(installation) - before).values()) >= lists)
    time.sleep(1.0)  # time enough for a second scheduler to issue again, were it allowed to
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
    time.sleep(0.5)
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
