"""The `revoca` command: one group per area, each in its own module; main only wires.

A command's module is imported only when the command line names it.  The modules pull in
SQLAlchemy, cryptography, the PKCS#11 library, Flask, ldap3...; importing all of them before
argv was parsed made every `revoca` process (each test, each script line) pay for every
command.  `revoca --help` lists the commands from SUMMARIES without importing any;
tests/unit/test_cli_commands.py checks that each summary is the command's own.

Every command passes the login gate (ca.cli.gate) with its row in ca.cli.acts: who may run it
and how many people it needs.

Expected failures (RevocaError) print one line and exit non-zero; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

import click

from ca.cli import common, gate
from ca.cli.common import App, import_command_module
from ca.errors import RevocaError
from ca.host.files import restrict_new_files

# The modules whose `register` adds each top-level command.  `serve` gets each service from its
# role's module when the service is named (serve_cmds.SERVICES, serve_cmds.ServiceGroup).
MODULES: dict[str, tuple[str, ...]] = {
    "archive": ("archive_cmds",),
    "audit": ("audit_cmds",),
    "backup": ("backup_cmds",),
    "ca": ("ca_cmds", "key_cmds", "adopt_cmds"),
    "cert": ("cert_cmds", "disclosure_cmds"),
    "crl": ("crl_cmds", "adopt_cmds"),
    "db": ("init_cmds",),
    "disclose": ("disclosure_cmds",),
    "hsm": ("hsm_cmds",),
    "init": ("init_cmds",),
    "ocsp": ("ocsp_cmds",),
    "operator": ("operator_cmds",),
    "ra": ("ra_cmds",),
    "report": ("report_cmds",),
    "repository": ("repository_cmds", "fetches_cmds"),
    "restore": ("backup_cmds",),
    "revocation": ("ra_cmds",),
    "run": ("run_cmds",),
    "serve": ("serve_cmds",),
    "status": ("status_cmds",),
    "tls": ("tls_cmds",),
    "tsa": ("tsa_cmds",),
    "verifier": ("verifier_cmds",),
    "web": ("web_cmds",),
}

# The first paragraph of each top-level command's help: what `revoca --help` shows beside it.
SUMMARIES: dict[str, str] = {
    "archive": "The archive: certificates, CRLs/ARLs, revocation requests and histories, time-stamped.",
    "audit": "The audit log: verify its hash chain, read it, prune it (internal auditor only).",
    "backup": "Backups: made daily and verified by restoring them into scratch, copied off-site monthly, read "
              "yearly.",
    "ca": "Certificate authorities: bridge, regional and external.",
    "cert": "Certificates: subscriber certificates imported in bulk, and the CA-level ones.",
    "crl": "CRLs (subscriber certificates) and ARLs (CA certificates): issue them, read the archive.",
    "db": "The database schema.",
    "disclose": "Disclosure to subscribers (9.4.7): their records as a signed, time-stamped bundle; their "
                "correction requests.",
    "hsm": "Activation of the CA keys by M of N key managers.",
    "init": "Key ceremony: create the token, split its activation secret, build the CA hierarchy.",
    "ocsp": "The OCSP responder's keys.",
    "operator": "Operators and their roles.",
    "ra": "RA terminals at the municipal windows.",
    "report": "Reports the CA makes and publishes: the monthly provision status report.",
    "repository": "The LDAP repository: a slapd on loopback under the data directory.",
    "restore": "Restore a backup into an empty data directory and database (a fresh machine); it is verified "
               "first.",
    "revocation": "Dual control for CA-level certificates: a receptionist files, a reviewer reviews, an "
                  "approver approves.",
    "run": "The whole service on one machine with the embedded defaults (what `make run` does).",
    "serve": "Run one revoca service in the foreground.",
    "status": ("Each component up or down, each CA's newest CRL, ARL and delta CRL, warnings, requests "
               "waiting for people."),
    "tls": "The HTTPS servers' certificate, issued by the bridge CA.",
    "tsa": "The time-stamp authority (RFC 3161): its certificate, and stamping files.",
    "verifier": "Registered verifiers: LDAP accounts that may read CRLs from the repository.",
    "web": "The public web repository: CA certificates, ARLs, notices, provision reports.",
}


class LazyGroup(click.Group):
    """The root group: a command's module is imported when the command is looked up, not before."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The names whose modules were all registered: a module registers every command it makes
        # (`revoca serve ra` registers ra_cmds, hence `ra`), so a name in self.commands may not be
        # loaded (and guarded) yet.
        self.loaded: set[str] = set()

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *MODULES})

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        if cmd_name in MODULES and cmd_name not in self.loaded:
            self.load(cmd_name)
        return self.commands.get(cmd_name)

    def load(self, cmd_name: str) -> None:
        """Register the modules that make `cmd_name`.  A module may be registered again (a second
        command of its, in one process): adding the same command under its name changes nothing."""
        for module in MODULES[cmd_name]:
            import_command_module(f"ca.cli.{module}").register(self)
        if cmd_name in self.commands:
            gate.guard_tree(self.commands[cmd_name], cmd_name)
        self.loaded.add(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `revoca --help`, as click makes it, from SUMMARIES for the commands not loaded."""
        commands = [(name, self.commands.get(name) or click.Command(name, help=SUMMARIES[name]))
                    for name in self.list_commands(ctx)]
        shown = [(name, command) for name, command in commands if not command.hidden]
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="REVOCA_CONFIG", type=click.Path(dir_okay=False),
              help="revoca.toml to use (default: ./revoca.toml if present, else built-in defaults).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """revoca: the revocation side of a national public PKI."""
    ctx.obj = App(config_path)


def main() -> None:
    restrict_new_files()  # umask 027: nothing revoca writes is readable by other local users (issue 12)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("revoca: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except RevocaError as exc:
        click.echo(f"revoca: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def run() -> None:
    """`revoca` as a process of its own (the console script, `python -m ca`): `main`, then an exit
    without the interpreter's last full garbage collection.

    That collection walks every object the process holds (SQLAlchemy's, Flask's, ...): ~0.15 s of
    CPU at each exit of a service or command (measured: 0.16 s with the RA's modules loaded, 0.01 s
    frozen), and `revoca run` stops ten services at once on the same cores.  gc.freeze() puts them
    out of its reach; atexit handlers (the OCSP query history's flush among them), the flushing
    of stdout and stderr and the modules' own teardown all still run.  Not in `main`, which a
    long-lived caller may run in its own process (the tests do) and keep its collector as it was."""
    common.OWN_PROCESS = True
    try:
        main()
    finally:
        gc.freeze()
