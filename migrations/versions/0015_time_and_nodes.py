"""Reserved for issue 15: clock confirmations, nodes; filled by the work that needs it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 08:00:00

Reserved so that several changes landing in one session keep one straight chain of revisions.
Until filled it changes nothing.
"""

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
