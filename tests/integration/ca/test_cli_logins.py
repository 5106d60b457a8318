"""Every `revoca` command against its row in ca.cli.acts (docs/roles.md), through the real
command tree and one real installation (SQLite, the demo ceremony, the officers of support.officers).

For each command that needs operators: without a login it is refused (exit 8) naming who is
needed, and nothing is written; a person in the wrong role is refused; the right people pass the
gate (its `cli.act` success record), whatever the command then makes of the sample arguments it
is given.  For an act of two or more people: one operator named twice is refused, and so is one
person with several accounts that nobody approved.  A command that no role may run is refused
even to an operator who holds every role.  Passwords are cheap scrypt hashes (support.officers)
and the commands run in this process, so the whole walk takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import sqlalchemy as sa

from ca.cli import MODULES, cli
from ca.cli.acts import ACTS, Act, Admission
from ca.enums import Role
from ca.storage.audit import AuditReads
from ca.storage.engine import session_scope

from support.installation import CeremonyTemplates, Installation, demo_installation
from support.officers import THRESHOLD, Cast, Login, add_account, standard_cast
from support.tools import revoca

LOGGED_IN = sorted(path for path, act in ACTS.items() if act.needs_login)
SEVERAL = sorted(path for path in LOGGED_IN
                 if len(ACTS[path].people) + (THRESHOLD if ACTS[path].key_managers else 0) > 1)
NOBODY = sorted(path for path, act in ACTS.items() if act.admission is Admission.NOBODY)
OMNIPOTENT = "cast-everything"  # holds every role, approved: still refused what no role may do


def _leaves(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _leaves(sub, f"{path} {name}")
    else:
        yield path, command


@pytest.fixture(scope="module")
def tree() -> dict[str, click.Command]:
    """Every leaf command of the real `revoca` tree, each module loaded as its command line would."""
    ctx = click.Context(cli, info_name="revoca")
    found: dict[str, click.Command] = {}
    for name in MODULES:
        command = cli.get_command(ctx, name)  # the gate wraps it here, or refuses a command with no row
        assert command is not None, name
        found.update(_leaves(command, name))
    return found


@dataclasses.dataclass(frozen=True)
class Place:
    made: Installation
    cast: Cast
    samples: Path  # files for arguments that must exist

    @property
    def env(self) -> dict[str, str]:
        return self.made.env()

    def run(self, argv: list[str], login: Login) -> tuple[int, str, str]:
        return revoca(self.env, *argv, login=login)

    def newest_seq(self) -> int:
        with session_scope(self.made.engine, readonly=True) as session:
            return max((e.seq for e in AuditReads(session).newest_events(limit=1)), default=0)

    def acts_since(self, seq: int, path: str) -> list[tuple[str, str, dict[str, object]]]:
        """The `cli.act` records of `revoca PATH` after `seq`: (result, actor, detail)."""
        with session_scope(self.made.engine, readonly=True) as session:
            events = AuditReads(session).newest_events(limit=50, event_type="cli.act")
            return [(e.result, e.actor, json.loads(e.detail)) for e in events
                    if e.seq > seq and json.loads(e.detail).get("command") == path]

    def rows(self) -> dict[str, int]:
        with self.made.engine.connect() as conn:
            return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                    for t in sa.inspect(conn).get_table_names()}


@pytest.fixture(scope="module")
def place(ceremony_templates: CeremonyTemplates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Place]:
    root = tmp_path_factory.mktemp("logins")
    with demo_installation(ceremony_templates, "sqlite", root / "install", with_keys=False) as made:
        add_account(made.engine, OMNIPOTENT, *Role)
        cast = standard_cast(made.settings.demo_shares_dir)
        cast = dataclasses.replace(cast, roles={**cast.roles, OMNIPOTENT: tuple(Role)})
        samples = root / "samples"
        samples.mkdir()
        (samples / "file").write_text("sample\n", encoding="utf-8")
        (samples / "dir").mkdir()
        yield Place(made, cast, samples)


def _sample(param: click.Parameter, samples: Path) -> str:
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.Path):
        if not kind.exists:
            return str(samples / "new" / (param.name or "x"))
        return str(samples / ("file" if kind.file_okay else "dir"))
    if isinstance(kind, click.IntRange | click.types.IntParamType):
        return str(getattr(kind, "min", None) or 1)
    return "sample"


def _argv(path: str, command: click.Command, samples: Path) -> list[str]:
    """The command line with a made-up value for each required parameter, so that click parses it
    and the gate decides (the command itself refuses the values, or does something harmless)."""
    argv, arguments = path.split(), []
    for param in command.params:
        if not param.required or param.name == "logins":
            continue
        if isinstance(param, click.Argument):
            arguments.append(_sample(param, samples))
        else:
            argv += [param.opts[0], _sample(param, samples)]
    return argv + arguments


def _wrong_person(cast: Cast, act: Act) -> str | None:
    """An officer who holds no role any slot of the act asks for."""
    wanted = set().union(*act.people) | ({Role.KEY_MANAGER} if act.key_managers else set())
    return next((name for name, roles in cast.roles.items() if not set(roles) & wanted), None)


# --- the table and the tree -------------------------------------------------------------------------


def test_every_command_has_a_row_and_every_row_a_command(tree: dict[str, click.Command]) -> None:
    assert sorted(set(tree) - set(ACTS)) == [], "commands without a row in ca.cli.acts"
    assert sorted(set(ACTS) - set(tree)) == [], "rows of ca.cli.acts without a command"


def test_the_table_has_a_command_that_no_role_may_run() -> None:
    assert "cert unrevoke" in NOBODY


def test_commands_that_log_in_take_operators_and_the_others_do_not(tree: dict[str, click.Command]) -> None:
    for path, command in tree.items():
        takes = any(p.name == "logins" for p in command.params)
        assert takes == (ACTS[path].needs_login or ACTS[path].admission is Admission.NOBODY), path


def test_commands_the_hsm_service_admits_take_their_own_operators(tree: dict[str, click.Command]) -> None:
    for path in (p for p, act in ACTS.items() if act.admission is Admission.HSM):
        options = [o for o in tree[path].params if isinstance(o, click.Option) and "--operator" in o.opts]
        assert len(options) == 1 and options[0].multiple and options[0].required, path


# --- each command that needs people ----------------------------------------------------------------------


@pytest.mark.parametrize("path", LOGGED_IN)
def test_without_a_login_nothing_runs_and_the_refusal_names_who_is_needed(
        path: str, place: Place, tree: dict[str, click.Command]) -> None:
    before = place.rows()
    code, out, err = place.run(_argv(path, tree[path], place.samples), Login((), ""))
    assert code == 8, (code, out, err)
    assert f"`revoca {path}` needs" in err and "--operator NAME" in err, err
    act = ACTS[path]
    for slot in act.people:
        assert any(role.value in err for role in slot), err
    if act.key_managers:
        assert f"{THRESHOLD} × key-manager" in err, err
    assert place.rows() == before  # not even an audit record: nobody was named


@pytest.mark.parametrize("path", LOGGED_IN)
def test_a_person_in_the_wrong_role_is_refused(path: str, place: Place, tree: dict[str, click.Command]) -> None:
    act = ACTS[path]
    wrong = _wrong_person(place.cast, act)
    if wrong is None:
        assert frozenset(Role) in act.people, path  # only an act any role may do has no wrong person
        return
    people = (wrong, *place.cast.people_for(path)[1:])
    seq = place.newest_seq()
    code, out, err = place.run(_argv(path, tree[path], place.samples), place.cast.login(*people))
    assert code == 8 and "this act needs" in err and wrong in err, (code, out, err)
    assert [(r, a) for r, a, _ in place.acts_since(seq, path)] == [("failure", "+".join(people))]


@pytest.mark.parametrize("path", LOGGED_IN)
def test_the_right_people_pass_the_gate(path: str, place: Place, tree: dict[str, click.Command]) -> None:
    people = place.cast.people_for(path)
    seq = place.newest_seq()
    code, out, err = place.run(_argv(path, tree[path], place.samples), place.cast.login(*people))
    recorded = place.acts_since(seq, path)
    assert [(r, a) for r, a, _ in recorded] == [("success", "+".join(people))], (code, out, err)
    assert recorded[0][2]["personal_data"] == ACTS[path].personal_data


@pytest.mark.parametrize("path", SEVERAL)
def test_one_operator_named_twice_is_refused(path: str, place: Place, tree: dict[str, click.Command]) -> None:
    people = place.cast.people_for(path)
    twice = (people[0], *people[:-1])  # the right number of names, one of them twice
    seq = place.newest_seq()
    code, out, err = place.run(_argv(path, tree[path], place.samples), place.cast.login(*twice))
    assert code == 8 and "the same operator cannot count as two people" in err, (code, out, err)
    assert [r for r, _, _ in place.acts_since(seq, path)] == ["failure"]


@pytest.mark.parametrize("path", SEVERAL)
def test_one_person_with_several_accounts_nobody_approved_is_refused(
        path: str, place: Place, tree: dict[str, click.Command]) -> None:
    """Mallory made herself one account per slot, each with a role the slot asks for, approved by no one
    (seed 004 5.2.2: an act of several people is not done by one)."""
    act = ACTS[path]
    slots = list(act.people) + [frozenset({Role.KEY_MANAGER})] * (THRESHOLD if act.key_managers else 0)
    names = []
    for i, slot in enumerate(slots):
        name = f"mallory-{path.replace(' ', '-')}-{i}"
        add_account(place.made.engine, name, sorted(slot)[0], approved=False)
        names.append(name)
    seq = place.newest_seq()
    code, out, err = place.run(_argv(path, tree[path], place.samples), place.cast.login(*names))
    assert code == 8, (code, out, err)
    assert [r for r, _, _ in place.acts_since(seq, path) if r == "success"] == [], err


# --- what no role may do -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOBODY)
def test_no_role_may_run_it_even_one_holding_every_role(path: str, place: Place,
                                                        tree: dict[str, click.Command]) -> None:
    for login in (Login((), ""), place.cast.login(OMNIPOTENT)):
        seq = place.newest_seq()
        code, out, err = place.run(_argv(path, tree[path], place.samples), login)
        assert code == 8 and "no role may run it" in err, (code, out, err)
        assert [r for r, _, _ in place.acts_since(seq, path)] == ["failure"]  # each attempt is in the audit log


def test_unrevoke_says_why_in_its_help(place: Place) -> None:
    code, out, _ = place.run(["cert", "unrevoke", "--help"], Login((), ""))
    text = " ".join(out.split())
    assert code == 0 and "a revocation is final" in text and "no role may run it" in text, out
