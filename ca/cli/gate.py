"""The login gate: before a command runs, the people its row in ca.cli.acts names log in.

Every command is wrapped when its module is loaded (ca.cli.LazyGroup), so no command can forget
its login: one `--operator NAME` per person, passwords read afterwards in the same order (from
the terminal without echo, or one line each from stdin), never from argv or the environment.
Each login is audited, good or bad; an admitted act is audited with its command and people, and
a refused one with why.  The command then finds the people in `app.operators`.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from ca.cli.acts import ACTS, Act, Admission, who
from ca.cli.common import App, read_secret
from ca.enums import Role
from ca.errors import PermissionDenied

_GUARDED = "_revoca_gate"
# Commands that still read `--operator` and check passwords themselves.
# TODO(issue 13): converted to app.operators one by one; then this goes.
_OWN_LOGIN = frozenset({"operator", "operators", "operator_name"})


def guard_tree(command: click.Command, path: str) -> None:
    """Wrap every command under `command` (itself included when it is not a group)."""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            guard_tree(sub, f"{path} {name}")
    else:
        guard(command, path)


def guard(command: click.Command, path: str) -> None:
    if getattr(command, _GUARDED, False):
        return
    act = ACTS.get(path)
    if act is None:  # fail closed: a command nobody classified cannot run
        raise RuntimeError(f"`revoca {path}` has no row in ca.cli.acts; add one before it can run")
    # Admission.HSM: the command sends the people's passwords to the HSM service, which checks them
    own_login = act.admission is Admission.HSM or any(p.name in _OWN_LOGIN for p in command.params)
    # NOBODY takes the option too: whoever names themself is refused for the act, not for a typo
    if (act.needs_login or act.admission is Admission.NOBODY) and not own_login:
        command.params.append(click.Option(
            ["--operator", "logins"], multiple=True, metavar="NAME",
            help=f"Who does this: {describe(act)}.  Repeat for each person; their passwords are "
                 "asked for in the same order (or read one per line from stdin)." if act.needs_login else
                 "No role may run this, whoever logs in: the attempt is refused and audited."))
    original = command.callback
    assert original is not None

    @functools.wraps(original)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        logins: tuple[str, ...] = kwargs.pop("logins", ())
        app = click.get_current_context().find_object(App)
        assert app is not None
        if not own_login:
            app.operators = admit(app, path, act, logins)
        return original(*args, **kwargs)

    command.callback = guarded
    setattr(command, _GUARDED, True)


def admit(app: App, path: str, act: Act, logins: Sequence[str]) -> tuple[str, ...]:
    """The people admitted for `act` (empty when it needs none); PermissionDenied otherwise."""
    if act.admission is Admission.NOBODY:
        _refuse(app, path, logins, f"no role may run it: {act.why}")
    if not act.needs_login:
        return ()
    slots = list(act.people)
    if act.key_managers:
        slots += [frozenset({Role.KEY_MANAGER})] * _threshold(app)
    if not logins:
        raise PermissionDenied(f"`revoca {path}` needs {_people(slots)}: give --operator NAME for each "
                               "(passwords are then asked for in the same order)")
    if len(set(logins)) != len(logins):
        _refuse(app, path, logins, "the same operator cannot count as two people")
    if len(logins) != len(slots):
        _refuse(app, path, logins, f"this act needs {_people(slots)}; {len(logins)} logged in")
    passwords: dict[str, str] = {}
    holders = {name: _login(app, name, act, people=len(slots), keep=passwords) for name in logins}
    if not match(slots, [holders[name] for name in logins]):
        held = ", ".join(f"{n} ({'/'.join(sorted(holders[n])) or 'no role'})" for n in logins)
        _refuse(app, path, logins, f"this act needs {_people(slots)}; logged in: {held}")
    if act.key_managers:  # the HSM service checks them again to open the act's ceremony session
        app.key_managers = tuple((name, passwords[name]) for name in
                                 key_manager_slots(slots, [holders[name] for name in logins], logins,
                                                   first=len(act.people)))
    _record(app, "cli.act", logins, command=path, personal_data=act.personal_data)
    return tuple(logins)


def key_manager_slots(slots: Sequence[frozenset[Role]], held: Sequence[frozenset[Role]],
                      logins: Sequence[str], *, first: int) -> tuple[str, ...]:
    """The people who fill the key-manager slots (`slots[first:]`, which admit appends after the
    act's own people) in an order that `match` accepts: they open the HSM service's ceremony
    session (ca.hsm.sessions); the others (a senior operator beside them) do not."""
    for order in itertools.permutations(range(len(slots))):
        if all(slots[i] & roles for i, roles in zip(order, held, strict=True)):
            return tuple(name for name, i in zip(logins, order, strict=True) if i >= first)
    return ()


def match(slots: Sequence[frozenset[Role]], held: Sequence[frozenset[Role]]) -> bool:
    """Whether each person can take a different slot whose roles they hold (len(slots) == len(held);
    acts need a handful of people, so trying every order is cheap)."""
    return len(slots) == len(held) and any(
        all(slot & roles for slot, roles in zip(order, held, strict=True))
        for order in itertools.permutations(slots))


def describe(act: Act) -> str:
    """Who an act needs, as the `--operator` help and docs/roles.md say it."""
    people, count = who(act)
    threshold = ", M = the activation threshold" if act.key_managers else ""
    return f"{people} ({count} {'person' if count == '1' else 'different people'}{threshold})"


def _people(slots: Sequence[frozenset[Role] | str]) -> str:
    parts: list[str] = []
    for slot in slots:
        if isinstance(slot, str):
            parts.append(slot)
        else:
            parts.append(" or ".join(sorted(r.value for r in slot)))
    counted = [f"{n} × {part}" if n > 1 else part
               for part, n in ((p, parts.count(p)) for p in dict.fromkeys(parts))]
    people = len(parts)
    return f"{people} different {'person' if people == 1 else 'people'} ({'; '.join(counted)})"


def _threshold(app: App) -> int:
    from ca.storage.engine import session_scope
    from ca.storage.store import ReadStore

    with session_scope(app.engine, readonly=True) as session:
        return ReadStore(session).active_share_set(app.settings.hsm.token_label).threshold


def _login(app: App, name: str, act: Act, *, people: int, keep: dict[str, str]) -> frozenset[Role]:
    """One person's password (one scrypt whatever happens, kept in `keep` for the HSM service's
    ceremony session of an act of key managers); their roles.  Audited either way.

    The account must count for an act of `people` people (ca.officers.approval: approved by a
    second person or made at the key ceremony, when it needs two or more), and its password must be
    younger than [operators] max_password_age_days unless the act sets a new one; a password
    within warn_days of that age gets one warning line on stderr."""
    import datetime as dt

    from ca import audit
    from ca.officers import approval, passwords
    from ca.storage.engine import session_scope
    from ca.storage.store import ReadStore

    password = read_secret(f"Password for {name}")
    policy, now = app.settings.operators.password_policy, dt.datetime.now(dt.UTC)
    try:
        with session_scope(app.engine, readonly=True) as session:
            op = ReadStore(session).verify_login(name, password, policy=policy, now=now,
                                                 allow_expired=act.allows_expired_password)
            approval.check_counts(name, approved=op.approved, people=people)
            roles = op.role_set
            age = passwords.password_age(name, op.password_set_at, now=now, policy=policy)
    except PermissionDenied as exc:
        audit.record_failure(app.engine, "operator.login", actor=name, error=str(exc), channel="cli")
        raise
    with session_scope(app.engine) as session:
        audit.record(session, "operator.login", actor=name, channel="cli")
    keep[name] = password
    if age.state is passwords.PasswordState.EXPIRING and not act.allows_expired_password:
        click.echo(f"revoca: warning: {age.warning()}", err=True)
    return roles


def _refuse(app: App, path: str, logins: Sequence[str], why: str) -> NoReturn:
    from ca import audit

    audit.record_failure(app.engine, "cli.act", actor="+".join(logins) or "(no login)", error=why, command=path)
    raise PermissionDenied(f"`revoca {path}`: {why}")


def _record(app: App, event: str, logins: Sequence[str], **detail: Any) -> None:
    from ca import audit
    from ca.storage.engine import session_scope

    with session_scope(app.engine) as session:
        audit.record(session, event, actor="+".join(logins), **detail)

