"""outbox: every record sent to Kafka is first a row written with what it reports (agents/outbox.py)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox',
        sa.Column('topic', sa.String(length=64), nullable=False),
        sa.Column('source_id', sa.String(length=128), nullable=False),
        sa.Column('key', sa.LargeBinary(), nullable=True),
        sa.Column('value', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('produced_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('topic', 'source_id', name=op.f('pk_outbox')),
    )
    op.create_index('ix_outbox_due', 'outbox', ['due_at'], postgresql_where=sa.text('produced_at IS NULL'))
    # replies the desk stored but never produced: the worker's sweep sends them now
    op.execute("""
        insert into outbox (topic, source_id, key, value, due_at)
        select 'chat.outbound', message_id, convert_to(conversation_id, 'UTF8'),
               convert_to(jsonb_build_object('message_id', message_id, 'conversation_id', conversation_id,
                                             'text', text, 'sent_by', sent_by, 'auto', auto,
                                             'edited', edited)::text, 'UTF8'), now()
        from outbound_replies where produced_at is null""")


def downgrade() -> None:
    op.drop_index('ix_outbox_due', table_name='outbox')
    op.drop_table('outbox')
