"""draft claims: who is editing a pending draft since when, and a version that makes a stale decision fail

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('reply_drafts', sa.Column('claimed_by', sa.String(length=64), nullable=True))
    op.add_column('reply_drafts', sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('reply_drafts', sa.Column('version', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade() -> None:
    op.drop_column('reply_drafts', 'version')
    op.drop_column('reply_drafts', 'claimed_at')
    op.drop_column('reply_drafts', 'claimed_by')
