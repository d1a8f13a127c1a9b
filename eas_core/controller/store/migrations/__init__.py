"""Alembic schema migrations of the controller's store (SQLite and PostgreSQL alike)."""
