"""/api/v1/alerts: alert rules (create, list, describe with states and deliveries, delete)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from eas_core.controller.api.auth import authenticated
from eas_core.controller.api.errors import ERROR_RESPONSES
from eas_core.controller.sources import SourcePolicy
from eas_core.controller.store import AlertStore
from eas_core.errors import ArtefactError, InvalidDescription
from eas_core.spec.alerts import AlertDetails, AlertRule

router = APIRouter(
    prefix="/api/v1/alerts", dependencies=[Depends(authenticated)], responses=ERROR_RESPONSES
)

AlertName = Annotated[str, Path(max_length=64)]


def _store(request: Request) -> AlertStore:
    store: AlertStore = request.app.state.alerts
    return store


@router.post("", status_code=201, response_model=AlertRule, response_model_by_alias=True)
def create(request: Request, rule: AlertRule) -> AlertRule:
    policy: SourcePolicy = request.app.state.sources
    try:
        policy.check_callback(str(rule.callback_url))
    except ArtefactError as exc:
        raise InvalidDescription([f"CallbackUrl: {exc.message}"]) from None
    _store(request).add_rule(rule.name, rule.model_dump(by_alias=True, mode="json"))
    return rule


@router.get("", response_model=list[AlertRule], response_model_by_alias=True)
def list_alerts(request: Request) -> list[AlertRule]:
    return [AlertRule.model_validate(d) for d in _store(request).rules()]


@router.get("/{name}", response_model=AlertDetails, response_model_by_alias=True)
def describe(request: Request, name: AlertName) -> AlertDetails:
    """The rule, whether it fires for each service it watches, and its latest deliveries."""
    store = _store(request)
    rule = AlertRule.model_validate(store.rule(name))
    # Statuses are stored as their strings; validating checks them on the way out.
    return AlertDetails.model_validate(
        {
            "Rule": rule,
            "States": [
                {"ServiceName": s.service, "Status": s.status, "Since": s.since, "Value": s.value}
                for s in store.states(name)
            ],
            "Deliveries": [
                {
                    "Time": d.time,
                    "ServiceName": d.service,
                    "Status": d.status,
                    "Attempts": d.attempts,
                    "Delivered": d.delivered,
                    "Outcome": d.outcome,
                }
                for d in store.deliveries(name)
            ],
        }
    )


@router.delete("/{name}", status_code=204)
def delete(request: Request, name: AlertName) -> None:
    _store(request).delete_rule(name)
