"""The test modules' rewritten asserts, made once by the xdist controller instead of once per worker.

pytest rewrites each test module's asserts when it imports it (parse, rewrite, compile: ~4 s of CPU
for this suite), and every xdist worker imports every module to collect.  It caches the result
beside the module (`__pycache__/*-pytest-*.pyc`, checked against the source's hash), but not where
PYTHONDONTWRITEBYTECODE is set, and a clean clone has no cache: each of three workers on 2 cores
paid the 4 s.  Here the controller writes that cache before the workers start, in one process per
CPU, and the workers read it, as pytest reads any cache it finds, whatever that flag says.

pytest's own functions do the work (private ones: with another pytest, where they are missing, this
does nothing and each worker rewrites as before).  A module that changes after this is rewritten by
the worker, as pytest does for any stale cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def rewrite_ahead(config: pytest.Config, tests: Path) -> None:
    try:
        from _pytest.assertion.rewrite import (
            PYC_TAIL,
            _read_pyc,
            _rewrite_test,
            _write_pyc,
            assertstate_key,
            get_cache_dir,
            try_makedirs,
        )
    except ImportError:
        return
    state = config.stash.get(assertstate_key, None)
    if state is None:  # --assert=plain: nothing is rewritten
        return
    todo = []
    for module in sorted([*tests.rglob("test_*.py"), *tests.rglob("conftest.py")]):
        pyc = get_cache_dir(module) / (module.name[:-3] + PYC_TAIL)
        if _read_pyc(module, pyc) is None:
            todo.append((module, pyc))
    cpus = max(1, len(os.sched_getaffinity(0)))
    children = []
    for share in range(min(cpus, len(todo))):
        pid = os.fork()
        if pid == 0:  # a child: its share of the modules, then out without pytest's exit handlers
            status = 0
            try:
                for module, pyc in todo[share::cpus]:
                    if try_makedirs(pyc.parent):
                        source_hash, code = _rewrite_test(module, config)
                        _write_pyc(state, code, source_hash, pyc)
            except BaseException:  # noqa: BLE001  -- the worker rewrites what is missing
                status = 1
            os._exit(status)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
