"""The test installations' CA officers: one standard cast, and their logins for `revoca`.

Every CLI command that changes state or shows personal data is run by operators who log in
(ca.cli.gate, with the roles ca.cli.acts names).  The cast holds one officer per trusted role of
seed 004 5.2.1, two senior operators (5.2.2: they work in pairs), and the key managers the demo
key ceremony made (their passwords are in the demo password files beside the shares).

`add_officers` puts the cast into an installation; support.installation does it in every
ceremony template, so each copied installation (`initialized`, `demo_installation`, `demo_cli`)
has it already.  `Cast.login(*names)` gives the `--operator` arguments and the password lines
for standard input; `Cast.for_command(argv)` picks people for a command from its row in
ca.cli.acts, for tests whose subject is what the command does rather than who may run it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa

from ca.cli.acts import ACTS
from ca.enums import Role
from ca.officers.credentials import MIN_LENGTH
from ca.storage.engine import session_scope
from ca.storage.store import Store

R = Role
# name -> roles; passwords are f"{name} password" (ca.officers.credentials wants 10 characters or more)
STANDARD: dict[str, tuple[Role, ...]] = {
    "cast-senior1": (R.SENIOR_OPERATOR,),
    "cast-senior2": (R.SENIOR_OPERATOR,),
    "cast-operator": (R.OPERATOR,),
    "cast-admin": (R.CA_ADMINISTRATOR,),
    "cast-auditor": (R.INTERNAL_AUDITOR,),
    "cast-receptionist": (R.RECEPTIONIST,),
    "cast-reviewer": (R.REVIEWER,),
    "cast-approver": (R.APPROVER,),
}
KEY_MANAGERS = ("keymanager1", "keymanager2", "keymanager3")  # made by the demo ceremony (ca.ceremony)
THRESHOLD = 2  # the demo share set: 2 of 3


def password_of(name: str) -> str:
    return f"{name} password"


@functools.lru_cache
def cheap_hash(password: str) -> str:
    """A cheap scrypt hash: a stored hash carries its own cost (as one made under older parameters
    would), and the product's (~100 ms a login) would make the tests' hundreds of logins cost
    minutes.  ca.officers.credentials still checks it, and the length rule still holds.  For
    accounts a test sets up, and in the guides' test (tests/e2e/test_docs.py) for the accounts
    the guides made, once `init` and `operator add` have run as written; what the product hashes
    itself keeps its own cost, and tests/integration/isolation/test_login_cost.py counts the
    scrypt runs."""
    if len(password) < MIN_LENGTH:  # what the product refuses
        raise ValueError(f"password too short: at least {MIN_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**4, r=8, p=1, dklen=32)
    return f"scrypt${2**4}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


class Login(NamedTuple):
    """What a command line needs for its logins: `--operator NAME` per person, and their
    passwords, one line each, before anything the command itself reads from standard input."""

    args: tuple[str, ...]
    stdin: str

    def into(self, argv: Sequence[str], stdin: str | None = None) -> tuple[list[str], str]:
        """`argv` (a `revoca` command line, without `revoca`) with the logins after the command's
        path, and the passwords before `stdin`."""
        at = command_length(argv)
        return [*argv[:at], *self.args, *argv[at:]], self.stdin + (stdin or "")


NO_LOGIN = Login((), "")


def command_length(argv: Sequence[str]) -> int:
    """How many leading words of `argv` (global options included) name the command."""
    start = 2 if argv[:1] == ["--config"] else 0
    words = list(argv[start:start + 2])
    if len(words) == 2 and " ".join(words) in ACTS:
        return start + 2
    return start + 1


def path_of(argv: Sequence[str]) -> str:
    start = 2 if argv[:1] == ["--config"] else 0
    return " ".join(argv[start:command_length(argv)])


@dataclasses.dataclass(frozen=True)
class Cast:
    """Who the installation's officers are: name -> roles; key managers' passwords from `shares_dir`."""

    roles: dict[str, tuple[Role, ...]]
    shares_dir: Path | None = None
    threshold: int = THRESHOLD

    def password(self, name: str) -> str:
        if name in KEY_MANAGERS and name not in STANDARD:
            if self.shares_dir is None:
                raise AssertionError(f"{name}: the cast was made without the demo shares directory")
            return (self.shares_dir / f"{name}.password").read_text(encoding="utf-8").splitlines()[-1]
        return password_of(name)

    def login(self, *names: str) -> Login:
        return Login(tuple(a for name in names for a in ("--operator", name)),
                     "".join(self.password(name) + "\n" for name in names))

    def people_for(self, path: str) -> tuple[str, ...]:
        """Different officers of the cast who together fill the act's slots (first come, first taken)."""
        act = ACTS[path]
        if not act.needs_login:
            return ()
        chosen: list[str] = []
        slots = list(act.people) + [frozenset({Role.KEY_MANAGER})] * (self.threshold if act.key_managers else 0)
        for slot in sorted(slots, key=len):  # the narrowest slots first
            name = next((n for n, held in self.roles.items() if n not in chosen and slot & set(held)), None)
            if name is None:
                raise AssertionError(f"the cast has no one left for {sorted(slot)} in `revoca {path}`")
            chosen.append(name)
        return tuple(chosen)

    def for_command(self, argv: Sequence[str]) -> Login:
        """The logins `revoca ARGV` needs (none for commands without a login)."""
        path = path_of(argv)
        return self.login(*self.people_for(path)) if path in ACTS else NO_LOGIN


def standard_cast(shares_dir: Path | None = None) -> Cast:
    """The cast `add_officers` makes (and the ceremony's key managers, with `shares_dir`)."""
    roles = dict(STANDARD)
    if shares_dir is not None:
        roles.update({name: (R.KEY_MANAGER,) for name in KEY_MANAGERS})
    return Cast(roles, shares_dir)


def add_officers(engine: sa.Engine, shares_dir: Path | None = None, *, now: dt.datetime | None = None) -> Cast:
    """The standard cast into `engine`'s installation, as the first officers of its key ceremony;
    `shares_dir` (settings.demo_shares_dir) is where the demo ceremony wrote its key managers' passwords."""
    now = now or dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        store = Store(session)
        for name, roles in STANDARD.items():
            store.add_operator(name=name, display_name=name.replace("cast-", "Cast ").title(),
                               credential_hash=cheap_hash(password_of(name)), roles=roles, now=now,
                               made_at_ceremony=True)
        if shares_dir is not None:  # the ceremony's key managers: the same passwords, hashed cheaply as above
            for name in KEY_MANAGERS:
                password = (shares_dir / f"{name}.password").read_text(encoding="utf-8").splitlines()[-1]
                store.set_password(store.operator(name), cheap_hash(password), now)
    return standard_cast(shares_dir)


def add_account(engine: sa.Engine, name: str, *roles: Role, approved: bool = True) -> None:
    """One more officer, password `password_of(name)`; `approved=False`: an account one person made
    alone, which counts for acts of one person only (ca.officers.approval)."""
    with session_scope(engine) as session:
        Store(session).add_operator(name=name, display_name=name, credential_hash=cheap_hash(password_of(name)),
                                    roles=roles, now=dt.datetime.now(dt.UTC), made_at_ceremony=approved)
