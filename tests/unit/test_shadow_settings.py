"""Shadow settings in the store (a real SQLite file) and in the route table the controller
publishes: a setting names two services and goes when either does."""

from __future__ import annotations

from pathlib import Path

import pytest

from eas_core.controller.publisher import build_routes
from eas_core.controller.store import Repository, ShadowStore
from eas_core.errors import NotFound
from eas_core.spec.shadow import ShadowRoute

DOCUMENT = {"name": "svc", "processor": "pmml", "metadata": {"instance": 1}}


def stores(tmp_path: Path, *names: str) -> tuple[Repository, ShadowStore]:
    repo = Repository(f"sqlite:///{tmp_path / 'eas.db'}")
    for name in names:
        repo.create_service(
            name=name,
            token=None,
            instance_count=1,
            document={**DOCUMENT, "name": name},
            artefacts={},
            related_to=None,
        )
    return repo, ShadowStore(repo.engine)


def test_a_setting_is_replaced_and_published_in_the_route_table(tmp_path: Path) -> None:
    repo, shadows = stores(tmp_path, "live", "cand", "other")
    shadows.set("live", target="cand", percent=20, since=1)
    shadows.set("live", target="other", percent=5.5, since=2)
    setting = shadows.get("live")
    assert setting is not None and setting.target == "other"
    routes = build_routes(repo.list_services(), [], shadows=shadows.all())
    assert routes["live"].shadow == ShadowRoute(target="other", percent=5.5, since=2)
    assert routes["cand"].shadow is None and routes["other"].shadow is None
    assert shadows.delete("live") and not shadows.delete("live")
    assert build_routes(repo.list_services(), [], shadows=shadows.all())["live"].shadow is None


def test_a_setting_goes_with_either_service(tmp_path: Path) -> None:
    repo, shadows = stores(tmp_path, "live", "cand", "b_live", "b_cand")
    shadows.set("live", target="cand", percent=20, since=1)
    shadows.set("b_live", target="b_cand", percent=20, since=1)
    # Deleted as the database sees it (foreign keys on, as the repository's connections have).
    with repo.engine.begin() as db:
        db.exec_driver_sql("DELETE FROM versions WHERE service IN ('cand', 'b_live')")
        db.exec_driver_sql("DELETE FROM services WHERE name IN ('cand', 'b_live')")
    assert shadows.all() == {}


def test_a_setting_naming_a_missing_service_is_refused_naming_it(tmp_path: Path) -> None:
    _, shadows = stores(tmp_path, "live")
    with pytest.raises(NotFound, match="Target: service 'nosuch' not found"):
        shadows.set("live", target="nosuch", percent=1, since=1)
    with pytest.raises(NotFound, match="service: service 'gone' not found"):
        shadows.set("gone", target="live", percent=1, since=1)
