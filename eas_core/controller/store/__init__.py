"""Persistent state: SQLAlchemy tables and the repository over them."""

from eas_core.controller.store.repository import Repository, ServiceRecord, VersionRecord

__all__ = ["Repository", "ServiceRecord", "VersionRecord"]
