"""`revoca serve ...`: one service in the foreground, its module loaded when it is named
(ServiceGroup); the HSM service's own command is here."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from ca.cli import gate
from ca.cli.common import App, import_command_module, interrupt_on_signals, pass_app, service_logging
from ca.host.files import protect_data_dir
from ca.host.notify import Heartbeat
from ca.hsm import token_for
from ca.hsm.callers import CallerMap, group_id
from ca.hsm.policy import SigningPolicy
from ca.hsm.service import HSMService, bind
from ca.storage.engine import open_current
from ca.storage.grants import role_for

# service -> the module whose `register` adds it to this group (common.add_serve_command)
SERVICES: dict[str, str] = {
    "backup": "backup_cmds",
    "cvs": "cvs_cmds",
    "hsm": "serve_cmds",
    "ocsp": "ocsp_cmds",
    "ocsp-signer": "ocsp_cmds",
    "publisher": "repository_cmds",
    "ra": "ra_cmds",
    "scheduler": "crl_cmds",
    "status": "status_page_cmds",
    "tsa": "tsa_cmds",
    "web": "web_cmds",
}


class ServiceGroup(click.Group):
    """`revoca serve`: a service's module is imported when its name is looked up, not before.

    Each service is a process of its own, started again by the supervisor whenever it dies, by
    `revoca run` ten at a time: importing every role's module (Flask, granian, ldap3, the TSA...)
    for one of them cost each start ~0.1 s of CPU.  `modules` maps a service to the module whose
    `register` adds it here.  Every service passes the login gate (ca.cli.gate) as it is looked up."""

    def __init__(self, *args: Any, modules: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.modules = modules

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.modules})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.modules:
            # the module's `register` adds its service to the group it finds under "serve" (and its
            # own top-level commands beside it: here to a holder, which the root loads itself)
            holder = click.Group()
            holder.add_command(self)
            import_command_module(f"ca.cli.{self.modules[cmd_name]}").register(holder)
        command = self.commands.get(cmd_name)
        if command is not None:  # also one a module loaded for its own group added here (guard once)
            gate.guard(command, f"serve {cmd_name}")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`revoca serve --help`: every service, so every module (help only)."""
        for name in self.list_commands(ctx):
            self.get_command(ctx, name)
        super().format_commands(ctx, formatter)


@click.group("serve", cls=ServiceGroup, modules=SERVICES)
@pass_app
def serve_group(app: App) -> None:
    """Run one revoca service in the foreground."""
    protect_data_dir(app.settings.data_dir)


@serve_group.command("hsm")
@pass_app
def serve_hsm(app: App) -> None:
    """The HSM service: holds the token, takes activation shares, signs for the other services."""
    service_logging()
    settings = app.settings
    engine = open_current(settings.db_url, role=role_for(settings, "signer"))
    service = HSMService(token_for(settings), engine, policy=SigningPolicy(ocsp_ca_keys=settings.hsm.ocsp_ca_keys),
                         callers=CallerMap.from_identities(settings.identities),
                         password_policy=settings.operators.password_policy,
                         signer_processes=settings.hsm.signer_pool_size)
    server = bind(settings.hsm_socket, service, clients_gid=group_id(settings.identities.signer_clients))

    interrupt_on_signals()
    click.echo(f"HSM service listening on {settings.hsm_socket}; {service.activation.status().line()}", err=True)
    from ca.audit.service_events import running

    # under systemd: READY=1 once the accept loop runs, then WATCHDOG=1 from that loop (ca.host.notify)
    server.service_actions = Heartbeat().beat  # type: ignore[method-assign]
    def stop_listening() -> None:
        server.server_close()
        with contextlib.suppress(FileNotFoundError):
            settings.hsm_socket.unlink()

    try:
        with running(engine, "signer", socket=str(settings.hsm_socket)):
            try:
                server.serve_forever()
            finally:
                # before the stop record: a client connecting while that record waits for the
                # database (a scheduler's transaction, itself waiting for a signature) is refused
                # at once instead of waiting for an answer that never comes; the connections
                # already open are served until the service closes
                stop_listening()
    except KeyboardInterrupt:
        pass
    finally:
        service.close()
        stop_listening()


def register(cli: click.Group) -> None:
    cli.add_command(serve_group)
