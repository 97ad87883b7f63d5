"""spike alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 21:41:46.478871
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_alerts_key_status', 'alerts', ['key', 'status'], unique=False)
    op.create_index(op.f('ix_alerts_kind'), 'alerts', ['kind'], unique=False)
    op.create_index(op.f('ix_alerts_opened_at'), 'alerts', ['opened_at'], unique=False)
    op.create_table('entity_aliases',
    sa.Column('alias', sa.String(length=256), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('alias', name=op.f('pk_entity_aliases'))
    )
    op.create_table('article_keys',
    sa.Column('article_id', sa.String(length=128), nullable=False),
    sa.Column('key', sa.String(length=256), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('negative', sa.Float(), nullable=False),
    sa.Column('sentiment', sa.Float(), nullable=False),
    sa.Column('is_negative', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['news_articles.id'], name=op.f('fk_article_keys_article_id_news_articles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('article_id', 'key', name=op.f('pk_article_keys'))
    )
    op.create_index('ix_article_keys_key_time', 'article_keys', ['key', 'event_time'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_article_keys_key_time', table_name='article_keys')
    op.drop_table('article_keys')
    op.drop_table('entity_aliases')
    op.drop_index(op.f('ix_alerts_opened_at'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_kind'), table_name='alerts')
    op.drop_index('ix_alerts_key_status', table_name='alerts')
    op.drop_table('alerts')
