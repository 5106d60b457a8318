"""RA terminals and clerks bound to CAs; municipal record-change channel (issue 13)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 20:00:00

A terminal may act only for the CAs in ra_terminal_scopes.  Terminals registered before this
revision get no row there, so they may revoke nothing until an officer binds them
(`revoca ra scope NAME --ca PREFECTURE`): failing closed is safer than guessing which
prefecture a window belongs to.  `revoca ra list` shows them as "none".
Requests gain the agent's authority (window) and the record-change event (municipal channel).
The downgrade refuses while record-change requests exist (0007 cannot read their channel).
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ra_terminals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('municipality', sa.String(length=200), server_default=sa.text("''"), nullable=False))

    op.create_table('ra_terminal_scopes',
    sa.Column('terminal_id', sa.Integer(), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['terminal_id'], ['ra_terminals.id'], ),
    sa.PrimaryKeyConstraint('terminal_id', 'ca_id')
    )

    with op.batch_alter_table('revocation_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agent_authority', sa.Enum(
            'power-of-attorney', 'parental-authority', 'guardianship', name='agentauthority', native_enum=False,
            create_constraint=False, length=24), nullable=True))
        batch_op.add_column(sa.Column('record_change_event', sa.Enum(
            'name-changed', 'address-changed', 'gender-changed', 'date-of-birth-changed', 'record-error-found',
            'death', 'emigration', 'record-deleted', 'individual-number-card-issued', name='recordchangeevent',
            native_enum=False, create_constraint=False, length=32), nullable=True))


def downgrade() -> None:
    # the previous release cannot read a request of a channel it does not know; such requests are
    # records of revocations and are never deleted, so the downgrade stops here instead
    filed = op.get_bind().execute(sa.text(
        "SELECT COUNT(*) FROM revocation_requests WHERE channel = 'record-change'")).scalar()
    if filed:
        raise RuntimeError(f"{filed} record-change revocation requests exist; revision 0007 cannot read them, "
                           "so the database stays at 0008")
    # recreate="never": SQLite (3.35+) drops a plain column in place; copying the table instead
    # would drop a table other rows refer to, which SQLite's foreign keys refuse
    with op.batch_alter_table('revocation_requests', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('record_change_event')
        batch_op.drop_column('agent_authority')

    op.drop_table('ra_terminal_scopes')

    with op.batch_alter_table('ra_terminals', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('municipality')
