"""Key destruction and responder renewal records (issue 13)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 20:00:00

Key destruction (`revoca ca destroy-key`, ca.hsm.destruction): destroyed_keys records each
private key destroyed in the token, by whom and when; a CA key's generation becomes
'destroyed' (a new KeyStatus value: stored as text, no type change).  The downgrade refuses
while a destroyed key is recorded (0009 cannot read that status, and the record must stay).
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('destroyed_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_label', sa.String(length=128), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('key_generation_id', sa.Integer(), nullable=True),
    sa.Column('certificate_id', sa.Integer(), nullable=True),
    sa.Column('destroyed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('destroyed_by', sa.String(length=255), nullable=False),
    sa.Column('token_objects', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['cas.id'], ),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], ),
    sa.ForeignKeyConstraint(['key_generation_id'], ['key_generations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_label')
    )


def downgrade() -> None:
    destroyed = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM destroyed_keys")).scalar()
    if destroyed:
        raise RuntimeError(f"{destroyed} destroyed keys are recorded; revision 0009 cannot read a destroyed "
                           "key's status, so the database stays at 0010")
    op.drop_table('destroyed_keys')
