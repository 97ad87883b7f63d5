"""watchlists: companies a desk user (or everyone, when shared) follows, and the webhook each one routes alerts to

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 11:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'watchlists',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('created_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('webhook_url', sa.Text(), nullable=True),
        sa.Column('webhook_format', sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(['owner_id'], ['desk_users.id'], name=op.f('fk_watchlists_owner_id_desk_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_watchlists')),
    )
    op.create_index(op.f('ix_watchlists_owner_id'), 'watchlists', ['owner_id'], unique=False)
    op.create_table(
        'watchlist_companies',
        sa.Column('watchlist_id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.String(length=128), nullable=False),
        sa.Column('added_by', sa.String(length=64), nullable=False),
        sa.Column('added_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['watchlist_id'], ['watchlists.id'],
                                name=op.f('fk_watchlist_companies_watchlist_id_watchlists'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('watchlist_id', 'company_id', name=op.f('pk_watchlist_companies')),
    )
    op.create_index(op.f('ix_watchlist_companies_company_id'), 'watchlist_companies', ['company_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_watchlist_companies_company_id'), table_name='watchlist_companies')
    op.drop_table('watchlist_companies')
    op.drop_index(op.f('ix_watchlists_owner_id'), table_name='watchlists')
    op.drop_table('watchlists')
