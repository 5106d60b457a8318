"""The ARLs as relying parties get them: read anonymously from the LDAP repository.

The web role reads no CRL spool (the CRL files are for the scheduler and publisher alone: CRLs
are only for registered verifiers), so it takes each CA's ARL from where anyone may take it, the
directory, and keeps only an ARL whose SHA-256 is the one the database says was published:
what the page offers is then byte for byte what the CA signed and the directory holds.
"""

from __future__ import annotations

import hashlib
import logging

import ldap3
from ldap3.core import exceptions as ldap_exc

ARL_ATTRIBUTE = "authorityRevocationList;binary"
TIMEOUT_S = 5

log = logging.getLogger("revoca.web")


def directory_arls(host: str, port: int, base_dn: str) -> dict[bytes, bytes]:
    """Every ARL in the directory under `base_dn`, by SHA-256, read anonymously; {} when the
    directory cannot be reached (the pages then say the ARL is in the directory only)."""
    server = ldap3.Server(host, port=port, connect_timeout=TIMEOUT_S, get_info=ldap3.NONE)
    try:
        with ldap3.Connection(server, auto_bind=True, receive_timeout=TIMEOUT_S, read_only=True) as conn:
            entries = conn.extend.standard.paged_search(base_dn, "(authorityRevocationList=*)",
                                                       search_scope=ldap3.SUBTREE, attributes=[ARL_ATTRIBUTE],
                                                       paged_size=500, generator=False)
            found: dict[bytes, bytes] = {}
            for entry in entries:
                for value in (entry.get("raw_attributes") or {}).get(ARL_ATTRIBUTE, []):
                    found[hashlib.sha256(value).digest()] = bytes(value)
            return found
    except ldap_exc.LDAPException as exc:
        log.warning("web: the directory at %s:%d could not be read (%s); ARLs are not offered for download",
                    host, port, exc)
        return {}
