"""entity sentiment: the sentiment toward each company or ticker an article names

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 07:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('entity_mentions', sa.Column('sentiment_label', sa.String(length=16), nullable=True))
    op.add_column('entity_mentions', sa.Column('sentiment_score', sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column('entity_mentions', 'sentiment_score')
    op.drop_column('entity_mentions', 'sentiment_label')
