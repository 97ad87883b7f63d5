"""desk: users, sessions, draft decisions, reviews, outbound replies, alert lifecycle

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:40:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('reply_drafts', sa.Column('status', sa.String(length=16), server_default='pending', nullable=False))
    op.add_column('reply_drafts', sa.Column('decided_by', sa.String(length=64), nullable=True))
    op.add_column('reply_drafts', sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f('ix_reply_drafts_status'), 'reply_drafts', ['status'], unique=False)

    op.add_column('alerts', sa.Column('acknowledged_by', sa.String(length=64), nullable=True))
    op.add_column('alerts', sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('alerts', sa.Column('resolved_by', sa.String(length=64), nullable=True))
    op.add_column('alerts', sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table('desk_users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_desk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_desk_users_username'))
    )
    op.create_table('desk_sessions',
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['desk_users.id'], name=op.f('fk_desk_sessions_user_id_desk_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_sha256', name=op.f('pk_desk_sessions'))
    )
    op.create_index(op.f('ix_desk_sessions_user_id'), 'desk_sessions', ['user_id'], unique=False)
    op.create_index(op.f('ix_desk_sessions_expires_at'), 'desk_sessions', ['expires_at'], unique=False)
    op.create_table('reply_reviews',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('message_id', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('final_text', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('reviewer', sa.String(length=64), nullable=False),
    sa.Column('intent', sa.String(length=128), nullable=False),
    sa.Column('corrected_intent', sa.String(length=128), nullable=True),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['chat_messages.id'], name=op.f('fk_reply_reviews_message_id_chat_messages'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_reviews'))
    )
    op.create_index(op.f('ix_reply_reviews_message_id'), 'reply_reviews', ['message_id'], unique=False)
    op.create_table('outbound_replies',
    sa.Column('message_id', sa.String(length=128), nullable=False),
    sa.Column('conversation_id', sa.String(length=128), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('sent_by', sa.String(length=64), nullable=False),
    sa.Column('auto', sa.Boolean(), nullable=False),
    sa.Column('edited', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('produced_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['chat_messages.id'],
                            name=op.f('fk_outbound_replies_message_id_chat_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', name=op.f('pk_outbound_replies'))
    )


def downgrade() -> None:
    op.drop_table('outbound_replies')
    op.drop_index(op.f('ix_reply_reviews_message_id'), table_name='reply_reviews')
    op.drop_table('reply_reviews')
    op.drop_index(op.f('ix_desk_sessions_expires_at'), table_name='desk_sessions')
    op.drop_index(op.f('ix_desk_sessions_user_id'), table_name='desk_sessions')
    op.drop_table('desk_sessions')
    op.drop_table('desk_users')
    for column in ('resolved_at', 'resolved_by', 'acknowledged_at', 'acknowledged_by'):
        op.drop_column('alerts', column)
    op.drop_index(op.f('ix_reply_drafts_status'), table_name='reply_drafts')
    for column in ('decided_at', 'decided_by', 'status'):
        op.drop_column('reply_drafts', column)
