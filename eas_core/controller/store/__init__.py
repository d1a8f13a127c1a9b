"""Persistent state: SQLAlchemy tables and the repository over them."""

from eas_core.controller.store.alerts import AlertStateRecord, AlertStore, DeliveryRecord
from eas_core.controller.store.groups import GroupRecord, GroupStore
from eas_core.controller.store.repository import Repository, ServiceRecord, VersionRecord
from eas_core.controller.store.scaling import EventRecord, ScaleRuleRecord, ScalingStore
from eas_core.controller.store.series import COARSE, FINE, Point, SeriesStore
from eas_core.controller.store.shadow import ShadowSettingRecord, ShadowStore
from eas_core.controller.store.state import RollbackPoint, ServiceState

__all__ = [
    "COARSE",
    "FINE",
    "AlertStateRecord",
    "AlertStore",
    "DeliveryRecord",
    "EventRecord",
    "GroupRecord",
    "GroupStore",
    "Point",
    "Repository",
    "RollbackPoint",
    "ScaleRuleRecord",
    "ScalingStore",
    "SeriesStore",
    "ServiceRecord",
    "ServiceState",
    "ShadowSettingRecord",
    "ShadowStore",
    "VersionRecord",
]
