"""story embedding: the founder's headline embedding, so a restart rebuilds the story index without the model

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 10:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Stories stored before have none: they are compared by Jaccard until they leave the horizon.
    op.add_column('stories', sa.Column('embedding', postgresql.ARRAY(postgresql.REAL()), nullable=True))


def downgrade() -> None:
    op.drop_column('stories', 'embedding')
