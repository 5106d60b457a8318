"""CA core: CAs, keys, certificates, revocations, operators, shares, audit

Revision ID: 0001
Revises: (none, first migration)
Create Date: 2026-11-22 02:49:42.728873

The previous release must keep working against this schema while it rolls out.
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_occurred_at'), ['occurred_at'], unique=False)

    op.create_table('cas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.Enum('bridge', 'regional', 'external', name='cakind', native_enum=False, length=24), nullable=False),
    sa.Column('subject_dn', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('active', 'compromised', 'terminated', name='castatus', native_enum=False, length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('operators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('credential_hash', sa.String(length=255), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('share_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_label', sa.String(length=64), nullable=False),
    sa.Column('threshold', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('key_generations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('key_label', sa.String(length=128), nullable=True),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('spki_der', sa.LargeBinary(), nullable=False),
    sa.Column('ski', sa.LargeBinary(length=32), nullable=False),
    sa.Column('status', sa.Enum('active', 'retired', 'compromised', name='keystatus', native_enum=False, length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ca_id', 'generation'),
    sa.UniqueConstraint('key_label')
    )
    with op.batch_alter_table('key_generations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_key_generations_ski'), ['ski'], unique=False)

    op.create_table('operator_roles',
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.Enum('ca-administrator', 'key-manager', 'receptionist', 'reviewer', 'approver', 'senior-operator', 'operator', 'internal-auditor', name='role', native_enum=False, length=24), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], ),
    sa.PrimaryKeyConstraint('operator_id', 'role')
    )
    op.create_table('share_holders',
    sa.Column('share_set_id', sa.Integer(), nullable=False),
    sa.Column('share_index', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], ),
    sa.ForeignKeyConstraint(['share_set_id'], ['share_sets.id'], ),
    sa.PrimaryKeyConstraint('share_set_id', 'share_index')
    )
    op.create_table('certificates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('issuer_ca_id', sa.Integer(), nullable=False),
    sa.Column('issuer_key_id', sa.Integer(), nullable=False),
    sa.Column('subject_ca_id', sa.Integer(), nullable=True),
    sa.Column('subject_key_id', sa.Integer(), nullable=True),
    sa.Column('key_label', sa.String(length=128), nullable=True),
    sa.Column('kind', sa.Enum('subscriber', 'self-signed', 'cross', 'link-old-with-new', 'link-new-with-old', 'ocsp-responder', 'cvs-server', 'tls', name='certkind', native_enum=False, length=24), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('subject_dn', sa.Text(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fingerprint_sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issuer_ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['issuer_key_id'], ['key_generations.id'], ),
    sa.ForeignKeyConstraint(['subject_ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['subject_key_id'], ['key_generations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('fingerprint_sha256'),
    sa.UniqueConstraint('issuer_ca_id', 'serial', name='uq_certificates_issuer_serial')
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificates_issuer_key_id'), ['issuer_key_id'], unique=False)
        batch_op.create_index('ix_certificates_kind_issuer', ['kind', 'issuer_ca_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_certificates_subject_ca_id'), ['subject_ca_id'], unique=False)

    op.create_table('revocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('issuer_ca_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('revocation_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.SmallInteger(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entry_der', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ),
    sa.ForeignKeyConstraint(['issuer_ca_id'], ['cas.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('certificate_id')
    )
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.create_index('ix_revocations_issuer_serial', ['issuer_ca_id', 'serial'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('revocations', schema=None) as batch_op:
        batch_op.drop_index('ix_revocations_issuer_serial')

    op.drop_table('revocations')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificates_subject_ca_id'))
        batch_op.drop_index('ix_certificates_kind_issuer')
        batch_op.drop_index(batch_op.f('ix_certificates_issuer_key_id'))

    op.drop_table('certificates')
    op.drop_table('share_holders')
    op.drop_table('operator_roles')
    with op.batch_alter_table('key_generations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_key_generations_ski'))

    op.drop_table('key_generations')
    op.drop_table('share_sets')
    op.drop_table('operators')
    op.drop_table('cas')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_occurred_at'))

    op.drop_table('audit_events')
