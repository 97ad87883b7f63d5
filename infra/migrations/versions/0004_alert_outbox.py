"""alert outbox: summary and delivery time

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 18:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('summary', sa.Text(), nullable=True))
    op.add_column('alerts', sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
    # Alerts raised before the outbox existed were delivered when they were raised.
    op.execute("update alerts set delivered_at = created_at")
    op.create_index('ix_alerts_undelivered', 'alerts', ['created_at'], postgresql_where=sa.text('delivered_at is null'))


def downgrade() -> None:
    op.drop_index('ix_alerts_undelivered', table_name='alerts')
    op.drop_column('alerts', 'delivered_at')
    op.drop_column('alerts', 'summary')
