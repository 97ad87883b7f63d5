"""news pipeline tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 21:37:55.359682
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('topic', sa.String(length=256), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('key', sa.LargeBinary(), nullable=True),
    sa.Column('value', sa.LargeBinary(), nullable=True),
    sa.Column('value_sha256', sa.String(length=64), nullable=False),
    sa.Column('value_size', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters')),
    sa.UniqueConstraint('topic', 'partition', 'offset', 'value_sha256', name='uq_dead_letters_message')
    )
    op.create_index(op.f('ix_dead_letters_reason'), 'dead_letters', ['reason'], unique=False)
    op.create_table('news_articles',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=256), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('tickers', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('sentiment_label', sa.String(length=16), nullable=False),
    sa.Column('sentiment_score', sa.Float(), nullable=False),
    sa.Column('negative', sa.Float(), nullable=False),
    sa.Column('neutral', sa.Float(), nullable=False),
    sa.Column('positive', sa.Float(), nullable=False),
    sa.Column('model_version', sa.String(length=128), nullable=False),
    sa.Column('kafka_partition', sa.Integer(), nullable=False),
    sa.Column('kafka_offset', sa.BigInteger(), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_news_articles'))
    )
    op.create_index(op.f('ix_news_articles_event_time'), 'news_articles', ['event_time'], unique=False)
    op.create_index('ix_news_articles_sentiment_time', 'news_articles', ['sentiment_label', 'event_time'], unique=False)
    op.create_table('entity_mentions',
    sa.Column('article_id', sa.String(length=128), nullable=False),
    sa.Column('start', sa.Integer(), nullable=False),
    sa.Column('end', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('entity_key', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['news_articles.id'], name=op.f('fk_entity_mentions_article_id_news_articles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('article_id', 'start', 'end', 'label', name=op.f('pk_entity_mentions'))
    )
    op.create_index(op.f('ix_entity_mentions_entity_key'), 'entity_mentions', ['entity_key'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_entity_mentions_entity_key'), table_name='entity_mentions')
    op.drop_table('entity_mentions')
    op.drop_index('ix_news_articles_sentiment_time', table_name='news_articles')
    op.drop_index(op.f('ix_news_articles_event_time'), table_name='news_articles')
    op.drop_table('news_articles')
    op.drop_index(op.f('ix_dead_letters_reason'), table_name='dead_letters')
    op.drop_table('dead_letters')
