"""ReadStore and Store: the CA core's queries, composed from one module per aggregate (in the
manner of Boulder's SA).

- ca.storage.authorities: CAs, key generations, certificates
- ca.storage.operators: operators and their roles, password checks
- ca.storage.shares: activation share sets
- ca.storage.crl_issuance: CRL numbers, the entry stream, the archive, the publication outbox
- ca.storage.revocations: requests, revocations, RA terminals (RevocationReadStore, RevocationStore)

`ReadStore` only reads, so a status page or OCSP can be handed one with a read-only
session; `Store` adds the writes.  Callers own the transaction (ca.storage.engine.session_scope).
"""

from __future__ import annotations

from ca.storage.authorities import AuthorityReads, AuthorityWrites
from ca.storage.crl_issuance import CRLIssuanceReads, CRLIssuanceWrites
from ca.storage.operators import OperatorReads, OperatorWrites
from ca.storage.shares import ShareReads, ShareWrites


class ReadStore(AuthorityReads, OperatorReads, ShareReads, CRLIssuanceReads):
    pass


class Store(ReadStore, AuthorityWrites, OperatorWrites, ShareWrites, CRLIssuanceWrites):
    pass
