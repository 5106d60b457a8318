"""The responder as an importable WSGI application, for servers that load apps by name (granian).

Each worker process imports this module and builds its own responder from the settings in
the environment (REVOCA_CONFIG and the REVOCA_* overrides), as `revoca serve ocsp` passes
them, with REVOCA_OCSP_KEY_FILES and REVOCA_OCSP_CA_SIGNED for its options.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from multiprocessing import util as multiprocessing_util
from typing import Any

from ca import trusted_time
from ca.config import Settings, load_settings
from ca.hsm.client import HSMClient
from ca.http.rate_limit import RateLimiter
from ca.storage.engine import make_engine
from ca.storage.grants import role_for
from ca.storage.ocsp_lookups import Lookups
from ca.storage.replica_lag import ReplicaLag
from ocsp.app import make_app
from ocsp.history import QueryHistory
from ocsp.keys import ResponderKeys, keys_dir, passphrase_path
from ocsp.responder import Responder
from ocsp.shared_answers import SharedAnswers
from ocsp.status import FreshestStatus


def build(settings: Settings | None = None, *, ca_signed: bool | None = None, key_files: bool | None = None,
          history: bool = True):
    """The app for one worker; what is not given comes from the environment (as granian starts it).

    `history=False` only for measuring what the history costs (bench/ocsp.py).
    """
    if settings is None:  # a granian worker: this process's settings (and its own clock guard, below)
        settings = load_settings()
    if ca_signed is None:
        ca_signed = os.environ.get("REVOCA_OCSP_CA_SIGNED") == "1" or settings.ocsp.ca_signed
    if key_files is None:
        key_files = os.environ.get("REVOCA_OCSP_KEY_FILES") == "1"
    engine = make_engine(settings.db_url, pool_pre_ping=True, role=role_for(settings, "ocsp"))
    # statuses are read from the replica when there is one (database_read_url); the query history
    # and any audit record are written to the primary
    reads = engine if settings.read_url == settings.db_url else make_engine(
        settings.read_url, pool_pre_ping=True, role=role_for(settings, "ocsp"))
    keys = ResponderKeys(HSMClient(settings.hsm_socket), keys_dir(settings), passphrase_path(settings))
    responder = Responder(reads, keys, ca_signed=ca_signed, key_files=key_files,
                          time_guard=trusted_time.guard_for(settings),
                          verifier_limit=RateLimiter(settings.ocsp.rate_per_verifier), audit_engine=engine,
                          shared=SharedAnswers.from_environment())
    if reads is not engine:  # bounded staleness: the primary answers while the replica lags (ocsp.status)
        lag = ReplicaLag(engine, reads, max_lag=settings.database_read_max_lag_ms / 1000)
        responder.stored_status = responder.status_source = FreshestStatus(responder.lookups, Lookups(engine), lag)
    responder.warm_up()
    address_limit = RateLimiter(settings.ocsp.rate_per_address)
    if not history:
        return make_app(responder, None, address_limit)
    queries = QueryHistory(engine)
    # what the worker still holds is written as it stops.  A multiprocessing finalizer, not atexit:
    # granian's workers are multiprocessing children that leave through os._exit, which runs only
    # these; gunicorn's leave through sys.exit, whose atexit runs them too (multiprocessing.util
    # registers itself there)
    multiprocessing_util.Finalize(queries, queries.close, exitpriority=10)
    return make_app(responder, queries, address_limit)


_STOPS = frozenset({signal.SIGTERM, signal.SIGINT})
# (read end, write end) of the relay's pipe: this process's, or its parent's before the fork
_relay: tuple[int, int] | None = None
# granian's server object, set by ocsp.server before it serves: a worker, forked from it, finds in
# its copy whether the server's own handler, which the worker runs until granian sets its own,
# took a stop meant for the worker
server: Any = None


def wake_main_thread_on_stop_signals() -> bool:
    """Make sure a SIGTERM or SIGINT stops a granian process (the server or a worker); whether it
    was set up.

    Both wait for their stop in the main thread, on a lock (threading.Event.wait), and stop from
    their Python signal handler.  Two ways that stop was lost, each leaving the server waiting for
    a worker until the service manager killed it (bench/ocsp.py, under load: 30 s, then SIGKILL):
    - a signal sent to the process may be handed by the kernel to any of its threads: landing on
      another one (a Rust thread of granian's, a thread watching a worker) it only marks the
      handler as due, and nothing interrupts the main thread's wait.  Python writes the number of
      every signal it catches to the wakeup fd, on whichever thread: a thread here reads it and
      interrupts the main thread with SIGUSR2, whose handler does nothing, so that the handlers
      due run there;
    - a stop that reaches a worker still starting (the server stopped at once, as a service
      manager may) is taken by the handler it inherited from the server, or, from here on, by one
      of ours until granian sets its own: the same thread sends it again once granian's is set;
    - one that reaches a worker just forked, before Python has reset its signal state there, was
      forgotten with that state (Python clears the signals caught but not yet handled in a new
      child): the server's and granian's (its `terminate()`) alike, as a child may not run for a
      while under load, and the server then waited for that worker for ever.  The server holds
      the stops back across each fork (_hold_stops_across_forks).
    Only from the main thread, and only where nothing else uses the wakeup fd (a worker replaces
    what it inherited)."""
    global _relay
    if threading.current_thread() is not threading.main_thread():
        return False
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    inherited = _relay
    if previous != -1 and (inherited is None or previous != inherited[1]):
        signal.set_wakeup_fd(previous)  # someone else's: theirs again
        os.close(read_end)
        os.close(write_end)
        return False
    if inherited is not None:  # the parent's pipe, whose reader did not survive the fork
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
    else:  # the server, which forks the workers
        _hold_stops_across_forks()
    _relay = (read_end, write_end)
    signal.signal(signal.SIGUSR2, lambda _signum, _frame: None)
    early: list[int] = []

    def take(signum: int, _frame: object) -> None:
        early.append(signum)

    for signum in _STOPS:
        signal.signal(signum, take)
    # only now: a stop the inherited handler took after this look would otherwise be lost
    if getattr(server, "interrupt_signal", False):
        early.append(signal.SIGTERM)
    main = threading.main_thread().ident
    assert main is not None

    def relay() -> None:
        while signal.getsignal(signal.SIGTERM) is take:  # until granian sets its handlers
            time.sleep(0.02)
        if early:
            os.kill(os.getpid(), early[0])
        with contextlib.suppress(OSError):
            while numbers := os.read(read_end, 64):
                if any(n in _STOPS for n in numbers):
                    signal.pthread_kill(main, signal.SIGUSR2)

    threading.Thread(target=relay, name="ocsp-stop-relay", daemon=True).start()
    return True


def _hold_stops_across_forks() -> None:
    """Block SIGTERM and SIGINT in the thread that forks, from before each fork until the child has
    reset Python's signal state (os.register_at_fork's hooks run after it): a stop reaching the new
    worker meanwhile waits in the kernel, then runs the handler it inherited (see above), where it
    is no longer forgotten.  In the server they wait only for the fork itself."""
    held: dict[int, set[int]] = {}  # by forking thread (the child's only one, of the same id): what it blocked

    def hold() -> None:
        held[threading.get_ident()] = set(_STOPS - signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS))

    def release() -> None:
        if blocked := held.pop(threading.get_ident(), None):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)

    os.register_at_fork(before=hold, after_in_parent=release, after_in_child=release)


def __getattr__(name: str) -> object:
    """`app`, built when a server asks for it (importing `build` alone builds nothing): in a granian
    worker's main thread, which then waits for its stop (wake_main_thread_on_stop_signals)."""
    if name == "app":
        wake_main_thread_on_stop_signals()
        globals()["app"] = built = build()
        return built
    raise AttributeError(name)
