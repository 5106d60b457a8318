"""Operators (CA officers) and their roles; password checks for the CLI, the HSM service and the RA.

The rules about them (role exclusivity, approval, password age) are ca.officers; this module
stores what the commands decided and checks a password's age where the caller passes its policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ca.enums import OperatorApproval, Role
from ca.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from ca.officers.credentials import RememberedPasswords, verify_for_unknown_name, verify_password
from ca.officers.passwords import PasswordPolicy, password_age
from ca.storage.base import SessionStore
from ca.storage.models import Operator, OperatorRole


class OperatorReads(SessionStore):
    def operator(self, name: str) -> Operator:
        found = self.session.scalar(
            sa.select(Operator).options(selectinload(Operator.roles)).where(Operator.name == name))
        if found is None:
            raise NotFound(f"no operator named {name!r}; see `revoca operator list`")
        return found

    def operators(self) -> Sequence[Operator]:
        return self.session.scalars(
            sa.select(Operator).options(selectinload(Operator.roles)).order_by(Operator.name)).all()

    def authenticate(self, name: str, password: str, role: Role, *,
                     remembered: RememberedPasswords | None = None, policy: PasswordPolicy | None = None,
                     now: dt.datetime | None = None) -> Operator:
        """The operator if the password matches and the role is held; one message for every failure.
        `remembered` skips the scrypt for a password that matched this operator's hash lately;
        `policy` ([operators] in revoca.toml) refuses a password past its maximum age."""
        op = self.verify_login(name, password, remembered=remembered, policy=policy, now=now)
        if role not in op.role_set:
            raise PermissionDenied(f"operator {name!r} does not hold the {role} role")
        return op

    def verify_login(self, name: str, password: str, *, remembered: RememberedPasswords | None = None,
                     policy: PasswordPolicy | None = None, now: dt.datetime | None = None,
                     allow_expired: bool = False) -> Operator:
        """The enabled operator whose password this is, whatever roles it holds (the CLI's gate
        matches several people to the roles of an act); one message for every failure.  With a
        `policy`, a password older than its maximum age is refused (after the password matched, so
        the refusal tells nothing to who does not know it) unless `allow_expired` (changing it)."""
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
        if policy is not None and not allow_expired:
            password_age(op.name, op.password_set_at, now=now or dt.datetime.now(dt.UTC), policy=policy).check()
        return op


class OperatorWrites(OperatorReads):
    def add_operator(self, *, name: str, display_name: str, credential_hash: str, roles: Iterable[Role],
                     now: dt.datetime, registered_by: str | None = None, approved_by: str | None = None,
                     made_at_ceremony: bool = False) -> Operator:
        """A new account, its password set `now`.  Approved when a second person (`approved_by`)
        approved what `registered_by` registered, or when the key ceremony makes it; else it counts
        for acts of one person only (ca.officers.approval)."""
        if self.session.scalar(sa.select(Operator.id).where(Operator.name == name)):
            raise AlreadyExists(f"an operator named {name!r} already exists")
        if approved_by is not None and made_at_ceremony:
            raise ValueError("an account is approved by a second person or made at the ceremony, not both")
        op = Operator(name=name, display_name=display_name, credential_hash=credential_hash, created_at=now,
                      password_changed_at=now, registered_by=registered_by)
        op.roles = [OperatorRole(role=r) for r in sorted(set(roles))]
        if made_at_ceremony:
            op.approval, op.approved_at = OperatorApproval.CEREMONY, now
        elif approved_by is not None:
            op.approval, op.approved_at, op.approved_by = OperatorApproval.SECOND_PERSON, now, approved_by
        self.session.add(op)
        self.session.flush()
        return op

    def operator_for_change(self, name: str) -> Operator:
        """The operator, its row locked for the rest of the transaction (PostgreSQL; SQLite's
        writer holds the database already)."""
        found = self.session.scalar(sa.select(Operator).options(selectinload(Operator.roles))
                                    .where(Operator.name == name).with_for_update())
        if found is None:
            raise NotFound(f"no operator named {name!r}; see `revoca operator list`")
        return found

    def grant_roles(self, op: Operator, roles: Iterable[Role]) -> frozenset[Role]:
        """The roles added (those not held already)."""
        added = frozenset(roles) - op.role_set
        if not added:
            raise InvalidInput(f"operator {op.name} already holds {', '.join(sorted(frozenset(roles)))}")
        op.roles.extend(OperatorRole(role=r) for r in sorted(added))
        self.session.flush()
        return added

    def revoke_roles(self, op: Operator, roles: Iterable[Role]) -> frozenset[Role]:
        """The roles removed; every one must be held, and at least one role must remain."""
        removed = frozenset(roles)
        if missing := removed - op.role_set:
            raise InvalidInput(f"operator {op.name} does not hold {', '.join(sorted(missing))}")
        if removed == op.role_set:
            raise InvalidInput(f"that would leave operator {op.name} with no role; "
                               f"`revoca operator disable {op.name}` stops the account instead")
        op.roles = [r for r in op.roles if r.role not in removed]
        self.session.flush()
        return removed

    def set_disabled(self, op: Operator, disabled: bool) -> None:
        if op.disabled == disabled:
            raise InvalidInput(f"operator {op.name} is already {'disabled' if disabled else 'enabled'}")
        op.disabled = disabled
        self.session.flush()

    def set_password(self, op: Operator, credential_hash: str, now: dt.datetime) -> None:
        op.credential_hash, op.password_changed_at = credential_hash, now
        self.session.flush()

    def approve(self, op: Operator, *, approved_by: str, now: dt.datetime) -> None:
        """Adopt an account made without a second person's approval."""
        if op.approval is not None:
            raise InvalidInput(f"operator {op.name} is approved already ({op.approval}"
                               f"{' by ' + op.approved_by if op.approved_by else ''})")
        op.approval, op.approved_at, op.approved_by = OperatorApproval.SECOND_PERSON, now, approved_by
        self.session.flush()

    def mark_made_at_ceremony(self, op: Operator, now: dt.datetime) -> None:
        """The key ceremony names `op` (it receives an activation share): it counts as a person."""
        if op.approval is None:
            op.approval, op.approved_at = OperatorApproval.CEREMONY, now
            self.session.flush()
