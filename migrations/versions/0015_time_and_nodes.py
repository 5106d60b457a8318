"""Correction requests on disclosed records (issue 17: seed 004 9.4.7.2)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 08:00:00

(Reserved first for issue 15's clock confirmations and nodes, which needed no table; the
disclosure work fills it.)  A new table only (correction_requests,
ca.storage.models.CorrectionRequest): a subscriber's request to correct, add to or delete
records disclosed to them, filed by a receptionist and decided by a reviewer and a CA
administrator, three different people.  The previous release never reads it; downgrading
drops the requests (export them first: `revoca disclose corrections --json`).
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('correction_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=36), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('requested', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('receptionist_id', sa.Integer(), nullable=False),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('approver_id', sa.Integer(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['approver_id'], ['operators.id'], ),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ),
    sa.ForeignKeyConstraint(['receptionist_id'], ['operators.id'], ),
    sa.ForeignKeyConstraint(['reviewer_id'], ['operators.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id')
    )
    with op.batch_alter_table('correction_requests', schema=None) as batch_op:
        batch_op.create_index('ix_correction_requests_certificate_id', ['certificate_id'], unique=False)
        batch_op.create_index('ix_correction_requests_status', ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('correction_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_correction_requests_status')
        batch_op.drop_index('ix_correction_requests_certificate_id')
    op.drop_table('correction_requests')
