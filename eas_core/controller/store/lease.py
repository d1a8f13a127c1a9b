"""The controller's leader lease: of several controllers on one store, one is active.

On PostgreSQL the lease is a session-level advisory lock held on a connection of its own,
opened for nothing else. PostgreSQL releases the lock the moment that connection ends — the
leader process exits, is killed, or its machine's TCP connection is reset — so a dead
leader never has to be expired by a clock, and a standby polling ``pg_try_advisory_lock``
takes over within one poll. A SQLite store lives on one machine and is only ever opened by
one controller: the lease is simply held.

The holder writes its own address into the ``meta`` table, so a standby can tell callers
where the leader is.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from eas_core.controller.store.repository import driver_url
from eas_core.controller.store.tables import MetaRow
from eas_core.errors import EASError

log = logging.getLogger(__name__)

# The advisory lock's key: any constant 64-bit number, the same for every controller of an
# installation ("OpenEAS" in ASCII). Another application on the same database would have to
# pick this very number to collide.
LEASE_KEY = 0x4F70656E454153
LEADER_KEY = "leader"
# TCP keep-alives on the lease connection: a leader whose machine vanishes without closing
# its connection loses the lock once PostgreSQL notices, about idle + interval * count.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


class LeaderLease:
    def __init__(self, url: str, address: str) -> None:
        self.address = address
        self.url = driver_url(url)
        self.shared = make_url(self.url).get_backend_name() == "postgresql"
        connect_args = KEEPALIVES if self.shared else {}
        # NullPool: the lease connection is never handed back to a pool (and so never
        # reused or reset by one); a standby's failed tries leave nothing open behind.
        try:
            self.engine: Engine = create_engine(
                self.url, poolclass=NullPool, connect_args=connect_args
            )
        except ModuleNotFoundError as exc:
            shown = make_url(self.url).render_as_string(hide_password=True)
            raise EASError(
                f"store {shown}: its database driver {exc.name} is not installed "
                "(pip install 'openeas[postgresql]')"
            ) from None
        self.connection: Connection | None = None
        self.held = not self.shared

    def try_acquire(self, *, unreachable_ok: bool = True) -> bool:
        """Take the lease if no other controller holds it; True once it is ours. A store
        that cannot be reached is a refusal to retry later, or, with ``unreachable_ok``
        false (a controller's first try, so that a wrong address fails the start), an error.
        """
        if self.held:
            return True
        try:
            connection = self.engine.connect()
        except SQLAlchemyError as exc:
            if not unreachable_ok:
                shown = make_url(self.url).render_as_string(hide_password=True)
                raise EASError(f"store {shown}: cannot connect to it: {exc}") from None
            log.warning("cannot reach the store to take the leader lease: %s", exc)
            return False
        try:
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": LEASE_KEY}
            ).scalar_one()
            connection.commit()  # a session-level lock outlives the transaction
        except SQLAlchemyError as exc:
            connection.close()
            log.warning("cannot take the leader lease: %s", exc)
            return False
        if not taken:
            connection.close()
            return False
        self.connection = connection
        self.held = True
        return True

    def announce(self) -> None:
        """Write this controller's address as the leader's, for standbys to point at (once
        the schema is there: the repository has migrated the store)."""
        with Session(self.engine) as session:
            session.merge(MetaRow(key=LEADER_KEY, value=self.address))
            session.commit()

    def leader(self) -> str | None:
        """The address the current (or last) leader announced, None if none ever did."""
        try:
            with Session(self.engine) as session:
                row = session.get(MetaRow, LEADER_KEY)
                return row.value if row is not None else None
        except SQLAlchemyError:
            return None

    def alive(self) -> bool:
        """Whether the lease is still ours: the lease connection still answers."""
        if not self.shared:
            return True
        if self.connection is None:
            return False
        try:
            self.connection.execute(text("SELECT 1")).scalar_one()
            self.connection.commit()
        except SQLAlchemyError as exc:
            log.error("the leader lease's connection failed: %s", exc)
            return False
        return True

    def release(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(SQLAlchemyError):
                self.connection.close()  # ending the session releases the lock
            self.connection = None
        self.held = not self.shared
        self.engine.dispose()
