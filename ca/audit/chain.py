"""The audit hash chain: each record commits to the one before it (seed 001, seed 004 5.4).

A record's link is SHA-256(previous link || canonical bytes of the record).  The encoding is
frozen (migration 0006 keeps its own copy, which a test compares with this one) and lives with
the commit-time linking in the storage layer, ca.storage.audit_chain: records are linked when
their transaction commits, under a lock on the one `audit_head` row, so chain order is commit
order.  Here it is named for the code that verifies the chain.
"""

from __future__ import annotations

from ca.storage.audit_chain import GENESIS, HEAD_ID, canonical, link, link_event

__all__ = ["GENESIS", "HEAD_ID", "canonical", "link", "link_event"]
