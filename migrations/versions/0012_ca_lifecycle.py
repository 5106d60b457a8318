"""Reserved for issue 14: no-new-keys policy, termination; filled by the work that needs it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00

Reserved so that several changes landing in one session keep one straight chain of revisions.
Until filled it changes nothing.
"""

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
