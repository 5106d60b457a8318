"""The guides in docs/ work as written: each one's marked blocks run in order, and every `revoca`
command line they mention parses.

The four guides share one installation, as they would in production: the runbook makes it
(ceremony, activation, services) and the RA, verifier and deployment guides use it. The
installation is real: a SoftHSM2 token, SQLite, Debian's slapd, the services under gunicorn and
granian, openssl, curl and ldapsearch. Keys are P-256 (REVOCA_HSM_KEY_ALGORITHM) to keep the
token fast, and the officers' password hashes are made cheap once revoca has stored them
(cheap_passwords); the guides' ports are replaced by free ones. See tests/support/docs_tools.py
for how blocks are marked and run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ca import hierarchy
from ca.cli import cli
from ca.hsm.client import HSMClient
from ca.storage.engine import make_engine, session_scope
from ca.storage.models import Operator
from ca.storage.store import Store
from ca.subscribers import generate_subscribers, key_pool

from support.clock import NO_NTP
from support.docs_tools import Block, Session, expect_lines, read_blocks, split_commands
from support.officers import cheap_hash
from support.tools import free_port, revoca_run

ROOT = Path(__file__).resolve().parents[2]  # tests/e2e/ -> the repository
DOCS = ROOT / "docs"
GUIDES = ("operator-runbook.md", "ra-integration.md", "verifier-guide.md", "deployment.md")  # in the order run
OPERATORS = ("alice", "bob", "carol", "dave", "erin", "clerk1", "auditor1", "auditor2")
ISSUED = {"tokyo": 6, "osaka": 2}

pytestmark = pytest.mark.skipif(shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists(),
                                reason="Debian's slapd is not installed")


# --- the test's own steps between blocks ------------------------------------------------------------


def cheap_passwords(session: Session) -> None:
    """After `revoca init` and `revoca operator add`: the hashes revoca stored of the passwords the
    session typed, made again at a cheap cost (support.officers.cheap_hash: a stored hash carries its
    own).  The guides log in about a hundred times (each `--operator`, the HSM service's checks, the
    RA's clerk): at the product's cost (~100 ms each) that was seconds of this test.  The same
    passwords, checked by revoca's own code; what init and `operator add` do is run as written."""
    engine = make_engine(f"sqlite:///{session.cwd / 'var' / 'revoca.db'}")
    try:
        with session_scope(engine) as s:
            for op in s.scalars(sa.select(Operator)):
                password = session.passwords.get(op.name)
                if password is not None and not op.credential_hash.startswith(CHEAP):
                    op.credential_hash = cheap_hash(password)
    finally:
        engine.dispose()


CHEAP = cheap_hash("a password of ten characters").rsplit("$", 2)[0] + "$"  # scrypt$N$R$P$ of the cheap cost
AFTER: dict[str, Callable[[Session], None]] = {"revoca init": cheap_passwords, "revoca operator add": cheap_passwords}


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def issued_certificates(session: Session) -> None:
    """Subscriber certificates as the CAs issued them years ago (signed through the HSM service),
    for `revoca cert import`; one key is kept, for the subscriber's own online revocation."""
    engine = make_engine(f"sqlite:///{session.cwd / 'var' / 'revoca.db'}")
    # certificates are signed in a ceremony session of two of the runbook's key managers (ca.hsm.sessions)
    keys = HSMClient(session.cwd / "var" / "run" / "hsm.sock",
                     key_managers=[(name, session.passwords[name]) for name in ("alice", "bob")])
    serials: dict[str, list[str]] = {}
    try:
        for ca_name, count in ISSUED.items():
            with session_scope(engine) as s:
                store = Store(s)
                ca = store.ca(ca_name)
                key = store.current_key(ca)
                issuer = hierarchy.issuer_for(keys, ca, key)
            out = session.cwd / "issued" / ca_name
            out.mkdir(parents=True)
            serials[ca_name] = []
            for cert, private in generate_subscribers(issuer, count, now=dt.datetime.now(dt.UTC), time_guard=NO_NTP):
                serial = format(cert.serial_number, "x")
                (out / f"{serial}.pem").write_bytes(_pem(cert))
                serials[ca_name].append(serial)
                card = {0: "my-card", count - 1: "my-card-2"}.get(len(serials[ca_name]) - 1)
                if ca_name == "tokyo" and card:  # two subscribers keep their keys, to revoke online
                    (session.cwd / f"{card}.pem").write_bytes(_pem(cert))
                    (session.cwd / f"{card}.key").write_bytes(private.private_bytes(
                        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption()))
    finally:
        keys.close()
        engine.dispose()
    tokyo = serials["tokyo"]
    session.values.update({"serial": tokyo[1], "serial-2": tokyo[2], "serial-3": tokyo[3]})
    session.values["good-serial"] = tokyo[4]
    session.values["osaka-serial"] = serials["osaka"][0]  # the Chiyoda window may not revoke it (ra-integration.md)


def documents(session: Session) -> None:
    """The certificates a verifier checks: one the RA guide revoked, one still good."""
    issued = session.cwd / "issued" / "tokyo"
    shutil.copy(issued / f"{session.values['serial']}.pem", session.cwd / "document-signer.pem")
    shutil.copy(issued / f"{session.values['good-serial']}.pem", session.cwd / "other-signer.pem")


PG_BIN = Path("/usr/lib/postgresql")


def _pg_tool(name: str) -> str | None:
    found = sorted(PG_BIN.glob(f"*/bin/{name}"))
    return str(found[-1]) if found else shutil.which(name)


class Cluster:
    """A PostgreSQL primary's data directory for the postgresql hook, made (initdb, a second or more of
    CPU) in the background while the guides run, once the runbook's services are up (`start`, after
    its `revoca status --wait`): the hook, at their end, configures and starts it.  `missing`: why
    there can be none (the hook skips with that reason)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        found = {name: _pg_tool(name) for name in ("initdb", "pg_ctl", "pg_basebackup", "psql")}
        self.tools = {name: path for name, path in found.items() if path is not None}
        self.missing: str | None = None
        if len(self.tools) < len(found) or shutil.which("runuser") is None or os.geteuid() != 0:
            self.missing = "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) or root for runuser missing"
        else:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                self.missing = "no postgres user to run a PostgreSQL server as"
        self.base = Path()
        self.initdb: subprocess.Popen[bytes] | None = None
        self.log = session.cwd / "logs" / "initdb.log"

    def start(self) -> None:
        if self.missing or self.initdb is not None:
            return
        self.base = Path(tempfile.mkdtemp(prefix="rvpg"))  # the postgres user cannot enter pytest's root-only tmp
        shutil.chown(self.base, "postgres")
        with open(self.log, "wb") as out:
            self.initdb = subprocess.Popen(["runuser", "-u", "postgres", "--", self.tools["initdb"], "-D",
                                            str(self.base / "primary"), "-A", "trust", "-U", "postgres", "--no-sync"],
                                           stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.session.cleanups_meanwhile.append(self.stop)  # no service uses it

    def made(self) -> None:
        """Until initdb is over (started now if it was not)."""
        self.start()
        assert self.initdb is not None
        if self.initdb.wait(timeout=120) != 0:
            raise AssertionError(f"initdb failed:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Both servers stopped at once (immediate: the data goes), once initdb is over."""
        assert self.initdb is not None
        self.initdb.wait(timeout=120)
        stopping = [subprocess.Popen(["runuser", "-u", "postgres", "--", self.tools["pg_ctl"], "-D",
                                      str(self.base / name), "-m", "immediate", "stop"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for name in ("standby", "primary") if (self.base / name / "postmaster.pid").exists()]
        for proc in stopping:
            proc.wait(timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


def postgresql(session: Session, cluster: Cluster) -> None:
    """A PostgreSQL primary with the guide's settings and a streaming standby (pg_basebackup -R), on the
    guide's ports; what a DBA provides. Skipped where the server binaries or the postgres user are missing."""
    if cluster.missing:
        pytest.skip(cluster.missing)
    cluster.made()
    tools, base = cluster.tools, cluster.base
    primary, standby = base / "primary", base / "standby"
    primary_port, standby_port = session.ports[5432], session.ports[5433]

    def as_postgres(*cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120)

    shutil.copy(session.cwd / "pg" / "primary-revoca.conf", primary / "revoca.conf")
    with open(primary / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(f"port = {primary_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{base}'\n"
                   "fsync = off\ninclude 'revoca.conf'\n")
    with open(primary / "pg_hba.conf", "a", encoding="utf-8") as hba:
        hba.write("host replication all 127.0.0.1/32 trust\n")
    as_postgres(tools["pg_ctl"], "-D", str(primary), "-l", str(base / "primary.log"), "-w", "start")
    psql = [tools["psql"], "-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
    as_postgres(tools["pg_basebackup"], "-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres",
                "-D", str(standby), "-R", "-X", "stream")
    with open(standby / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write(f"port = {standby_port}\n")
    as_postgres(tools["pg_ctl"], "-D", str(standby), "-l", str(base / "standby.log"), "-w", "start")
    # the role and database revoca uses; created once the standby is attached (remote_apply waits for it)
    as_postgres(*psql, "-c", "CREATE ROLE revoca LOGIN", "-c", "CREATE DATABASE revoca OWNER revoca")


HOOKS = {"issued-certificates": issued_certificates, "documents": documents}  # and "postgresql", per session


# --- the installation the guides share ----------------------------------------------------------------


@pytest.fixture
def docs_session(tmp_path: Path) -> Iterator[Session]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOCA_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               REVOCA_HSM_KEY_ALGORITHM="p256", PYTHONUNBUFFERED="1")
    ports = {p: free_port() for p in (1389, 1390, 5432, 5433, 8443, 8880, 8881, 8882)}
    passwords = {name: f"{name}-pw-{secrets.token_hex(6)}" for name in OPERATORS}
    session = Session(tmp_path, env, ports=ports, paths={"/srv/revoca-replica": str(tmp_path / "replica")},
                      passwords=passwords, hooks=dict(HOOKS), after=dict(AFTER))
    # the issued-certificates hook's RSA keys (process-wide), made while this process waits on `revoca init`
    keys = threading.Thread(target=key_pool, args=(2048,))
    keys.start()
    cluster = Cluster(session)
    session.hooks["postgresql"] = lambda session: postgresql(session, cluster)
    session.after["revoca status --wait"] = lambda session: cluster.start()
    try:
        yield session
    finally:
        keys.join()
        session.stop()


def _revoca_json(session: Session, *args: str, operator: str | None = None) -> object:
    """`revoca ARGS --json` (in this process, as a new one would run it: support.tools.revoca_run);
    `operator` logs in (the ceremony's senior operator) where the command needs it."""
    login = ["--operator", operator] if operator else []
    done = revoca_run(session.env, *args, *login, "--json", cwd=session.cwd,
                      stdin=f"{session.passwords[operator]}\n" if operator else "")
    assert done.returncode == 0, f"revoca {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return json.loads(done.stdout)


@pytest.mark.slow
def test_the_guides_run_as_written_one_after_another(docs_session: Session) -> None:
    """One test, not four: the guides share the installation the runbook makes (and xdist could
    otherwise hand them to different workers)."""
    docs_session.run_guide(DOCS / "operator-runbook.md")
    # what the runbook left: everything published, the compromised CA's lists included
    # (the guide's scheduler keeps issuing delta CRLs: one may be in flight, so look again for a while)
    deadline = time.monotonic() + 30
    while True:
        queue = _revoca_json(docs_session, "repository", "queue", operator="dave")
        waiting = [q for q in queue if not (q["published_at"] and not q["pending"])]  # type: ignore[union-attr]
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not waiting, waiting
    cas = {c["name"]: c["status"] for c in _revoca_json(docs_session, "ca", "list")}  # type: ignore[union-attr]
    assert cas == {"bridge": "active", "tokyo": "active", "osaka": "active", "hokkaido": "compromised",
                   "gpki": "active"}
    docs_session.run_guide(DOCS / "ra-integration.md")
    docs_session.run_guide(DOCS / "verifier-guide.md")
    docs_session.run_guide(DOCS / "deployment.md")


# --- every revoca command line in the guides parses -----------------------------------------------------

REVOCA_LINE = re.compile(r"(?:^|[\s;|&(`$])(?:\.venv/bin/)?(revoca(?:\s+[^\s;|&)`#<>]+)*)")


def _command_lines() -> list[tuple[str, list[str], bool]]:
    """(where, argv after `revoca`, complete) for each revoca command in the guides: command lines in code
    blocks are complete; inline code in the text may name a command without its required options."""
    found = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        snippets = [(b.where, b.text, True) for b in read_blocks(path) if not b.file and b.info.split()[:1] in (
            ["sh"], ["bash"], ["console"])]
        snippets += [(f"{path.name} inline", m.group(1), False) for m in re.finditer(r"`([^`\n]+)`", text)]
        for where, snippet, complete in snippets:
            joined = snippet.replace("\\\n", " ")
            for line in joined.splitlines():
                line = line.split(" #", 1)[0]
                for m in REVOCA_LINE.finditer(line):
                    words = shlex.split(m.group(1).rstrip("&").strip(), posix=True)
                    if words[1:] and words[1:] != ["..."]:  # `revoca ...` stands for any command
                        found.append((where, words[1:], complete))
    return found


def _parse(argv: list[str], complete: bool = True) -> None:
    """Resolve the command path and parse its options as click would (no callback runs); a complete
    command line must also give the required options and arguments."""
    command: click.Command = cli
    # with the commands' context settings, as click makes their contexts: a context without them
    # makes a command build (and keep: click caches it) a help option without -h
    ctx = click.Context(cli, info_name="revoca", **cli.context_settings)
    args = list(argv)
    while isinstance(command, click.Group):
        _opts, rest, _order = command.make_parser(ctx).parse_args(args)
        if not rest:
            raise click.UsageError(f"{' '.join(argv)}: names no command")
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            raise click.UsageError(f"no command {rest[0]!r} in {' '.join(argv)}")
        command, args = sub, rest[1:]
        ctx = click.Context(command, info_name=rest[0], parent=ctx, **command.context_settings)
    opts, rest, _order = command.make_parser(ctx).parse_args(args)
    for param in command.params:
        value = opts.get(param.name) if param.name else None
        if complete and isinstance(param, click.Option) and param.required and value is None:
            raise click.UsageError(f"{' '.join(argv)}: {param.opts[0]} is required")
        if isinstance(param.type, click.Choice) and value is not None:
            for v in value if isinstance(value, list | tuple) else [value]:
                if v not in param.type.choices:
                    raise click.UsageError(f"{' '.join(argv)}: {v!r} is not one of {param.type.choices}")
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    wanted = sum(1 for p in arguments if p.nargs == 1 and p.required)
    variadic = any(p.nargs == -1 for p in arguments)
    # a missing argument is absent, None, or (click 8.2 on) a sentinel object that is neither
    given = sum(1 for p in arguments if p.name in opts and opts[p.name] not in (None, ())
                and (isinstance(opts[p.name], str | tuple | list) or p.nargs != 1))
    if (complete and given < wanted) or (len(rest) > 0 and not variadic):
        raise click.UsageError(f"{' '.join(argv)}: expects {wanted} argument(s)")


def test_every_revoca_command_in_the_guides_parses() -> None:
    lines = _command_lines()
    assert len(lines) > 60, lines  # the guides are full of them: an empty scan is a broken scan
    failures = []
    for where, argv, complete in lines:
        try:
            _parse(argv, complete)
        except click.ClickException as exc:
            failures.append(f"{where}: {exc.format_message()}")
    assert not failures, "\n".join(failures)


def test_the_parse_check_catches_a_wrong_command() -> None:
    for argv in (["crl", "issue", "--everything"], ["ca", "rollback", "tokyo"], ["ca", "rollover"],
                 ["crl", "issue", "--type", "base"], ["verifier", "remove"]):
        with pytest.raises(click.ClickException):
            _parse(argv)
    _parse(["ca", "rollover", "tokyo", "--operator", "alice"])


def test_guides_mark_their_blocks_and_the_readme_links_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for guide in GUIDES:
        blocks: list[Block] = read_blocks(DOCS / guide)
        assert any(b.runnable for b in blocks), guide
        assert f"docs/{guide}" in readme, f"README.md does not link docs/{guide}"


# --- the runner itself fails where it should ------------------------------------------------------------


def test_commands_are_split_as_bash_parses_them() -> None:
    script = "# a comment\nrevoca ca list\nfor i in 1 2; do\n  echo $i\ndone\ncat <<EOF\nx\nEOF\nls \\\n  -l\n"
    assert split_commands(script) == ["revoca ca list", "for i in 1 2; do\n  echo $i\ndone", "cat <<EOF\nx\nEOF",
                                      "ls \\\n  -l"]


def test_an_expected_line_missing_from_the_output_fails() -> None:
    expect_lines("token revoca: activated ...\nCA  TYPE", "token revoca: activated (2 of 3)\nCA    TYPE  NUMBER", "x")
    with pytest.raises(AssertionError, match="not activated"):
        expect_lines("token revoca: not activated", "token revoca: activated (2 of 3)", "x")


def test_an_unknown_placeholder_or_a_failing_command_fails(tmp_path: Path) -> None:
    session = Session(tmp_path, dict(os.environ), ports={8443: 1}, paths={}, passwords={}, hooks={})
    assert session.substitute("https://127.0.0.1:8443/ <x>".replace("<x>", ""), "t") == "https://127.0.0.1:1/ "
    with pytest.raises(AssertionError, match="placeholder <serial>"):
        session.substitute("curl -d '{\"serial\": \"<serial>\"}'", "t")
    with pytest.raises(AssertionError, match="exit 3"):
        session.run_block(Block("t.md", 1, "sh test", "true\nexit 3\n"))


def test_a_section_run_by_another_test_is_left_to_it(tmp_path: Path) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text("## 1. Here\n\n```sh test\ntouch one\n```\n\n## 2. There\n\n"
                     "<!-- doc-test: run by tests/e2e/test_nodes.py -->\n\n```sh test\ntouch two\n```\n",
                     encoding="utf-8")
    session = Session(tmp_path, dict(os.environ), ports={}, paths={}, passwords={}, hooks={})
    session.run_guide(guide)
    assert (tmp_path / "one").exists() and not (tmp_path / "two").exists()
    session.run_guide(guide, section="2.")
    assert (tmp_path / "two").exists()
    # deployment.md's several nodes: run by test_nodes.py, which exists, and by no other
    owners = {b.run_by for b in read_blocks(DOCS / "deployment.md") if b.runnable}
    assert owners == {None, "tests/e2e/test_nodes.py"} and (ROOT / "tests" / "e2e" / "test_nodes.py").exists()
