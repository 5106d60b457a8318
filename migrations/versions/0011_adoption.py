"""Adoption of an existing CA (issue 14): revocations known only by serial, one per serial

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00

The revocation history of an adopted CA comes from its previous system's last CRL/ARL: a
serial, a date and a reason, usually for certificates revoca has never seen.  Such a
revocation has no certificate row, so revocations.certificate_id becomes nullable; when the
certificate is imported later (`revoca cert import`) the row is linked to it.  A serial is
revoked at most once per issuing CA, which the unique index now says (it replaces the plain
index on the same columns: the certificate_id unique constraint said it for linked rows only).
The previous release keeps working: it never writes a NULL certificate_id, and its own
revocations are one per serial already.  The downgrade refuses while unlinked rows exist.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.alter_column('certificate_id', existing_type=sa.Integer(), nullable=True)
        batch_op.drop_index('ix_revocations_issuer_serial')
        batch_op.create_index('uq_revocations_issuer_serial', ['issuer_ca_id', 'serial'], unique=True)


def downgrade() -> None:
    unlinked = op.get_bind().execute(sa.text(
        "SELECT COUNT(*) FROM revocations WHERE certificate_id IS NULL")).scalar()
    if unlinked:
        raise RuntimeError(f"{unlinked} imported revocations have no certificate row; revision 0010 cannot "
                           "hold them, so the database stays at 0011")
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.drop_index('uq_revocations_issuer_serial')
        batch_op.create_index('ix_revocations_issuer_serial', ['issuer_ca_id', 'serial'], unique=False)
        batch_op.alter_column('certificate_id', existing_type=sa.Integer(), nullable=False)
