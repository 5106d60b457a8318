"""`revoca repository start|stop|status|mirror-config|publish|queue` and `revoca serve publisher`.

The local OpenLDAP slapd that holds CA certificates, cross pairs, ARLs and CRLs, and the
publisher that fills it from the publication queue.
"""

from __future__ import annotations

import click

from ca.cli.common import (
    App,
    add_serve_command,
    emit_json,
    json_option,
    pass_app,
    service_logging,
    stop_on_signals,
    table,
    when,
)
from ca.errors import RevocaError, ServiceUnavailable
from ca.publishing import Publisher


def _slapd(app: App):
    from repository.service import local_slapd  # only this command group needs it

    return local_slapd(app.settings)


def _publisher(app: App, *, service: bool = False) -> Publisher:
    """`service`: for `revoca serve publisher`, connected as the publisher's database role."""
    from repository.service import make_publisher  # the LDAP publisher, wired to the configured slapd

    if service:
        from ca.storage.engine import open_current
        from ca.storage.grants import role_for

        engine = open_current(app.settings.db_url, role=role_for(app.settings, "publisher"))
        return make_publisher(app.settings, engine)
    return make_publisher(app.settings, app.engine)


@click.group("repository")
def repository_group() -> None:
    """The LDAP repository: a slapd on loopback under the data directory."""


@repository_group.command("start")
@pass_app
def repository_start(app: App) -> None:
    """Start slapd (configured on first start: schema, ACL, base entries)."""
    slapd = _slapd(app)
    slapd.start()
    click.echo(slapd.status().line())


@repository_group.command("stop")
@pass_app
def repository_stop(app: App) -> None:
    """Stop slapd; its data stays."""
    slapd = _slapd(app)
    click.echo("slapd stopped" if slapd.stop() else "slapd was not running")


@repository_group.command("status")
@json_option
@pass_app
def repository_status(app: App, as_json: bool) -> None:
    """Whether slapd runs and answers, and where."""
    st = _slapd(app).status()
    if as_json:
        emit_json({"running": st.running, "pid": st.pid, "answering": st.answering, "uri": st.uri})
    else:
        click.echo(st.line())


@repository_group.command("mirror-config")
@click.option("--server-id", type=click.IntRange(1, 4095), required=True,
              help="This provider's serverID, different at each provider of the set.")
@click.option("--peer", "peers", multiple=True, metavar="URL",
              help="Another provider (ldap://HOST:PORT/) to replicate from; repeat for each. "
                   "Default: [repository] providers.")
@pass_app
def repository_mirror_config(app: App, server_id: int, peers: tuple[str, ...]) -> None:
    """Write ldap/mirror.conf: revoca's slapd.conf made one provider of a mirror-mode set, for
    `slapd -f` (docs/deployment.md section 8).  Mode 0600: it holds the rootdn's password."""
    from ca.config import split_ldap_url

    peers = peers or app.settings.repository.providers
    if not peers:
        raise click.UsageError("name the other providers: --peer URL, or [repository] providers")
    for url in peers:
        split_ldap_url(url)
    path = _slapd(app).write_mirror_config(server_id=server_id, peers=list(peers))
    click.echo(f"wrote {path}: serverID {server_id}, replicating from {', '.join(peers)}")


@repository_group.command("publish")
@click.option("--all", "everything", is_flag=True,
              help="Queue every CA's newest CRL, ARL and certificates again first (a new or restored directory).")
@pass_app
def repository_publish(app: App, everything: bool) -> None:
    """Publish what is queued now, once, back-off or not (`revoca serve publisher` does this continuously)."""
    publisher = _publisher(app)
    if everything:
        publisher.requeue_newest(publisher.clock())
    report = publisher.round(side_work=True, retry_now=True)
    for line in report.published:
        click.echo(f"published {line}")
    if report.superseded:
        click.echo(f"{report.superseded} older item(s) superseded by newer ones")
    for line in [*report.failed, *report.side_errors]:
        click.echo(f"not published: {line}", err=True)
    if report.unavailable:
        raise ServiceUnavailable(f"{report.unavailable}; everything stays queued (`revoca repository queue`)")
    if report.failed:
        raise RevocaError(f"{len(report.failed)} item(s) not published; they stay queued and are retried")
    if not report.published:
        click.echo("nothing to publish")


@repository_group.command("queue")
@json_option
@pass_app
def repository_queue(app: App, as_json: bool) -> None:
    """What the directory holds and what waits to be published, per CA."""
    from ca.storage.publications import queue_states

    states = queue_states(app.engine)
    if as_json:
        emit_json([{"ca": s.ca_name, "item": s.item.value, "published_number": s.published_number,
                    "published_at": s.published_at, "pending": s.pending, "oldest_pending": s.oldest_pending,
                    "attempts": s.attempts, "next_attempt_at": s.next_attempt_at, "last_error": s.last_error}
                   for s in states])
        return
    table(["CA", "ITEM", "PUBLISHED", "AT", "WAITING", "SINCE", "ATTEMPTS", "LAST ERROR"],
          [[s.ca_name, s.item.value, "" if s.published_number is None else f"#{s.published_number}",
            when(s.published_at), s.pending or "", when(s.oldest_pending), s.attempts or "", s.last_error[:80]]
           for s in states])


@click.command("publisher")
@click.option("--poll", type=click.FloatRange(0.1, 3600),
              help="Seconds between rounds when the queue is idle (and between a standby's asks for the lease); "
                   "default [repository] publisher_poll_seconds (2).")
@pass_app
def serve_publisher(app: App, poll: float | None) -> None:
    """The publisher: drains the publication queue into LDAP until SIGTERM or Ctrl-C."""
    if poll is None:
        poll = app.settings.repository.publisher_poll_seconds
    service_logging()
    publisher = _publisher(app, service=True)
    stop = stop_on_signals()
    click.echo(f"publisher: into {publisher.uri} under {publisher.base_dn}", err=True)
    publisher.run(stop, poll)
    click.echo("publisher stopped", err=True)


def register(cli: click.Group) -> None:
    cli.add_command(repository_group)
    add_serve_command(cli, serve_publisher)
