"""The CA's public face (issue 17): notices to relying parties and the provision status reports

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 08:00:00

`notices` holds what the web repository announces about a CA key compromise or a CA's
termination (seed 004 2.2, 4.9.12(1), 5.7.3, 5.8), written in the act's own transaction.
`provision_reports` keeps each monthly 「失効情報等の提供状況報告書」 (seed 004 5.2.1, 5.5.1.1,
9.3.3) as the CSV that was made, its digest and time stamp; a month made again gets a new version.
Both are new tables: the previous release keeps working and never sees them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'notices',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('ca_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sa.String(length=255), nullable=False),
        sa.Column('summary_ja', sa.Text(), nullable=False),
        sa.Column('summary_en', sa.Text(), nullable=False),
        sa.Column('action_ja', sa.Text(), nullable=False),
        sa.Column('action_en', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notices_ca_id'), ['ca_id'], unique=False)
    op.create_table(
        'provision_reports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('made_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('made_by', sa.String(length=255), nullable=False),
        sa.Column('csv', sa.LargeBinary(), nullable=False),
        sa.Column('sha256', sa.LargeBinary(length=32), nullable=False),
        sa.Column('time_stamp', sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('month', 'version', name='uq_provision_reports_month_version'),
    )


def downgrade() -> None:
    op.drop_table('provision_reports')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notices_ca_id'))
    op.drop_table('notices')
