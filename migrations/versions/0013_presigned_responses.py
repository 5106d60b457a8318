"""Pre-signed OCSP responses shared by every responder (issue 16)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00

A new table only (ocsp_presigned, ca.storage.models.PresignedResponse): the background signer
(`revoca serve ocsp-signer`) fills it and responders read it.  Responders of the previous
release ignore it, so it can roll out while they run; downgrading drops answers that the
signer makes again.
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ocsp_presigned',
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('revocation_id', sa.Integer(), nullable=True),
    sa.Column('responder_serial', sa.String(length=42), nullable=True),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refresh_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signed', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['key_id'], ['key_generations.id'], ),
    sa.ForeignKeyConstraint(['revocation_id'], ['revocations.id'], ),
    sa.PrimaryKeyConstraint('key_id', 'serial')
    )
    with op.batch_alter_table('ocsp_presigned', schema=None) as batch_op:
        batch_op.create_index('ix_ocsp_presigned_refresh_at', ['refresh_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ocsp_presigned', schema=None) as batch_op:
        batch_op.drop_index('ix_ocsp_presigned_refresh_at')
    op.drop_table('ocsp_presigned')
