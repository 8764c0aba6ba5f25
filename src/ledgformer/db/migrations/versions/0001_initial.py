"""Initial schema: graphs, platforms, measurements, predictions.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "graphs",
        sa.Column("hash", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("ir_version", sa.Integer, nullable=False),
        sa.Column("ir_json_z", sa.LargeBinary, nullable=False),
        sa.Column("n_nodes", sa.Integer, nullable=False),
        sa.Column("macs", sa.BigInteger, nullable=False),
        sa.Column("flops", sa.BigInteger, nullable=False),
        sa.Column("params", sa.BigInteger, nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "platforms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(300), nullable=False, unique=True),
        sa.Column("card_json", sa.Text, nullable=False),
        sa.Column("runtime", sa.String(100), nullable=True),
        sa.Column("runtime_version", sa.String(100), nullable=True),
        sa.Column("threads", sa.Integer, nullable=True),
        sa.Column("precision", sa.String(20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("graph_hash", sa.String(64), sa.ForeignKey("graphs.hash", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("median_ms", sa.Float, nullable=False),
        sa.Column("iqr_ms", sa.Float, nullable=False),
        sa.Column("n_repeats", sa.Integer, nullable=False),
        sa.Column("times_ms", sa.Text, nullable=False),
        sa.Column("runtime", sa.String(100), nullable=True),
        sa.Column("threads", sa.Integer, nullable=True),
        sa.Column("tool_version", sa.String(50), nullable=False),
        sa.Column("extra_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_measurements_graph_platform", "measurements", ["graph_hash", "platform_id"])
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("graph_hash", sa.String(64), sa.ForeignKey("graphs.hash", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("platform_id", sa.Integer, sa.ForeignKey("platforms.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("predictor", sa.String(200), nullable=False),
        sa.Column("predictor_version", sa.String(100), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("graph_hash", "platform_id", "predictor", "predictor_version",
                            name="uq_predictions_key"),
    )


def downgrade() -> None:
    op.drop_table("predictions")
    op.drop_index("ix_measurements_graph_platform", table_name="measurements")
    op.drop_table("measurements")
    op.drop_table("platforms")
    op.drop_table("graphs")
