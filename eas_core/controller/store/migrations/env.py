"""Alembic's entry point: runs the revisions on the connection the repository hands over.

The controller migrates at start (Repository.migrate); there is no alembic.ini — the
connection comes in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from eas_core.controller.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place: later revisions copy the table instead.
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
