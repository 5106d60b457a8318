"""What `revoca audit show` lists: the audit records, with the repository's access histories
woven in (seed 004 5.4.1: "all access concerning status checking").

Verifiers' CRL fetches and everyone's reads of ARLs, CA certificates, cross pairs and verifier
accounts are kept as histories (repository.provision), not as audit records: they come at any
rate, and the audit chain commits to them in sealed ranges (ca.audit.history_seal) instead of
one chained record each.  So that the auditor still sees them where the other events are, the
timeline shows each history row as an entry of its own kind, newest first with the records:

* `repository.read` (a DirectoryRead): result success when delivered, failure when denied;
  the detail names the objects (arl, ca-certificate, cross-pair, verifier-account), the CA,
  the ARL number the directory held then and the LDAP result;
* `repository.crl_fetch` (a CRLFetch, delivered or denied): the CA and the CRL number.  A
  failed bind is an audit record already (`repository.bind`) and is not shown twice.

The actor of a history entry is the verifier's name, else the bind DN, else "anonymous".
History entries have no seq: they are sealed into the chain by range, in `history.sealed`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from ca.storage.audit import AuditReads
from ca.storage.engine import Session
from ca.storage.provision import ProvisionReads
from ca.storage.verifiers import VerifierReads

READ = "repository.read"
CRL_FETCH = "repository.crl_fetch"
ANONYMOUS = "anonymous"
HISTORY_TYPES = (READ, CRL_FETCH)


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline: an audit record (with its seq) or a history row (seq None)."""

    seq: int | None
    at: dt.datetime
    type: str
    result: str
    actor: str
    detail: dict[str, Any]
    source: str  # "audit_events", or the history table the row is in

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at.isoformat(), "type": self.type, "result": self.result,
                "actor": self.actor, "detail": self.detail, "source": self.source}


def newest(session: Session, *, limit: int, since: dt.datetime | None = None, event_type: str | None = None,
           actor: str | None = None, histories: bool = True) -> list[Entry]:
    """The newest `limit` entries, newest first; the filters as for the audit records (`actor` of a
    history entry: a verifier's name, a bind DN or "anonymous")."""
    entries = [Entry(e.seq, e.occurred_at, e.event_type, e.result, e.actor, json.loads(e.detail), "audit_events")
               for e in AuditReads(session).newest_events(limit=limit, since=since, event_type=event_type,
                                                          actor=actor)]
    if histories and (event_type is None or event_type in HISTORY_TYPES):
        entries += _history(session, limit=limit, since=since, event_type=event_type, actor=actor)
    entries.sort(key=lambda e: (e.at, e.seq or 0), reverse=True)
    return entries[:limit]


def _history(session: Session, *, limit: int, since: dt.datetime | None, event_type: str | None,
             actor: str | None) -> list[Entry]:
    store = ProvisionReads(session)
    who: dict[str, Any] = {}
    if actor is not None:
        verifier_id = VerifierReads(session).id_of(actor)
        who = {"verifier_id": verifier_id} if verifier_id is not None else \
            {"bind_dn": "" if actor == ANONYMOUS else actor}
    found: list[Entry] = []
    if event_type in (None, READ):
        for row, verifier, ca in store.reads(since=since, limit=limit, **who):
            detail = {"objects": row.objects.split(","), "dn": row.dn, "ca": ca, "arl_number": row.arl_number,
                      "entries": row.entries, "ldap_result": row.ldap_result, "delivered": row.result == "delivered",
                      "log_key": row.log_key, "id": row.id}
            found.append(Entry(None, row.read_at, READ, _result(row.result), _actor(verifier, row.bind_dn), detail,
                               "directory_reads"))
    if event_type in (None, CRL_FETCH):
        for fetch, verifier, ca in store.fetches(since=since, limit=limit, results=("delivered", "denied"), **who):
            detail = {"dn": fetch.dn, "ca": ca, "crl_number": fetch.crl_number,
                      "delivered": fetch.result == "delivered", "log_key": fetch.log_key, "id": fetch.id}
            found.append(Entry(None, fetch.fetched_at, CRL_FETCH, _result(fetch.result),
                               _actor(verifier, fetch.bind_dn), detail, "crl_fetches"))
    return found


def _result(history_result: str) -> str:
    return "success" if history_result == "delivered" else "failure"


def _actor(verifier: str | None, bind_dn: str) -> str:
    return verifier or bind_dn or ANONYMOUS
