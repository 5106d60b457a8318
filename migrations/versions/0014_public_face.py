"""Reserved for issue 17: web repository notices, provision reports, disclosure; filled by the work that needs it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 08:00:00

Reserved so that several changes landing in one session keep one straight chain of revisions.
Until filled it changes nothing.
"""

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
