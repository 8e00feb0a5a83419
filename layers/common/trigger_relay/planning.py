"""Planning: as few vendor calls as the vendors allow for a batch of deliveries. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .routes import Route


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event to be triggered through one route."""

    record_id: str
    event_id: str
    route: Route
    recipient: Any

    @property
    def ledger_key(self) -> str:
        return f"{self.event_id}#{self.route.name}"


@dataclass
class PlannedCall:
    """One vendor call: unique recipients, and which deliveries each one stands for."""

    account: str
    route: Route  # any route of the group: they share account, action and target
    deliveries: dict[str, list[Delivery]] = field(default_factory=dict)

    @property
    def recipients(self) -> list[Any]:
        return [group[0].recipient for group in self.deliveries.values()]

    def split(self) -> list[PlannedCall]:
        """The same call as two of half the recipients each (none for a single recipient):
        what a vendor's 414 "URI too long" asks for."""
        items = list(self.deliveries.items())
        if len(items) < 2:
            return []
        half = len(items) // 2
        return [
            PlannedCall(self.account, self.route, dict(items[:half])),
            PlannedCall(self.account, self.route, dict(items[half:])),
        ]


def plan_calls(deliveries: list[Delivery]) -> list[PlannedCall]:
    """Group by (account, action, target), dedupe recipients, cut as the API allows.

    Deliveries keep their order, so the first calls carry the oldest records.
    """
    groups: dict[tuple[str, str, str], dict[str, list[Delivery]]] = {}
    representative: dict[tuple[str, str, str], Route] = {}
    for delivery in deliveries:
        route = delivery.route
        group = (route.account, route.action, route.api.target(route.typed_params))
        representative.setdefault(group, route)
        groups.setdefault(group, {}).setdefault(delivery.recipient.key, []).append(delivery)

    calls = []
    for group, by_key in groups.items():
        route = representative[group]
        recipients = [same_key[0].recipient for same_key in by_key.values()]
        for chunk in route.api.chunk(recipients, route.typed_params):
            calls.append(PlannedCall(group[0], route, {r.key: by_key[r.key] for r in chunk}))
    return calls
