"""The key ceremony behind `revoca init`: token, activation shares, hierarchy, in one go.

The activation secret exists only in this process while the ceremony runs: it is split
into shares for the named key managers, the token PINs are derived from it, and it is
dropped.  If anything fails the token is deleted again and the database transaction rolls
back, so a failed ceremony leaves nothing half-made and can simply be run again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Sequence
from pathlib import Path

from ca import audit, hierarchy
from ca.config import Settings
from ca.enums import CAKind, CertKind, Role
from ca.errors import AlreadyExists, InvalidInput, NotFound, TokenError
from ca.hsm import shares as sharing
from ca.hsm import token_for
from ca.hsm.signer import KeyAlgorithm
from ca.officers.credentials import hash_password
from ca.storage.engine import Engine, ensure_current, session_scope
from ca.storage.models import CertificateAuthority
from ca.storage.store import Store
from ca.subscribers import generate_subscribers
from ca.trusted_time import ClockGuard, guard_for

DEMO_WARNING = (
    "# DEMO ONLY - NEVER USE IN PRODUCTION.\n"
    "# `revoca init --demo` wrote this activation share to disk so that `make run` can activate\n"
    "# the HSM by itself. In production each share is handed to one key manager and never stored.\n"
)


@dataclasses.dataclass(frozen=True, slots=True)
class CeremonyResult:
    shares: tuple[tuple[str, sharing.Share], ...]  # (key manager, share)
    cas: tuple[str, ...]
    demo_files: tuple[Path, ...] = ()


def is_initialized(settings: Settings, engine: Engine) -> bool:
    ensure_current(engine)  # one query when the schema is current: no Alembic import
    with session_scope(engine) as session:
        try:
            Store(session).active_share_set(settings.hsm.token_label)
        except NotFound:
            return False
    return True


def _demo_key_managers(store: Store, count: int, now: dt.datetime, out_dir: Path) -> list[str]:
    """Key-manager operators for the demo, their passwords written beside the demo shares."""
    names = []
    for i in range(1, count + 1):
        name = f"keymanager{i}"
        try:
            store.operator(name)
        except NotFound:
            password = secrets.token_urlsafe(18)
            store.add_operator(name=name, display_name=f"Demo key manager {i}",
                               credential_hash=hash_password(password), roles=[Role.KEY_MANAGER], now=now,
                               made_at_ceremony=True)
            _write_private(out_dir / f"{name}.password", DEMO_WARNING + password + "\n")
        names.append(name)
    return names


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(text, encoding="utf-8")


DEMO_SUBSCRIBERS_PER_CA = 25


def _demo_subscribers(ctx: hierarchy.Context, cas: list[CertificateAuthority], count: int) -> None:
    """A few subscriber certificates per regional CA, so the demo has something to revoke."""
    for ca in cas:
        key = ctx.store.current_key(ca)
        issuer = hierarchy.issuer_for(ctx.keys, ca, key)
        for cert, _private in generate_subscribers(issuer, count, now=ctx.now, time_guard=ctx.time_guard):
            ctx.store.add_certificate(cert, kind=CertKind.SUBSCRIBER, issuer_key=key, now=ctx.now)


@dataclasses.dataclass(frozen=True)
class FirstOfficer:
    """An officer the key ceremony registers (issue 13): after it, adding anyone needs two people
    who are already officers, so the first ones can only come from here."""

    name: str
    roles: tuple[Role, ...]
    credential_hash: str
    display_name: str = ""


def run(settings: Settings, engine: Engine, *, key_managers: list[str] | None = None, demo: bool = False,
        now: dt.datetime | None = None, actor: str = "ceremony",
        demo_subscribers: int = DEMO_SUBSCRIBERS_PER_CA, adopt_user_pin: str | None = None,
        officers: Sequence[FirstOfficer] = (), time_guard: ClockGuard | None = None) -> CeremonyResult:
    """The key ceremony.  With `adopt_user_pin` (issue 14, ca.adoption) the token [hsm] token_label is
    the previous system's, with its keys: its user PIN, given once here, is replaced by the one
    derived from the new activation secret (C_SetPIN), so that the token opens only when M key
    managers combine their shares; no CA is built (each is adopted with `revoca ca adopt`).  Its SO
    PIN stays the previous system's (in the CA administrator's custody, seed 004 5.2.1 (1)).
    `time_guard`: the caller's clock check (ca.trusted_time); None makes one for `settings`."""
    now = now or dt.datetime.now(dt.UTC)
    if is_initialized(settings, engine):
        raise AlreadyExists(f"revoca is already initialised (token {settings.hsm.token_label!r} has a share set)")
    token = token_for(settings)
    if adopt_user_pin is not None:
        if not token.exists():
            raise NotFound(f"no token labelled {settings.hsm.token_label!r} to take over in {settings.hsm.module}")
    elif not settings.hsm.is_softhsm:
        raise TokenError("initialising a hardware token is done with its vendor's tools first; "
                         "revoca init currently supports the SoftHSM2 module only")
    elif token.exists():
        raise AlreadyExists(
            f"token {settings.hsm.token_label!r} exists but the database has no share set for it; "
            f"delete it (softhsm2-util --delete-token --token {settings.hsm.token_label}) or use another label")
    n, m = settings.hsm.shares, settings.hsm.threshold
    secret = sharing.new_secret()
    if adopt_user_pin is None:
        token.initialize_softhsm(so_pin=sharing.so_pin(secret), user_pin=sharing.user_pin(secret))
    else:
        token.change_user_pin(adopt_user_pin, sharing.user_pin(secret))
    session_tok = None
    try:
        with session_scope(engine) as session:
            store = Store(session)
            for officer in officers:  # the first officers (issue 13): made here, before anyone could approve
                store.add_operator(name=officer.name, display_name=officer.display_name,
                                   credential_hash=officer.credential_hash, roles=officer.roles, now=now,
                                   made_at_ceremony=True)
            if demo:
                names = _demo_key_managers(store, n, now, settings.demo_shares_dir)
            else:
                names = list(key_managers or [])
            if len(names) != n or len(set(names)) != n:
                raise InvalidInput(f"name exactly {n} different key managers (hsm.shares = {n}); got {len(set(names))}")
            holders = [store.operator(name) for name in names]
            for op in holders:
                if Role.KEY_MANAGER not in op.role_set:
                    raise InvalidInput(f"operator {op.name} does not hold the key-manager role")
                # the ceremony hands each one a share in person: each counts as a person of its own
                # in acts of several people from now on (ca.officers.approval)
                store.mark_made_at_ceremony(op, now)
            share_set = store.add_share_set(token_label=settings.hsm.token_label, threshold=m, total=n, now=now)
            shares = sharing.split(secret, set_id=share_set.id, threshold=m, total=n)
            for share, op in zip(shares, holders, strict=True):
                store.add_share_holder(share_set, index=share.index, operator=op, digest=share.digest())
            audit.record(session, "hsm.ceremony", actor=actor, token=settings.hsm.token_label, threshold=m,
                         total=n, holders=names, token_taken_over=adopt_user_pin is not None)
            session_tok = token.open(sharing.user_pin(secret))
            ctx = hierarchy.Context(store=store, keys=session_tok, now=now, actor=actor,
                                    time_guard=time_guard or guard_for(settings),
                                    algorithm=KeyAlgorithm(settings.hsm.key_algorithm),
                                    responder_algorithm=KeyAlgorithm(settings.ocsp.responder_algorithm))
            made = [] if adopt_user_pin is not None else hierarchy.build(ctx, settings)
            if demo:
                _demo_subscribers(ctx, [c for c in made if c.kind is CAKind.REGIONAL], demo_subscribers)
    except BaseException:
        if session_tok is not None:
            session_tok.close()
        if adopt_user_pin is None:
            token.delete_softhsm()
        else:  # the token goes back to its own PIN: nothing of the ceremony stayed
            token.change_user_pin(sharing.user_pin(secret), adopt_user_pin)
        raise
    session_tok.close()
    secret = b""
    pairs = tuple(zip(names, shares, strict=True))
    files: list[Path] = []
    if demo:
        for name, share in pairs:
            path = settings.demo_shares_dir / f"share-{share.index}-{name}.txt"
            _write_private(path, DEMO_WARNING + share.encode() + "\n")
            files.append(path)
    return CeremonyResult(shares=pairs, cas=tuple(c.name for c in made), demo_files=tuple(files))


def read_share_file(path: Path) -> str:
    """The share in a file, skipping '#' comment lines (the demo warning)."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(body) != 1:
        raise InvalidInput(f"{path}: expected exactly one share line")
    return body[0]


def demo_key_managers(settings: Settings) -> list[tuple[str, str]]:
    """(name, password) of the demo key managers whose DEMO ONLY password files `revoca init --demo`
    wrote beside the shares, in name order: `revoca run` opens the HSM service's ceremony session
    with them to issue the demo's certificates, as key managers would (ca.hsm.sessions)."""
    return [(path.name.removesuffix(".password"), read_share_file(path))
            for path in sorted(settings.demo_shares_dir.glob("keymanager*.password"))]
