"""Persistent state: SQLAlchemy tables and the repository over them."""

from eas_core.controller.store.repository import Repository, ServiceRecord, VersionRecord
from eas_core.controller.store.state import RollbackPoint, ServiceState

__all__ = ["Repository", "RollbackPoint", "ServiceRecord", "ServiceState", "VersionRecord"]
