"""The HSM service's signing processes: N children, each with a token session of its own.

One process signs through one PKCS#11 session at a time (ca.hsm.signer_child says why), so the
service's routine signatures (OCSP responses, lists, receipts, time stamps) queued behind one
lock.  With `[hsm] signer_processes` = N > 1 the activated service starts N children
(ca.hsm.signer_child) and hands each request to an idle one; the parent keeps everything that
judges and records: the caller's identity, the policy check, the ceremony sessions, the audit
and the signature ledger.  A child only signs bytes already judged.

The user PIN goes to each child over its standard input, never argv or the environment; the
pool keeps it while activated so that a child that died can be replaced (the parent holds the
logged-in token anyway).  Children are started by one thread of the pool that lives as long as
the pool, since PR_SET_PDEATHSIG fires when the *thread* that started a child ends; they stop at
deactivation (close) and die with the service.

When no child is ready (starting, or all lost at once), `sign` returns None and the caller signs
in its own session, as with one process: a request is never refused for want of a child.
"""

from __future__ import annotations

import base64
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any

from ca.hsm import protocol
from ca.hsm.token import Token

log = logging.getLogger("revoca.hsm")

# how long a request waits for an idle child before the service signs it itself
WAIT = 30.0
# consecutive failed starts after which the pool stops trying (a wrong PIN, a broken module)
MAX_FAILED_STARTS = 3
# environment a child keeps (nothing secret: SoftHSM2's conf path, where Python finds revoca)
_ENV = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "SOFTHSM2_CONF", "VIRTUAL_ENV")


