"""Reserved for issue 16: pre-signed OCSP responses; filled by the work that needs it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00

Reserved so that several changes landing in one session keep one straight chain of revisions.
Until filled it changes nothing.
"""

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
