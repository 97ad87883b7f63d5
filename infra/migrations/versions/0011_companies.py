"""companies: the company master that entity linking resolves mentions to

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'companies',
        sa.Column('id', sa.String(length=128), nullable=False),
        sa.Column('name', sa.String(length=256), nullable=False),
        sa.Column('tickers', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column('isin', sa.String(length=12), nullable=True),
        sa.Column('lei', sa.String(length=20), nullable=True),
        sa.Column('aliases', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column('industries', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"),
                  nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_companies')),
    )
    op.create_index(op.f('ix_companies_isin'), 'companies', ['isin'], unique=False)
    op.create_index(op.f('ix_companies_source'), 'companies', ['source'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_companies_source'), table_name='companies')
    op.drop_index(op.f('ix_companies_isin'), table_name='companies')
    op.drop_table('companies')
