"""The repository as revoca runs it: the local slapd from the settings, and the publisher wired to it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from ca.config import Settings, split_ldap_url
from ca.errors import RevocaError
from ca.storage.engine import Engine
from repository.directory import Directory, RepositoryUnavailable
from repository.publisher import Clock, LdapPublisher, utc_now
from repository.slapd import LocalSlapd

log = logging.getLogger("revoca.publisher")


def local_slapd(settings: Settings) -> LocalSlapd:
    """The slapd revoca runs on loopback under data_dir/ldap (`revoca repository start`)."""
    return LocalSlapd(settings.ldap_dir, settings.repository.base_dn, settings.repository.port)


def make_publisher(settings: Settings, engine: Engine, *, clock: Clock = utc_now) -> LdapPublisher:
    """The publisher with its side work: verifier accounts kept in step, the access log copied."""
    from repository import provision, verifier_accounts

    base_dn = settings.repository.base_dn

    def side_work(directory: Directory, now: dt.datetime) -> list[str]:
        errors = []
        for what, step in (("verifier accounts", verifier_accounts.sync), ("provision history", provision.ingest)):
            try:
                step(engine, directory, base_dn, now=now)
            except RepositoryUnavailable:
                raise
            except RevocaError as exc:  # one failing step must not stop publication
                log.warning("%s: %s", what, exc)
                errors.append(f"{what}: {exc}")
        return errors

    local = local_slapd(settings).endpoint()
    # the other providers of a mirror-mode pair (or more): the same rootdn and password (docs/deployment.md 8)
    others = [dataclasses.replace(local, host=host, port=port)
              for host, port in map(split_ldap_url, settings.repository.providers)]
    return LdapPublisher(engine, local, base_dn, settings.data_dir, clock=clock, side_work=side_work,
                         fallbacks=others)
