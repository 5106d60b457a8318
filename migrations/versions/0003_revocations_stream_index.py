"""Index revocations by (issuer, list, id): the CRL stream and its new-rows query are range scans

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:45:00

The previous release must keep working against this schema while it rolls out.
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.drop_index('ix_revocations_issuer_list')
        batch_op.create_index('ix_revocations_issuer_list_id', ['issuer_ca_id', 'list_type', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.drop_index('ix_revocations_issuer_list_id')
        batch_op.create_index('ix_revocations_issuer_list', ['issuer_ca_id', 'list_type'], unique=False)
