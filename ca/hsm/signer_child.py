"""One signing process of the HSM service's pool (ca.hsm.pool): `python -m ca.hsm.signer_child PPID`.

Why a process and not a thread: python-pkcs11 (0.10) calls C_Initialize(NULL), which tells the
module the application will not call it from several threads, so SoftHSM2 drops its locks and
two sessions signing at once in one process fail.  Separate processes each initialise the
module for themselves and sign in parallel.

The child learns nothing from its command line or environment but the parent's pid: the token's
module, label, SoftHSM2 configuration and the user PIN come as the first line on standard input
(a pipe from the service, never argv or the environment), the PIN is dropped once the token is
open.  It then answers one JSON request per line (`sign` or `sign_digest`, as in ca.hsm.protocol)
with one reply per line on standard output.  It signs whatever it is given: the service judged
the bytes (ca.hsm.policy), audits and counts them (ca.hsm.ledger) before and after.

It dies with the service: the kernel sends it SIGKILL when the thread that started it ends
(PR_SET_PDEATHSIG), and it leaves when its standard input closes (deactivation, the service's
stop).  Ctrl-C at the service's terminal and the SIGTERM a service manager sends the service's
whole process group (systemd's control group, `revoca run`'s killpg) are the service's to handle,
so both are ignored here: the service closes its pool when it stops.  Found: a child dying of that
SIGTERM failed the signature it was making, and the pool started replacements while the service
stopped.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import pkcs11

from ca.errors import InvalidInput, RevocaError, TokenError
from ca.hsm import protocol
from ca.hsm.token import Token, TokenSession

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """SIGKILL when the parent goes; if it went before prctl took effect, go now."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def answer(session: TokenSession, request: dict[str, Any]) -> dict[str, Any]:
    """One request's reply: the signature, or the error as the service's clients see it."""
    try:
        label, hash_name = str(request.get("label")), request.get("hash")
        if request.get("op") == "sign":
            sig = session.sign(label, base64.b64decode(str(request.get("data", ""))), hash_name)
        elif request.get("op") == "sign_digest":
            sig = session.signer(label, hash_name=hash_name).sign_digest(
                base64.b64decode(str(request.get("digest", ""))))
        else:
            raise InvalidInput(f"a signing process signs, it does not {request.get('op')!r:.40}")
    except RevocaError as exc:
        return protocol.error_reply(exc)
    return {"ok": True, "signature": base64.b64encode(sig).decode()}


def _open(token: Token, pin: str, attempts: int = 5) -> TokenSession:
    """Log in; again after a moment when SoftHSM2 fails to read its token while another process
    (a sibling starting at the same time) does (C_GetTokenInfo gives CKR_GENERAL_ERROR then)."""
    for attempt in range(1, attempts + 1):
        try:
            return token.open(pin)
        except pkcs11.PKCS11Error as exc:
            if attempt == attempts:
                raise TokenError(f"token {token.label!r} could not be read: {type(exc).__name__}") from exc
        except TokenError as exc:
            if "refused" in str(exc) or attempt == attempts:  # a wrong PIN stays wrong
                raise
        time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    opening = json.loads(stdin.readline(protocol.MAX_LINE + 1) or b"{}")
    conf = opening.get("softhsm_conf")
    token = Token(str(opening.get("module")), str(opening.get("label")), softhsm_conf=Path(conf) if conf else None)
    try:
        session = _open(token, str(opening.pop("pin", "")))
    except RevocaError as exc:
        stdout.write(protocol.encode(protocol.error_reply(exc)))
        stdout.flush()
        return 1
    del opening
    stdout.write(protocol.encode({"ok": True, "ready": True, "pid": os.getpid()}))
    stdout.flush()
    try:
        for line in iter(lambda: stdin.readline(protocol.MAX_LINE + 1), b""):
            stdout.write(protocol.encode(answer(session, protocol.decode(line))))
            stdout.flush()
    finally:
        session.close()
    return 0


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with(int(sys.argv[1]))
    return serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main())
