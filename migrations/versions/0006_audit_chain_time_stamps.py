"""Audit hash chain, time-stamps and archive stamps

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 12:00:00

Chains the audit records of earlier releases in id order, then makes seq and chain_hash
required.  The link encoding is copied here, not imported: a migration must keep meaning what
it meant when it was written.  tests check that it equals ca.audit.chain's, which is frozen.  A previous release would append unchained records,
so stop it before upgrading.
"""
import datetime as dt
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

GENESIS = bytes(32)
HEAD_ID = 1


def link(previous: bytes, seq: int, occurred_at: dt.datetime, event_type: str, result: str, actor: str,
         detail: str) -> bytes:
    """SHA-256(previous link || canonical record), as ca.audit.chain wrote it in release 0006."""
    at = occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    canonical = json.dumps([seq, at, event_type, result, actor, detail], ensure_ascii=False,
                           separators=(",", ":")).encode()
    return hashlib.sha256(previous + canonical).digest()


def upgrade() -> None:
    op.create_table('time_stamps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('gen_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('hash_algorithm', sa.String(length=16), nullable=False),
    sa.Column('message_imprint', sa.LargeBinary(length=64), nullable=False),
    sa.Column('requester', sa.String(length=128), nullable=False),
    sa.Column('token', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('serial')
    )
    with op.batch_alter_table('time_stamps', schema=None) as batch_op:
        batch_op.create_index('ix_time_stamps_gen_time', ['gen_time'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('chain_hash', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_checkpoints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('chain_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('time_stamp_id', sa.Integer(), nullable=False),
    sa.Column('pruned_from', sa.BigInteger(), nullable=True),
    sa.Column('pruned_count', sa.BigInteger(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['time_stamp_id'], ['time_stamps.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.create_index('ix_audit_checkpoints_seq', ['seq'], unique=False)

    op.create_table('archive_stamps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_type', sa.String(length=32), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('last_item_id', sa.Integer(), nullable=True),
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('time_stamp_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['time_stamp_id'], ['time_stamps.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('archive_stamps', schema=None) as batch_op:
        batch_op.create_index('ix_archive_stamps_item', ['item_type', 'item_id'], unique=False)
        batch_op.create_index('ix_archive_stamps_time_stamp_id', ['time_stamp_id'], unique=False)

    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('chain_hash', sa.LargeBinary(length=32), nullable=True))
    _chain_existing_records()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column('chain_hash', existing_type=sa.LargeBinary(length=32), nullable=False)
        batch_op.create_unique_constraint('uq_audit_events_seq', ['seq'])


def _chain_existing_records() -> None:
    events = sa.table('audit_events', sa.column('id', sa.Integer), sa.column('occurred_at', sa.DateTime(timezone=True)),
                      sa.column('event_type', sa.String), sa.column('result', sa.String),
                      sa.column('actor', sa.String), sa.column('detail', sa.Text),
                      sa.column('seq', sa.BigInteger), sa.column('chain_hash', sa.LargeBinary))
    head = sa.table('audit_head', sa.column('id', sa.Integer), sa.column('seq', sa.BigInteger),
                    sa.column('chain_hash', sa.LargeBinary))
    bind = op.get_bind()
    rows = bind.execute(sa.select(events.c.id, events.c.occurred_at, events.c.event_type, events.c.result,
                                  events.c.actor, events.c.detail).order_by(events.c.id)).all()
    previous, seq = GENESIS, 0
    for row in rows:
        seq += 1
        at = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=dt.UTC)
        previous = link(previous, seq, at, row.event_type, row.result, row.actor, row.detail)
        bind.execute(events.update().where(events.c.id == row.id).values(seq=seq, chain_hash=previous))
    bind.execute(head.insert().values(id=HEAD_ID, seq=seq, chain_hash=previous))


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_audit_events_seq', type_='unique')
        batch_op.drop_column('chain_hash')
        batch_op.drop_column('seq')
    with op.batch_alter_table('archive_stamps', schema=None) as batch_op:
        batch_op.drop_index('ix_archive_stamps_time_stamp_id')
        batch_op.drop_index('ix_archive_stamps_item')
    op.drop_table('archive_stamps')
    with op.batch_alter_table('audit_checkpoints', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_checkpoints_seq')
    op.drop_table('audit_checkpoints')
    op.drop_table('audit_head')
    with op.batch_alter_table('time_stamps', schema=None) as batch_op:
        batch_op.drop_index('ix_time_stamps_gen_time')
    op.drop_table('time_stamps')
