"""What the LDAP repository holds now, read back from slapd: each CA's CRL and ARL as relying
parties fetch them (issue 15).

Found: with a clock 50 h ahead, the archive's newest lists looked fine to `revoca status` while
what slapd served was about to expire.  Relying parties see the directory, not the archive, so
the expiry warnings (ca.health.published_list_findings) are computed from these read-backs:
the number and nextUpdate parsed out of the attribute values slapd returns.
"""

from __future__ import annotations

import datetime as dt

from asn1crypto import crl as asn1_crl

from ca.enums import CAKind, ListType
from ca.health import HeldList
from ca.storage.engine import Engine, session_scope
from ca.storage.public import PublicReads
from repository import entries
from repository.directory import Directory, Endpoint

ATTRIBUTE = {ListType.CRL: entries.CRL_ATTR, ListType.ARL: entries.ARL_ATTR}


def held_lists(engine: Engine, endpoint: Endpoint, base_dn: str) -> list[HeldList]:
    """Per CA revoca issues lists for, and per list type, what the directory at `endpoint` holds
    (number and nextUpdate None when it holds none or an unreadable value).  Raises
    RepositoryUnavailable when slapd does not answer."""
    with session_scope(engine, readonly=True) as session:
        cas = [ca for ca in PublicReads(session).cas() if ca.kind is not CAKind.EXTERNAL]
    held = []
    with Directory(endpoint) as directory:
        for ca in cas:
            dn = entries.ca_entry_dn(ca, base_dn)
            entry = directory.read(dn, tuple(ATTRIBUTE.values()))
            for list_type, attr in ATTRIBUTE.items():
                values = entry.values(attr) if entry is not None else []
                # the newest: a retired key's own list may sit beside it (ca.crl.old_keys)
                number, next_update = max((parse(v) for v in values), key=lambda p: p[0] or 0,
                                          default=(None, None))
                held.append(HeldList(ca.name, list_type, dn, number, next_update))
    return held


def parse(der: bytes) -> tuple[int | None, dt.datetime | None]:
    """The CRL number and nextUpdate of a CRL/ARL value (None, None when it cannot be read)."""
    try:
        crl = asn1_crl.CertificateList.load(der)
        number = crl.crl_number_value.native if crl.crl_number_value is not None else None
        next_update = crl["tbs_cert_list"]["next_update"].native
    except Exception:  # whatever sits in the directory, it is reported, not raised
        return None, None
    return number, next_update.astimezone(dt.UTC) if next_update is not None else None
