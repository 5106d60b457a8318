"""A granian responder's server holds SIGTERM and SIGINT back across each fork of a worker
(ocsp.wsgi._hold_stops_across_forks): a stop reaching a child just forked is not forgotten."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_FORKS = """
import os, signal, sys, time
from ocsp import wsgi

os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # a new child waits for its parent's turn
taken = []
signal.signal(signal.SIGTERM, lambda _signum, _frame: taken.append(1))


def lost(forks, until_one=False):
    count = 0
    for _ in range(forks):
        if until_one and count:
            break
        pid = os.fork()
        if pid == 0:
            deadline = time.monotonic() + 2
            while not taken and time.monotonic() < deadline:
                time.sleep(0.001)
            os._exit(0 if taken else 1)
        os.kill(pid, signal.SIGTERM)  # as the child starts: before it ran, most often
        count += os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return count


before = lost(int(sys.argv[1]), until_one=True)  # a forgotten stop costs its child's 2 s
wsgi._hold_stops_across_forks()
print(before, lost(int(sys.argv[1])))
"""


def test_a_stop_reaching_a_worker_just_forked_is_not_forgotten() -> None:
    """Found under load (the test above, in the full suite): the responder stopped, but granian's
    server waited for ever for a worker that had missed both its stop and granian's.  The worker
    was forked but had not yet run, and Python clears in a new child the signals it caught but has
    not yet handled, as its first step: a stop reaching it there is forgotten.  Here a process
    forks children and stops each at once, first as it always did, then as the responder's server
    (ocsp.wsgi holds the stops back across its forks): none may be forgotten."""
    forks = 40
    out = subprocess.run([sys.executable, "-c", _FORKS, str(forks)], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).parents[3], check=True).stdout
    lost_before, lost_after = map(int, out.split())
    if not lost_before:  # (the first fork forgets it, most often)
        pytest.skip(f"no stop was forgotten in {forks} forks without holding them: the window is not seen here")
    assert lost_after == 0, f"{lost_after} of {forks} stops forgotten by a child just forked (before: {lost_before})"
