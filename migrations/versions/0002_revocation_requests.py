"""revocation requests, RA terminals, CRL counters and archive

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:22:10

The previous release must keep working against this schema while it rolls out.
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('crl_counters',
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('list_type', sa.Enum('crl', 'arl', name='listtype', native_enum=False, length=8), nullable=False),
    sa.Column('last_number', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.PrimaryKeyConstraint('ca_id', 'list_type')
    )
    op.create_table('issued_crls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('list_type', sa.Enum('crl', 'arl', name='listtype', native_enum=False, length=8), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('signing_key_id', sa.Integer(), nullable=False),
    sa.Column('this_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_update', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('path', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['signing_key_id'], ['key_generations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ca_id', 'list_type', 'number', name='uq_issued_crls_number')
    )
    op.create_table('ra_terminals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('cert_fingerprint', sa.LargeBinary(length=32), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('cert_fingerprint'),
    sa.UniqueConstraint('name')
    )
    op.create_table('revocation_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('public_id', sa.String(length=36), nullable=False),
    sa.Column('channel', sa.Enum('ra-window', 'online', 'dual-control', 'ca-compromise', name='requestchannel', native_enum=False, length=24), nullable=False),
    sa.Column('status', sa.Enum('pending-review', 'pending-approval', 'completed', 'rejected', name='requeststatus', native_enum=False, length=24), nullable=False),
    sa.Column('terminal_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('request_digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.SmallInteger(), nullable=False),
    sa.Column('applicant', sa.Enum('self', 'agent', name='applicant', native_enum=False, length=8), nullable=True),
    sa.Column('identity_document_checked', sa.Boolean(), nullable=False),
    sa.Column('receptionist_id', sa.Integer(), nullable=True),
    sa.Column('reviewer_id', sa.Integer(), nullable=True),
    sa.Column('approver_id', sa.Integer(), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('receipt', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['approver_id'], ['operators.id'], ),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ),
    sa.ForeignKeyConstraint(['receptionist_id'], ['operators.id'], ),
    sa.ForeignKeyConstraint(['reviewer_id'], ['operators.id'], ),
    sa.ForeignKeyConstraint(['terminal_id'], ['ra_terminals.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('public_id'),
    sa.UniqueConstraint('terminal_id', 'idempotency_key', name='uq_requests_terminal_idempotency')
    )
    with op.batch_alter_table('revocation_requests', schema=None) as batch_op:
        batch_op.create_index('ix_requests_status', ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_revocation_requests_certificate_id'), ['certificate_id'], unique=False)

    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('list_type', sa.Enum('crl', 'arl', name='listtype', native_enum=False, length=8), server_default='crl', nullable=False))
        batch_op.add_column(sa.Column('request_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_revocations_issuer_list', ['issuer_ca_id', 'list_type'], unique=False)
        batch_op.create_foreign_key('fk_revocations_request_id', 'revocation_requests', ['request_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.drop_constraint('fk_revocations_request_id', type_='foreignkey')
        batch_op.drop_index('ix_revocations_issuer_list')
        batch_op.drop_column('request_id')
        batch_op.drop_column('list_type')

    with op.batch_alter_table('revocation_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revocation_requests_certificate_id'))
        batch_op.drop_index('ix_requests_status')

    op.drop_table('revocation_requests')
    op.drop_table('ra_terminals')
    op.drop_table('issued_crls')
    op.drop_table('crl_counters')
