"""stories: near-duplicate articles grouped into one story; spike windows count stories

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 20:45:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stories',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('headline', sa.Text(), nullable=False),
    sa.Column('normalized', sa.Text(), nullable=False),
    sa.Column('outlets', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stories'))
    )
    op.create_index(op.f('ix_stories_last_seen'), 'stories', ['last_seen'], unique=False)
    op.add_column('news_articles', sa.Column('story_id', sa.String(length=128), nullable=True))
    op.create_index(op.f('ix_news_articles_story_id'), 'news_articles', ['story_id'], unique=False)
    op.add_column('article_keys', sa.Column('story_id', sa.String(length=128), nullable=True))
    op.create_index('ix_article_keys_event_time', 'article_keys', ['event_time'], unique=False)
    # Articles stored before stories existed are each their own story (windows count them as before).


def downgrade() -> None:
    op.drop_index('ix_article_keys_event_time', table_name='article_keys')
    op.drop_column('article_keys', 'story_id')
    op.drop_index(op.f('ix_news_articles_story_id'), table_name='news_articles')
    op.drop_column('news_articles', 'story_id')
    op.drop_index(op.f('ix_stories_last_seen'), table_name='stories')
    op.drop_table('stories')
