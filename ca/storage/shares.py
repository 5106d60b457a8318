"""Activation share sets: which key managers hold the M-of-N shares that activate a token."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ca.errors import NotFound
from ca.storage.base import SessionStore
from ca.storage.models import Operator, ShareHolder, ShareSet


class ShareReads(SessionStore):
    def active_share_set(self, token_label: str) -> ShareSet:
        found = self.session.scalar(
            sa.select(ShareSet).options(selectinload(ShareSet.holders).selectinload(ShareHolder.operator))
            .where(ShareSet.token_label == token_label, ShareSet.active.is_(True))
            .order_by(ShareSet.id.desc()).limit(1)
        )
        if found is None:
            raise NotFound(f"no activation share set for token {token_label!r}; run `revoca init`")
        return found


class ShareWrites(ShareReads):
    def add_share_set(self, *, token_label: str, threshold: int, total: int, now: dt.datetime) -> ShareSet:
        for old in self.session.scalars(sa.select(ShareSet).where(ShareSet.token_label == token_label)):
            old.active = False
        share_set = ShareSet(token_label=token_label, threshold=threshold, total=total, created_at=now)
        self.session.add(share_set)
        self.session.flush()
        return share_set

    def add_share_holder(self, share_set: ShareSet, *, index: int, operator: Operator, digest: bytes) -> None:
        self.session.add(ShareHolder(share_set_id=share_set.id, share_index=index, operator_id=operator.id,
                                     digest=digest))
        self.session.flush()
