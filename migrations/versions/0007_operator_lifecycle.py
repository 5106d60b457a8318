"""Operator lifecycle: approvals, password age, disable/enable (issue 13)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 20:00:00

Operators gain when their password was last set and how their account came to count as a
person in acts of several people (ca.officers.approval): made at the key ceremony, or
registered by a senior operator and approved by a second person.

Accounts from earlier releases, which one person could create alone, are left unapproved: they
still log in for acts of one person, and `revoca operator approve NAME` adopts them.  The one
exception is the holders of the active activation shares, whom the key ceremony named and gave a
share each: they are marked as made at the ceremony (so that they can adopt the others).
Their passwords' age counts from this upgrade, so that nobody is locked out on the day of it.

Only nullable columns are added, no foreign keys (names are kept, as the audit trail keeps them):
SQLite adds them in place, where copying the table would break the rows that refer to it.
The previous release keeps working against this schema.  The downgrade drops the columns; who
approved whom stays in the audit log (operator.added, operator.approved).
"""
import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('approval', sa.Enum(
            'ceremony', 'second-person', name='operatorapproval', native_enum=False, create_constraint=False,
            length=16), nullable=True))
        batch_op.add_column(sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('registered_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('approved_by', sa.String(length=255), nullable=True))

    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    if bind.dialect.name == "sqlite":  # stored as naive UTC there (ca.storage.models.UTCDateTime)
        now = now.replace(tzinfo=None)
    at = sa.bindparam("now", now, type_=sa.DateTime(timezone=True))
    bind.execute(sa.text("UPDATE operators SET password_changed_at = :now").bindparams(at))
    bind.execute(sa.text(
        "UPDATE operators SET approval = 'ceremony', approved_at = ("
        "  SELECT MIN(s.created_at) FROM share_holders h JOIN share_sets s ON s.id = h.share_set_id"
        "  WHERE h.operator_id = operators.id AND s.active = :active) "
        "WHERE id IN (SELECT h.operator_id FROM share_holders h JOIN share_sets s ON s.id = h.share_set_id"
        "  WHERE s.active = :active)").bindparams(active=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place (SQLite 3.35+): a batch copy of the table would break
    # the rows of operator_roles, share_holders and revocation_requests that refer to it
    for column in ('approved_by', 'registered_by', 'approved_at', 'approval', 'password_changed_at'):
        op.drop_column('operators', column)
