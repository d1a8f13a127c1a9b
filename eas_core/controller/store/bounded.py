"""Row sets kept to a fixed size: a service's events, an alert's deliveries."""

from __future__ import annotations

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session


def keep_latest(
    session: Session, id_column: InstrumentedAttribute[int], owner: ColumnElement[bool], kept: int
) -> None:
    """Delete all but the newest ``kept`` rows that ``owner`` selects (ids grow with time)."""
    newest_first = select(id_column).where(owner).order_by(id_column.desc())
    cutoff = session.scalar(newest_first.offset(kept).limit(1))
    if cutoff is not None:
        session.execute(delete(id_column.class_).where(owner, id_column <= cutoff))
