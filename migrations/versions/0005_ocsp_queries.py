"""OCSP query history

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 06:10:00

A new table only; the previous release keeps working against this schema while it rolls out.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ocsp_queries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verifier_id', sa.Integer(), nullable=True),
    sa.Column('ca_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('nonce', sa.Boolean(), nullable=False),
    sa.Column('response_status', sa.String(length=24), nullable=False),
    sa.Column('answers', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['verifier_id'], ['verifiers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ocsp_queries', schema=None) as batch_op:
        batch_op.create_index('ix_ocsp_queries_at', ['at'], unique=False)
        batch_op.create_index('ix_ocsp_queries_verifier_id', ['verifier_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ocsp_queries', schema=None) as batch_op:
        batch_op.drop_index('ix_ocsp_queries_verifier_id')
        batch_op.drop_index('ix_ocsp_queries_at')
    op.drop_table('ocsp_queries')
