"""`revoca ca destroy-key`: M key managers destroy a private key in the token (seed 004 6.2.10).

Registered into the `ca` group that ca.cli.ca_cmds makes (ca.cli.MODULES lists this module
after it).  The rules of what still needs a key are ca.hsm.destruction's.
"""

from __future__ import annotations

import datetime as dt

import click

from ca.cli.common import App, emit_json, json_option, pass_app


@click.command("destroy-key")
@click.option("--ca", "ca_name", required=True, metavar="NAME", help="The CA whose key it is.")
@click.option("--key", "key_ref", required=True, metavar="GEN|LABEL",
              help="The CA key's generation number (`revoca ca show`) or token label, or the label of an "
                   "end-entity key the CA certified (OCSP responder, TSA, ...).")
@json_option
@pass_app
def ca_destroy_key(app: App, ca_name: str, key_ref: str, as_json: bool) -> None:
    """Destroy a retired key in the token, once nothing needs it (M key managers).

    Refused, with what still needs the key, while it is the CA's active key or signs the CA's
    lists, while a certificate it signed (or that carries it) is unexpired and not revoked, or
    while the CA's current CRL or ARL is signed with it.  Names the backups that still hold the
    key (`revoca backup purge-key` removes them).
    """
    from ca.hsm.destruction import destroy_key

    done = destroy_key(app.engine, app.hsm(), ca_name, key_ref, by=app.operators, now=dt.datetime.now(dt.UTC))
    if as_json:
        emit_json({"ca": done.key.ca_name, "key_label": done.key.label, "kind": done.key.kind,
                   "generation": done.key.generation, "destroyed_at": done.at, "destroyed_by": list(done.by),
                   "token_objects": done.token_objects})
        return
    click.echo(done.line())
    _backups_holding(app, done.key.ca_name, done.key.label)


def _backups_holding(app: App, ca_name: str, label: str) -> None:
    """Name the backups made while the key was in the token (seed 004 6.2.10.1: destroyed likewise)."""
    from ca.backup.key_copies import held_by

    try:
        held = held_by(app.engine, app.settings.backup_dir, label)
    except OSError as exc:
        click.echo(f"token backups taken before now still hold this key, but {app.settings.backup_dir} could not be "
                   f"read ({exc.strerror}): run `revoca backup purge-key --ca {ca_name} --key {label} --dry-run` "
                   "as root to see them")
        return
    if not held:
        click.echo("no backup holds this key")
        return
    click.echo(f"{len(held)} backup(s) still hold this key: " + "; ".join(h.describe() for h in held))
    click.echo(f"once a newer backup is verified, remove them with `revoca backup purge-key --ca {ca_name} "
               f"--key {label}` (seed 004 6.2.10.1)")


def register(cli: click.Group) -> None:
    ca_group = cli.commands.get("ca")
    if not isinstance(ca_group, click.Group):
        raise RuntimeError("ca.cli.key_cmds registers into the `ca` group: ca_cmds must be registered first")
    ca_group.add_command(ca_destroy_key)
