"""What every `revoca` command shares: settings, the database, the HSM client and output.

Settings, the database and the HSM client are imported when a command first asks for them, not
with this module: `revoca --help` and the commands that need none of them (or only some) should
not pay for SQLAlchemy, cryptography and the PKCS#11 library at start-up.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib
import json
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from ca.errors import InvalidInput

if TYPE_CHECKING:
    from ca.config import Settings
    from ca.hsm.client import HSMClient
    from ca.storage.engine import Engine
    from ca.trusted_time import ClockGuard


# Set by ca.cli.run: this is a `revoca` process of its own, not a caller running `main` in its own.
OWN_PROCESS = False


def import_command_module(name: str) -> ModuleType:
    """importlib.import_module for a command's module, which pulls in most of what the process will
    ever import (SQLAlchemy, cryptography, Flask...).

    In a process of its own the collector stays off meanwhile, then what the imports made is
    frozen (it lives as long as the process) and the collector goes on: its full passes over the
    growing heap were ~0.13 s of a service's ~0.6 s start, measured, and every later pass skips
    those objects.  In a caller's process (the tests run `main` in theirs) nothing changes."""
    if not OWN_PROCESS or not gc.isenabled():
        return importlib.import_module(name)
    gc.disable()
    try:
        return importlib.import_module(name)
    finally:
        gc.freeze()
        gc.enable()


@dataclasses.dataclass
class App:
    config_path: str | None
    _settings: Settings | None = None
    _engine: Engine | None = None
    _time_guard: ClockGuard | None = None
    # who logged in for this command (ca.cli.gate), in the order given; empty when none had to
    operators: tuple[str, ...] = ()
    # (name, password) of the key managers among them, for an act of key managers: the HSM client
    # opens its ceremony session with them (ca.hsm.sessions); never printed
    key_managers: tuple[tuple[str, str], ...] = dataclasses.field(default=(), repr=False)

    @property
    def actor(self) -> str:
        """The audit trail's actor: the people who logged in, or "system" for installation and
        service commands run by root or the service manager."""
        return "+".join(self.operators) if self.operators else "system"

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from ca.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def time_guard(self) -> ClockGuard:
        """This process's clock check against the settings' [time] policy (ca.trusted_time): made
        once, here where the settings are loaded, and handed to whatever the command signs with."""
        if self._time_guard is None:
            from ca.trusted_time import guard_for

            self._time_guard = guard_for(self.settings)
        return self._time_guard

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ca.storage.engine import open_current

            self._engine = open_current(self.settings.db_url)
        return self._engine

    def hsm(self) -> HSMClient:
        """The HSM service's client; for an act of key managers, one that opens a ceremony session
        with them (certificates, key generation and destruction need it)."""
        from ca.hsm.client import HSMClient

        return HSMClient(self.settings.hsm_socket, key_managers=self.key_managers)


pass_app = click.make_pass_decorator(App)


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")(f)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned table; wide cells are not cut, so output can be grepped."""
    cells = [[str(c) for c in headers]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def read_secret(prompt: str, *, confirm: bool = False) -> str:
    """Prompt without echo on a terminal; read one line from stdin when piped (scripts, tests)."""
    if sys.stdin.isatty():
        return click.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    line = sys.stdin.readline()
    if not line:
        raise InvalidInput(f"{prompt}: nothing on standard input")
    return line.rstrip("\n")


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else ""


def service_logging() -> None:
    """Log lines for a long-running `revoca serve ...` service, `time service level message`, as
    gunicorn's and granian's are (ca.host.logs; Alembic kept quiet)."""
    from ca.host import logs

    logs.configure()


def stop_on_signals() -> threading.Event:
    """An Event that SIGTERM and Ctrl-C set: a service loop waits on it and ends cleanly.  Under
    systemd its waits and checks tell systemd the loop is ready and alive (ca.host.notify)."""
    import signal

    from ca.host.notify import BeatingEvent, Heartbeat

    stop = BeatingEvent(Heartbeat())

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


def interrupt_on_signals() -> None:
    """SIGTERM and SIGINT both stop a service cleanly, through KeyboardInterrupt, as Ctrl-C does.
    SIGINT set here too: a process started with it ignored (a shell's background job) keeps it
    ignored, and Python then never turns it into KeyboardInterrupt, so `kill -INT` or a
    supervisor's Ctrl-C did nothing."""
    import signal

    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def add_serve_command(cli: click.Group, command: click.Command) -> None:
    """Put a service's command under `revoca serve` when that group is loaded.

    A command line that names another group (`revoca ra list`) never loads `serve`, so there is
    nothing to add to; `revoca serve NAME` registers the module of NAME only (serve_cmds.ServiceGroup)."""
    serve_group = cli.commands.get("serve")
    if isinstance(serve_group, click.Group):
        serve_group.add_command(command)
