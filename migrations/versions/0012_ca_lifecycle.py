"""The end of a CA's life (issue 14, seed 004 5.8): when it was terminated; the bulk import's journal

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00

`revoca ca terminate` ends a CA once no unexpired, unrevoked subscriber certificate remains:
its final CRL and ARL are issued, and cas.status becomes 'terminated' (a value the status
column already allows).  cas.terminated_at records when, for `revoca status`, `ca list` and the
status page, and so that the scheduler never issues for it again.  NULL for every CA that runs.

imported_files is the journal of `revoca cert import` at national scale: per file, how many of
its certificates are stored or rejected, committed with each batch, so that `--resume` goes on
where an interrupted import stopped instead of reading and verifying millions again.

The previous release keeps working: it reads neither.  The downgrade drops both (the status
'terminated' stays on the row; a later import simply has no journal to resume from).
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('terminated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        'imported_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('mtime_ns', sa.BigInteger(), nullable=False),
        sa.Column('certificates', sa.Integer(), nullable=False),
        sa.Column('finished', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('path'),
    )


def downgrade() -> None:
    op.drop_table('imported_files')
    with op.batch_alter_table('cas', schema=None) as batch_op:
        batch_op.drop_column('terminated_at')
