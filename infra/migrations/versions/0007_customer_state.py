"""customer state: how the customer feels (calm / frustrated / angry / leaving) on each chat message

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:10:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('chat_messages', sa.Column('customer_state', sa.String(length=16), nullable=True))
    op.add_column('chat_messages', sa.Column('customer_state_scores', postgresql.JSONB(astext_type=sa.Text()),
                                             nullable=True))


def downgrade() -> None:
    op.drop_column('chat_messages', 'customer_state_scores')
    op.drop_column('chat_messages', 'customer_state')
