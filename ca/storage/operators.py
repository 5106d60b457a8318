"""Operators (CA officers) and their roles; password checks for the CLI, the HSM service and the RA."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ca.credentials import RememberedPasswords, verify_for_unknown_name, verify_password
from ca.enums import Role
from ca.errors import AlreadyExists, NotFound, PermissionDenied
from ca.storage.base import SessionStore
from ca.storage.models import Operator, OperatorRole


class OperatorReads(SessionStore):
    def operator(self, name: str) -> Operator:
        found = self.session.scalar(
            sa.select(Operator).options(selectinload(Operator.roles)).where(Operator.name == name))
        if found is None:
            raise NotFound(f"no operator named {name!r}; add one with `revoca operator add`")
        return found

    def operators(self) -> Sequence[Operator]:
        return self.session.scalars(
            sa.select(Operator).options(selectinload(Operator.roles)).order_by(Operator.name)).all()

    def authenticate(self, name: str, password: str, role: Role, *,
                     remembered: RememberedPasswords | None = None) -> Operator:
        """The operator if the password matches and the role is held; one message for every failure.
        `remembered` skips the scrypt for a password that matched this operator's hash lately."""
        op = self.session.scalar(
            sa.select(Operator).options(selectinload(Operator.roles)).where(Operator.name == name))
        # one scrypt whatever the name: the time taken does not tell who exists or is disabled
        if op is None:
            matches = verify_for_unknown_name(password)
        elif remembered is not None:
            matches = remembered.verify(name, password, op.credential_hash)
        else:
            matches = verify_password(password, op.credential_hash)
        if op is None or op.disabled or not matches:
            raise PermissionDenied(f"operator {name!r}: unknown, disabled or wrong password")
        if role not in op.role_set:
            raise PermissionDenied(f"operator {name!r} does not hold the {role} role")
        return op


class OperatorWrites(OperatorReads):
    def add_operator(self, *, name: str, display_name: str, credential_hash: str, roles: Iterable[Role],
                     now: dt.datetime) -> Operator:
        if self.session.scalar(sa.select(Operator.id).where(Operator.name == name)):
            raise AlreadyExists(f"an operator named {name!r} already exists")
        op = Operator(name=name, display_name=display_name, credential_hash=credential_hash, created_at=now)
        op.roles = [OperatorRole(role=r) for r in sorted(set(roles))]
        self.session.add(op)
        self.session.flush()
        return op
