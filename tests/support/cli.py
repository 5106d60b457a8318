"""Driving the `revoca` console script as an operator would: one installation (`Cli`), its HSM service.

A command runs in this process through the console script's own `main` (support.tools.revoca_run),
in the installation's directory and with exactly its environment: a new process costs ~0.5 s of
start-up, and these tests run hundreds of commands.  What is about a process stays one: `init`
(the key ceremony opens the token itself), `serve` and `run` (services, signals), and a call
with `process=True` (the console script itself)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509

from ca.ceremony import read_share_file
from ca.enums import CertKind
from ca.errors import ServiceUnavailable
from ca.hsm.client import HSMClient
from ca.storage.engine import make_engine, session_scope
from ca.storage.store import Store

from support.installation import CeremonyTemplates, demo_installation
from support.officers import KEY_MANAGERS, NO_LOGIN, Cast, Login, standard_cast
from support.tools import revoca_run

# Commands that run as a process of their own whatever the caller asks (see the module's docstring).
PROCESS_COMMANDS = frozenset({"init", "serve", "run"})

REVOCA = str(Path(sys.executable).with_name("revoca"))
if not Path(REVOCA).exists():  # not run from the venv's python: fall back to PATH
    REVOCA = shutil.which("revoca") or REVOCA


class Cli:
    """One revoca installation: its data directory, HSM socket and environment.

    A command that needs a login gets one from `cast` (support.officers), chosen by its row in
    ca.cli.acts, unless the command line names its own `--operator`s or `login=` is given
    (`NO_LOGIN`: none)."""

    def __init__(self, root: Path, *, db_url: str | None = None) -> None:
        self.root = root
        self.data = root / "var"
        # Unix socket paths are limited to 108 bytes: not under pytest's long tmp_path.
        self.sock_dir = Path(tempfile.mkdtemp(prefix="rv"))
        self.socket = self.sock_dir / "hsm.sock"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
        env.update(REVOCA_DATA_DIR=str(self.data), REVOCA_HSM_KEY_ALGORITHM="p256",
                   REVOCA_HSM_SOCKET=str(self.socket), REVOCA_CA_NEW_KEYS="true")
        if db_url is not None:
            env["REVOCA_DATABASE_URL"] = db_url
        self.env = env
        self._engine: sa.Engine | None = None
        self.cast: Cast = standard_cast(self.shares_dir)

    @property
    def shares_dir(self) -> Path:
        return self.data / "demo-shares"

    def share_file(self, index: int) -> Path:
        return next(self.shares_dir.glob(f"share-{index}-*.txt"))

    def password(self, operator: str) -> str:
        """The demo password file: warning comment lines, then the password."""
        return (self.shares_dir / f"{operator}.password").read_text(encoding="utf-8").splitlines()[-1]

    def officers(self) -> HSMClient:
        """A client of the HSM service with two demo key managers' ceremony session (ca.hsm.sessions),
        which certificates, key generation and destruction need."""
        return HSMClient(self.socket, key_managers=[(name, self.password(name)) for name in KEY_MANAGERS[:2]])

    def run(self, *args: str, stdin: str = "", env: dict[str, str] | None = None,
            login: Login | None = None, process: bool = False) -> subprocess.CompletedProcess[str]:
        if login is None:
            login = NO_LOGIN if "--operator" in args else self.cast.for_command(args)
        argv, stdin = login.into(args, stdin)
        env = {**self.env, **(env or {})}
        words = args[2:] if args[:1] == ("--config",) else args  # the command after the global option
        if not process and words[:1] and words[0] not in PROCESS_COMMANDS:
            return revoca_run(env, *argv, stdin=stdin, cwd=self.root)
        # Always a pipe on stdin: a terminal there would make revoca prompt and the test hang.
        return subprocess.run([REVOCA, *argv], input=stdin, capture_output=True, text=True, cwd=self.root,
                              env=env, timeout=120, check=False)

    def ok(self, *args: str, stdin: str = "", login: Login | None = None, process: bool = False) -> str:
        proc = self.run(*args, stdin=stdin, login=login, process=process)
        assert proc.returncode == 0, f"revoca {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc.stdout

    def json(self, *args: str, stdin: str = "", login: Login | None = None) -> Any:
        return json.loads(self.ok(*args, "--json", stdin=stdin, login=login))

    def fails(self, *args: str, code: int | None, match: str, stdin: str = "", env: dict[str, str] | None = None,
              log_lines: bool = False, login: Login | None = None) -> str:
        """The command fails with `code` (None: any non-zero) and one `revoca: error:` line matching `match`.

        `log_lines`: a service logs to stderr before it fails; the error must still be one last line.
        """
        proc = self.run(*args, stdin=stdin, env=env, login=login)
        where = f"revoca {' '.join(args)} -> {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        assert "Traceback" not in proc.stderr, where
        lines = proc.stderr.splitlines()
        if log_lines:
            lines = [ln for ln in lines if " INFO " not in ln]
        assert len(lines) == 1 and lines[0].startswith("revoca: error: "), where
        assert proc.returncode == code if code is not None else proc.returncode not in (0, None), where
        assert re.search(match, lines[0]), where
        return lines[0]

    @property
    def engine(self) -> sa.Engine:
        """In-process access to the same database, for setting up and checking what the CLI did."""
        if self._engine is None:
            self._engine = make_engine(self.env.get("REVOCA_DATABASE_URL")
                                       or f"sqlite:///{self.data.resolve() / 'revoca.db'}")
        return self._engine

    def certs(self, issuer: str, kind: CertKind, subject_ca: str | None = None) -> list[x509.Certificate]:
        with session_scope(self.engine) as session:
            store = Store(session)
            rows = store.certificates(issuer=store.ca(issuer), kinds=[kind],
                                      subject_ca=store.ca(subject_ca) if subject_ca else None)
            return [x509.load_der_x509_certificate(r.der) for r in rows]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


@contextlib.contextmanager
def demo_cli(templates: CeremonyTemplates, kind: str, root: Path) -> Iterator[Cli]:
    """A `Cli` on a copy of this worker's demo ceremony (support.installation): what `revoca init --demo`
    makes, without the seconds of a ceremony, for tests whose subject is what comes after it."""
    with demo_installation(templates, kind, root, with_keys=False) as made:
        cli = Cli(root, db_url=made.settings.db_url)
        cli.env["REVOCA_HSM_TOKEN_LABEL"] = made.settings.hsm.token_label
        assert cli.data == made.data_dir, (cli.data, made.data_dir)
        try:
            yield cli
        finally:
            cli.close()


def start_hsm(cli: Cli) -> subprocess.Popen[bytes]:
    """`revoca serve hsm` in the background, returned once it answers on its socket."""
    with (cli.root / "hsm.log").open("ab") as log:
        proc = subprocess.Popen([REVOCA, "serve", "hsm"], cwd=cli.root, env=cli.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
    client = HSMClient(cli.socket, timeout=10)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                client.status()
                return proc
            except ServiceUnavailable:
                if proc.poll() is not None or time.monotonic() > deadline:
                    stop_hsm(proc)
                    raise AssertionError("revoca serve hsm did not come up:\n"
                                         + (cli.root / "hsm.log").read_text(errors="replace")) from None
                time.sleep(0.05)
    finally:
        client.close()


def stop_hsm(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
    return proc.returncode


def activate_in_process(cli: Cli, *indexes: int) -> None:
    client = HSMClient(cli.socket)
    try:
        for i in indexes:
            client.activate(read_share_file(cli.share_file(i)))
    finally:
        client.close()
