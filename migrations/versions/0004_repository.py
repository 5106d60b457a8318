"""LDAP repository: publication queue, verifiers, provision history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 05:40:00

New tables only; the previous release keeps working against this schema while it rolls out.
Every CA's newest CRL and ARL is queued for publication, so an upgraded installation fills
its directory without anyone re-issuing.
"""
import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    publications = op.create_table('publications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('item', sa.Enum('certificates', 'crl', 'arl', name='publicationitem', native_enum=False, length=16), nullable=False),
    sa.Column('issued_crl_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.LargeBinary(length=32), nullable=False),
    sa.Column('state', sa.Enum('pending', 'published', 'superseded', name='publicationstate', native_enum=False, length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('dn', sa.Text(), nullable=True),
    sa.Column('csn', sa.String(length=64), nullable=True),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['issued_crl_id'], ['issued_crls.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.create_index('ix_publications_ca_item', ['ca_id', 'item', 'state'], unique=False)
        batch_op.create_index('ix_publications_state_due', ['state', 'next_attempt_at'], unique=False)

    op.create_table('verifiers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('ldap_dn', sa.Text(), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('cert_der', sa.LargeBinary(), nullable=False),
    sa.Column('cert_fingerprint', sa.LargeBinary(length=32), nullable=False),
    sa.Column('cert_subject_dn', sa.Text(), nullable=False),
    sa.Column('cert_issuer_dn', sa.Text(), nullable=False),
    sa.Column('cert_serial', sa.String(length=42), nullable=False),
    sa.Column('cert_not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('active', 'removed', name='verifierstatus', native_enum=False, length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('removed_reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('cert_fingerprint'),
    sa.UniqueConstraint('name')
    )
    op.create_table('crl_fetches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('log_key', sa.String(length=64), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('bind_dn', sa.Text(), nullable=False),
    sa.Column('verifier_id', sa.Integer(), nullable=True),
    sa.Column('dn', sa.Text(), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=True),
    sa.Column('list_type', sa.Enum('crl', 'arl', name='listtype', native_enum=False, length=8), nullable=True),
    sa.Column('crl_number', sa.BigInteger(), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['verifier_id'], ['verifiers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('log_key')
    )
    with op.batch_alter_table('crl_fetches', schema=None) as batch_op:
        batch_op.create_index('ix_crl_fetches_fetched_at', ['fetched_at'], unique=False)
        batch_op.create_index('ix_crl_fetches_verifier_id', ['verifier_id'], unique=False)

    _queue_newest_lists(publications)


def _queue_newest_lists(publications: sa.Table) -> None:
    """Queue each CA's newest CRL and ARL (what the previous release issued but never published)."""
    bind = op.get_bind()
    issued = sa.table('issued_crls', sa.column('id'), sa.column('ca_id'), sa.column('list_type'),
                      sa.column('number'), sa.column('sha256'))
    newest = (sa.select(issued.c.ca_id, issued.c.list_type, sa.func.max(issued.c.number).label('number'))
              .group_by(issued.c.ca_id, issued.c.list_type).subquery())
    rows = bind.execute(sa.select(issued.c.id, issued.c.ca_id, issued.c.list_type, issued.c.number, issued.c.sha256)
                        .join(newest, sa.and_(issued.c.ca_id == newest.c.ca_id,
                                              issued.c.list_type == newest.c.list_type,
                                              issued.c.number == newest.c.number))).all()
    now = dt.datetime.now(dt.UTC)
    if bind.dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)
    if rows:
        op.bulk_insert(publications, [
            {'ca_id': r.ca_id, 'item': r.list_type, 'issued_crl_id': r.id, 'number': r.number, 'sha256': r.sha256,
             'state': 'pending', 'attempts': 0, 'next_attempt_at': now, 'last_error': '', 'enqueued_at': now}
            for r in rows])


def downgrade() -> None:
    with op.batch_alter_table('crl_fetches', schema=None) as batch_op:
        batch_op.drop_index('ix_crl_fetches_verifier_id')
        batch_op.drop_index('ix_crl_fetches_fetched_at')
    op.drop_table('crl_fetches')
    op.drop_table('verifiers')
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.drop_index('ix_publications_state_due')
        batch_op.drop_index('ix_publications_ca_item')
    op.drop_table('publications')
