"""Delta CRLs (issue 16): what each archived list holds, and which base a delta refers to

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 08:00:00

issued_crls gains
* revocations_through: the highest revocation id the list holds (its snapshot), so that a delta
  CRL lists exactly the rows after its base's; NULL for lists issued before this revision;
* base_number: for a delta CRL (list_type 'delta', a new value of the unconstrained enum
  column), the number of the base CRL its DeltaCRLIndicator names.

Delta CRLs take their numbers from the CRL's counter (RFC 5280 5.2.4: one sequence for the
complete and delta CRLs of a scope), so crl_counters needs no change.

The CRL stream's index (issuer, list, id) gains entry_der: streaming a CA's entries becomes a
scan of the index alone (ix_revocations_crl_stream replaces ix_revocations_issuer_list_id).
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('issued_crls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revocations_through', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('base_number', sa.BigInteger(), nullable=True))
    op.create_index('ix_revocations_crl_stream', 'revocations', ['issuer_ca_id', 'list_type', 'id', 'entry_der'],
                    unique=False)
    op.drop_index('ix_revocations_issuer_list_id', table_name='revocations')


def downgrade() -> None:
    op.create_index('ix_revocations_issuer_list_id', 'revocations', ['issuer_ca_id', 'list_type', 'id'], unique=False)
    op.drop_index('ix_revocations_crl_stream', table_name='revocations')
    op.execute("DELETE FROM publications WHERE item = 'delta'")
    op.execute("DELETE FROM issued_crls WHERE list_type = 'delta'")
    with op.batch_alter_table('issued_crls', schema=None) as batch_op:
        batch_op.drop_column('base_number')
        batch_op.drop_column('revocations_through')
