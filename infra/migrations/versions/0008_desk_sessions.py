"""desk sessions: sign-in attempts counted in the database (shared by every desk process), disabled users

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('desk_users', sa.Column('disabled', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.create_table('desk_login_attempts',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_desk_login_attempts'))
    )
    op.create_index(op.f('ix_desk_login_attempts_window_start'), 'desk_login_attempts', ['window_start'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_desk_login_attempts_window_start'), table_name='desk_login_attempts')
    op.drop_table('desk_login_attempts')
    op.drop_column('desk_users', 'disabled')