class _Child:
    """One signing process and its pipes; used by one request at a time."""

    def __init__(self, proc: subprocess.Popen[bytes], generation: int) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.generation = generation

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(protocol.encode(message))
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline(protocol.MAX_LINE + 1)
        if not line:
            raise ConnectionError(f"signing process {self.pid} ended")
        return protocol.decode(line)

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def stop(self, timeout: float = 2.0) -> None:
        """Close its input (it leaves when idle), then kill it if it has not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class SignerPool:
    """`size` signing processes for an activated token; `sign`/`sign_digest` hand a request to one."""

    def __init__(self, token: Token, pin: str, size: int) -> None:
        self.size = size
        self._token = token
        self._pin = pin
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._children: dict[int, _Child] = {}
        self._lock = threading.Lock()
        self._generation = 0
        self._closed = False
        self._failed_starts = 0
        self._starting: subprocess.Popen[bytes] | None = None  # the child being started (close kills it)
        self.signed = 0  # signatures the children made (tests, the bench)
        self._wanted: queue.Queue[bool | None] = queue.Queue()  # "top up to size", or None: stop
        self._spawner = threading.Thread(target=self._spawn_loop, name="hsm-signer-pool", daemon=True)
        self._spawner.start()
        self._wanted.put(True)

    # --- what the service calls
    def sign(self, label: str, data: bytes, hash_name: str | None) -> bytes | None:
        """The signature a child made, or None when no child could sign it (sign it yourself)."""
        return self._call({"op": "sign", "label": label, "data": base64.b64encode(data).decode(),
                           **({"hash": hash_name} if hash_name else {})})

    def sign_digest(self, label: str, digest: bytes, hash_name: str | None) -> bytes | None:
        return self._call({"op": "sign_digest", "label": label, "digest": base64.b64encode(digest).decode(),
                           **({"hash": hash_name} if hash_name else {})})

    def pids(self) -> list[int]:
        """The running children (for `revoca hsm status`-like reports and tests)."""
        with self._lock:
            return sorted(self._children)

    def ready(self) -> int:
        with self._lock:
            return len(self._children)

    def alive(self) -> int:
        """The children running now, for `revoca hsm status`: one that died counts no more, even
        before the pool notices it (every half second) and starts another."""
        with self._lock:
            return sum(1 for c in self._children.values() if c.proc.poll() is None)

    @property
    def given_up(self) -> bool:
        """True once MAX_FAILED_STARTS starts in a row failed: no more are tried (`revoca status` says so)."""
        return self._failed_starts >= MAX_FAILED_STARTS

    def wait_ready(self, timeout: float = 30.0) -> bool:
        """Until all `size` children run (tests, the bench); False when that did not happen in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self._children) >= self.size or self._closed or self._failed_starts >= MAX_FAILED_STARTS:
                    return len(self._children) >= self.size
            time.sleep(0.05)
        return False

    def renew(self) -> None:
        """Replace every child (after a key was made, relabelled or destroyed: a child keeps the
        keys it found).  Idle ones go now, busy ones when their request is done."""
        with self._lock:
            self._generation += 1
            old = list(self._children.values())
            self._children.clear()
        self._drain_idle()
        if old:
            self._wanted.put(True)

    def close(self) -> None:
        """Stop every child (deactivation, service stop) and forget the PIN.

        Prompt even while the pool is starting children: no other is started once closing, and
        one being started is killed rather than waited for.  Found: a service stop sends SIGTERM
        to the service's whole process group, children included; the pool started replacements
        one after the other, each waited for until it was logged in, and close() waited up to
        10 s for that."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pin = ""
            children = list(self._children.values())
            self._children.clear()
            starting = self._starting
        self._wanted.put(None)
        if starting is not None:
            starting.kill()  # its `ready` line never comes: the spawner sees the end of its output
        self._drain_idle()
        for child in children:
            child.stop()
        self._spawner.join(timeout=10)

    # --- dispatch
    def _call(self, message: dict[str, Any]) -> bytes | None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.ready() == 0:
                return None
            try:
                child = self._idle.get(timeout=0.2)
            except queue.Empty:
                continue
            if not self._current(child):
                child.stop()
                continue
            try:
                reply = child.call(message)
            except (OSError, ValueError) as exc:  # ended (killed, crashed) or spoke nonsense
                self._lost(child, exc)
                continue
            self._release(child)
            signature = base64.b64decode(protocol.raise_for(reply)["signature"])
            with self._lock:
                self.signed += 1
            return signature
        return None

    def _current(self, child: _Child) -> bool:
        with self._lock:
            return not self._closed and self._children.get(child.pid) is child

    def _release(self, child: _Child) -> None:
        if self._current(child):
            self._idle.put(child)
        else:  # renewed or closed while it signed
            child.stop()

    def _lost(self, child: _Child, why: Exception) -> None:
        with self._lock:
            replace = self._children.pop(child.pid, None) is child and not self._closed
        child.proc.kill()
        child.stop()
        log.warning("signing process %d lost (%s: %s); %s", child.pid, type(why).__name__, why,
                    "starting another" if replace else "not replaced")
        if replace:
            self._wanted.put(True)

    def _drain_idle(self) -> None:
        while True:
            try:
                child = self._idle.get_nowait()
            except queue.Empty:
                return
            if not self._current(child):
                child.stop()
            else:
                self._idle.put(child)
                return

    # --- starting children (this thread only: PR_SET_PDEATHSIG is per starting thread)
    def _spawn_loop(self) -> None:
        while True:
            try:
                if self._wanted.get(timeout=0.5) is None:
                    return
            except queue.Empty:  # every half second: has a child died while idle?
                pass
            if self._closed or self._failed_starts >= MAX_FAILED_STARTS:
                continue
            self._reap()
            with self._lock:
                generation = self._generation
                missing = self.size - len(self._children)
            # one after the other: SoftHSM2 rewrites its token file at login, and a sibling
            # reading it at that moment does not find the token
            for _ in range(missing):
                proc = self._start(generation)
                if proc is None:  # closing: no more children
                    break
                self._admit(proc, generation)

    def _reap(self) -> None:
        """Forget children that ended (killed, crashed) so that others take their place."""
        with self._lock:
            dead = [c for c in self._children.values() if c.proc.poll() is not None]
            for child in dead:
                del self._children[child.pid]
        for child in dead:
            log.warning("signing process %d ended (exit status %s); starting another", child.pid, child.proc.returncode)
            child.stop()

    def _start(self, generation: int) -> subprocess.Popen[bytes] | None:
        """A new child, given the opening line; None once the pool is closing."""
        with self._lock:
            if self._closed:
                return None
            pin = self._pin
        env = {k: v for k, v in os.environ.items() if k in _ENV}
        proc = subprocess.Popen([sys.executable, "-m", "ca.hsm.signer_child", str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        with self._lock:
            self._starting = proc
            closing = self._closed
        if closing:  # close() came meanwhile and did not see this one
            proc.kill()
            return proc  # _admit reads its end and forgets it
        conf = self._token.softhsm_conf
        opening = {"module": self._token.module, "label": self._token.label,
                   "softhsm_conf": str(conf.resolve()) if conf else None, "pin": pin}
        del pin
        assert proc.stdin is not None
        try:
            proc.stdin.write(protocol.encode(opening))
            proc.stdin.flush()
        except OSError:
            pass  # it died at once: _admit sees no `ready`
        return proc

    def _admit(self, proc: subprocess.Popen[bytes], generation: int) -> None:
        child = _Child(proc, generation)
        try:
            hello = protocol.raise_for(child.receive())
            if not hello.get("ready"):
                raise ConnectionError("no ready line")
        except Exception as exc:  # noqa: BLE001  -- any failure to start is logged and counted
            child.proc.kill()
            child.stop()
            with self._lock:
                self._starting = None
                closing = self._closed
            if closing:  # killed by close(): not a failed start
                return
            self._failed_starts += 1
            log.error("signing process %d did not start (%s: %s)%s", child.pid, type(exc).__name__, exc,
                      "; signing in the service itself from now on"
                      if self._failed_starts >= MAX_FAILED_STARTS else "; trying again")
            if self._failed_starts < MAX_FAILED_STARTS:
                self._wanted.put(True)
            return
        with self._lock:
            self._starting = None
            if self._closed or generation != self._generation:
                admitted = False
            else:
                self._children[child.pid] = child
                self._failed_starts = 0
                admitted = True
        if admitted:
            self._idle.put(child)
        else:
            child.stop()
