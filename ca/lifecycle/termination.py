"""The end of a CA (seed 004 5.8): `revoca ca terminate`.

A CA that issues nothing new ends once every subscriber certificate it signed has expired or
been revoked.  Termination then, in this order (each step can be run again if a later one fails):

1. refuses, with the count, while any subscriber certificate is unexpired and unrevoked;
2. revokes the CA's live cross certificates in both directions (cessationOfOperation), or leaves
   them to expire, as the operator chose (`--cross revoke` / `--cross keep`);
3. issues the final CRL and ARL, signed by the current key and by every retired key that still
   owes a list (ca.crl.old_keys), and the ARL of each CA whose cross certificate to it was revoked.
   Their nextUpdate is the latest notAfter of anything the CA's keys ever signed (in practice its
   newest self-signed certificate's), never less than the usual validity: RFC 5280 5.1.2.5 makes
   nextUpdate the date by which the next list will be issued, and none will be; a relying party
   validating, at any time a path through this CA can still be valid, a signature made before the
   end must find a list that has not expired (as the US Federal PKI Common Policy asks of a
   final CRL: nextUpdate past the validity of every certificate the CA issued).  The CA/B Forum's
   10-day limit is for TLS CAs and does not apply;
4. marks the CA terminated (cas.status, cas.terminated_at), audits it and records the notice
   for the web repository (ca.storage.notices), all in one transaction;
5. seals the archive (every waiting item time-stamped, then an audit checkpoint) and exports it
   to a new directory, checkable offline with the verify.sh inside.

The final lists go to the LDAP repository through the publication queue like any list; the
publisher's certificate reconciliation takes revoked cross certificates out of the entries.
The scheduler never issues for a terminated CA again (ca.scheduler).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from ca import audit
from ca.archive.export import Exported, export
from ca.archive.stamping import stamp_round
from ca.audit import checkpoints
from ca.crl import old_keys
from ca.crl.issue import DEFAULT_VALIDITY, IssuedCRLInfo, issue_list
from ca.enums import CAKind, CAStatus, ListType
from ca.errors import AlreadyExists, InvalidInput
from ca.hsm.signer import KeyStore
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.storage.engine import Engine, session_scope
from ca.storage.revocations import RevocationStore
from ca.storage.termination import TerminationReads, TerminationWrites
from ca.timestamps import Stamper
from ca.trusted_time import ClockGuard

log = logging.getLogger("revoca.termination")
EVENT = "ca.terminated"


@dataclasses.dataclass(frozen=True, slots=True)
class Termination:
    """What `terminate` did, for the CLI."""

    ca_name: str
    terminated_at: dt.datetime
    final_lists: tuple[IssuedCRLInfo, ...]
    cross_revoked: int
    cross_kept: int
    notice: bool
    exported: Exported | None

    def lines(self) -> list[str]:
        crosses = (f"{self.cross_revoked} cross certificate(s) revoked" if self.cross_revoked
                   else f"{self.cross_kept} cross certificate(s) left to expire")
        out = [f"CA {self.ca_name} terminated at {self.terminated_at:%Y-%m-%d %H:%M:%SZ}; {crosses}"]
        out += [f"final {info.line()}" for info in self.final_lists]
        out.append("notice recorded for the web repository" if self.notice
                   else "no notice store in this release: publish the termination notice by hand")
        if self.exported is not None:
            out.append(f"archive sealed and exported: {self.exported.items} items in {self.exported.rounds} rounds "
                       f"to {self.exported.path}; check them with {self.exported.path / 'verify.sh'}")
        return out


def final_next_update(last_not_after: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """nextUpdate of the final lists: the latest notAfter of what the CA signed, at least the usual validity."""
    floor = now.replace(microsecond=0) + DEFAULT_VALIDITY
    if last_not_after is None:
        return floor
    last = last_not_after if last_not_after.tzinfo else last_not_after.replace(tzinfo=dt.UTC)
    return max(last, floor)


def terminate(engine: Engine, keys: KeyStore, data_dir: Path, ca_name: str, *, now: dt.datetime, revoke_cross: bool,
              actor: str, time_guard: ClockGuard, export_to: Path, stamper: Stamper | None = None,
              tsa_certificates: Sequence[x509.Certificate] = ()) -> Termination:
    """End CA `ca_name` (see the module docstring).  `stamper` seals the archive (None: not sealed
    here, e.g. without a TSA); the export goes to `export_to`, which must be new or empty."""
    if export_to.exists() and (not export_to.is_dir() or any(export_to.iterdir())):
        raise InvalidInput(f"{export_to} is not an empty directory: the archive is exported into a new one")
    with session_scope(engine) as session:
        store = TerminationReads(session)
        ca = RevocationStore(session).ca(ca_name)
        if ca.kind is CAKind.EXTERNAL:
            raise InvalidInput(f"CA {ca_name} is external: its own operator ends it")
        if ca.status is CAStatus.TERMINATED:
            raise AlreadyExists(f"CA {ca_name} was terminated already, at {ca.terminated_at:%Y-%m-%d %H:%M:%SZ}")
        if ca.status is CAStatus.ADOPTING:
            raise InvalidInput(f"CA {ca_name} is being adopted; import its history first (`revoca crl import-history`)")
        ca_id = ca.id
        valid = store.valid_subscriber_count(ca_id, now)
    if valid:
        error = InvalidInput(f"CA {ca_name} cannot be terminated: {valid} subscriber certificate(s) are still valid "
                             "(unexpired and unrevoked); it ends only when every one has expired or been revoked "
                             "(seed 004 5.8); nothing was changed")
        audit.record_failure(engine, EVENT, actor=actor, error=str(error), ca=ca_name, valid_certificates=valid)
        raise error
    revoked, kept, partners = _cross_certificates(engine, ca_id, now, revoke=revoke_cross, actor=actor)
    with session_scope(engine, readonly=True) as session:
        next_update = final_next_update(TerminationReads(session).last_not_after(ca_id), now)
    validity = next_update - now.replace(microsecond=0)
    final = [issue_list(engine, keys, data_dir, ca_name, t, now=now, time_guard=time_guard, validity=validity,
                        actor=actor)
             for t in (ListType.CRL, ListType.ARL)]
    final += [issue_list(engine, keys, data_dir, ca_name, d.list_type, now=now, time_guard=time_guard,
                         validity=validity, actor=actor,
                         key_generation=d.generation)
              for d in old_keys.duties(engine, now) if d.ca_name == ca_name]
    for partner in sorted(partners):  # their ARLs now list the cross certificates they issued to this CA
        issue_list(engine, keys, data_dir, partner, ListType.ARL, now=now, time_guard=time_guard, actor=actor)
    notice = _mark(engine, ca_id, ca_name, now=now, actor=actor, final=final, revoked=revoked, kept=kept)
    if stamper is not None:
        _seal(engine, stamper, data_dir, now, actor)
    with session_scope(engine, readonly=True) as session:
        exported = export(session, data_dir, export_to, tsa_certificates)
    return Termination(ca_name, now, tuple(final), revoked, kept, notice, exported)


def _cross_certificates(engine: Engine, ca_id: int, now: dt.datetime, *, revoke: bool,
                        actor: str) -> tuple[int, int, set[str]]:
    """(revoked, left to expire, names of the other CAs whose ARL now changes)."""
    partners: set[str] = set()
    with session_scope(engine) as session:
        store = RevocationStore(session)
        live = TerminationReads(session).live_cross_certificates(ca_id, now)
        if not revoke:
            return 0, len(live), partners
        names = {c.id: c.name for c in store.cas()}
        for cert in live:
            revoke_certificate(store, cert, RevocationReason.CESSATION_OF_OPERATION, now)
            if cert.issuer_ca_id != ca_id and names.get(cert.issuer_ca_id):
                issuer = store.ca(names[cert.issuer_ca_id])
                if issuer.kind is not CAKind.EXTERNAL:
                    partners.add(issuer.name)
            audit.record(session, "ca.cross_revoked", actor=actor, at=now, issuer=names.get(cert.issuer_ca_id),
                         subject=names.get(cert.subject_ca_id or 0), serial=format(cert.serial, "x"),
                         reason="cessationOfOperation")
        return len(live), 0, partners


def _mark(engine: Engine, ca_id: int, ca_name: str, *, now: dt.datetime, actor: str,
          final: list[IssuedCRLInfo], revoked: int, kept: int) -> bool:
    """Terminated, audited and the notice recorded, in one transaction; whether a notice store exists."""
    with session_scope(engine) as session:
        store = TerminationWrites(session)
        ca = RevocationStore(session).ca(ca_name)
        store.mark_terminated(ca, now)
        audit.record(session, EVENT, actor=actor, at=now, ca=ca_name, cross_revoked=revoked, cross_kept=kept,
                     final=[f"{i.list_type.value}#{i.number}" for i in final],
                     next_update=final[0].next_update.isoformat())
        try:
            from ca.storage.notices import TERMINATION, record_notice
        except ImportError:  # a release without the web repository's notices
            return False
        record_notice(session, ca_id=ca_id, kind=TERMINATION, occurred_at=now, recorded_by=actor, now=now)
        return True


def _seal(engine: Engine, stamper: Stamper, data_dir: Path, now: dt.datetime, actor: str) -> None:
    """Every waiting archive item time-stamped, then the audit chain's head (ca.audit.keeper's work, at once)."""
    while True:
        with session_scope(engine) as session:
            if not stamp_round(session, stamper, data_dir, now):
                break
    with session_scope(engine) as session:
        checkpoints.take(session, stamper, "termination", now, actor=actor)
