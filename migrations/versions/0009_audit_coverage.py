"""Audit coverage: signed online requests kept, retention per record kind (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 20:00:00

New tables and one nullable column; the previous release keeps working against this schema.
- revocation_requests.signed_request: an online request's CMS SignedData as it was received;
- directory_reads: ARL, CA certificate, cross pair and verifier certificate reads from slapd's
  accesslog (beside crl_fetches);
- service_runs: each start of a long-running service, and how it stopped;
- audit_archive: copies of audit record ranges, archived before any prune.
The downgrade refuses while signed requests, directory reads or archived audit ranges exist:
they are archive records (seed 004 5.5, sealed into the audit chain), and 0008 has nowhere to
keep them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('revocation_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signed_request', sa.LargeBinary(), nullable=True))

    op.create_table('directory_reads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('log_key', sa.String(length=64), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bind_dn', sa.Text(), nullable=False),
    sa.Column('verifier_id', sa.Integer(), nullable=True),
    sa.Column('dn', sa.Text(), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=True),
    sa.Column('objects', sa.String(length=64), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('arl_number', sa.BigInteger(), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('ldap_result', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['verifier_id'], ['verifiers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('log_key')
    )
    with op.batch_alter_table('directory_reads', schema=None) as batch_op:
        batch_op.create_index('ix_directory_reads_read_at', ['read_at'], unique=False)
        batch_op.create_index('ix_directory_reads_verifier_id', ['verifier_id'], unique=False)

    op.create_table('service_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('service', sa.String(length=32), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('stop', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('service_runs', schema=None) as batch_op:
        batch_op.create_index('ix_service_runs_open', ['service', 'host', 'stopped_at'], unique=False)

    op.create_table('audit_archive',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('first_seq', sa.BigInteger(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('first_seq'),
    sa.UniqueConstraint('last_seq')
    )


def downgrade() -> None:
    bind = op.get_bind()
    kept = bind.execute(sa.text(
        "SELECT (SELECT COUNT(*) FROM revocation_requests WHERE signed_request IS NOT NULL) "
        "+ (SELECT COUNT(*) FROM directory_reads) + (SELECT COUNT(*) FROM audit_archive)")).scalar()
    if kept:
        raise RuntimeError(f"{kept} signed online requests, directory reads or archived audit ranges exist; "
                           "revision 0008 cannot keep them, so the database stays at 0009")
    op.drop_table('audit_archive')
    with op.batch_alter_table('service_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_service_runs_open')
    op.drop_table('service_runs')
    with op.batch_alter_table('directory_reads', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_reads_verifier_id')
        batch_op.drop_index('ix_directory_reads_read_at')
    op.drop_table('directory_reads')
    with op.batch_alter_table('revocation_requests', schema=None) as batch_op:
        batch_op.drop_column('signed_request')
