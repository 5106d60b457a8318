"""Reserved for issue 16: delta CRLs; filled by the work that needs it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 08:00:00

Reserved so that several changes landing in one session keep one straight chain of revisions.
Until filled it changes nothing.
"""

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
