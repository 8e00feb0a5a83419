"""Planning: as few vendor calls as the vendors allow for a batch of deliveries. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trigger_relay.pipeline.routes import Route


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
    # One more recipient would not fit (the API's count for these params, or its body cap):
    # waiting would not make it fuller.
    full: bool = False

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
            PlannedCall(self.account, self.route, dict(items[:half]), full=True),
            PlannedCall(self.account, self.route, dict(items[half:]), full=True),
        ]


def plan_calls(
    deliveries: list[Delivery], refused: list[tuple[Delivery, str]] | None = None
) -> list[PlannedCall]:
    """Group by (account, action, target, delivery semantics), dedupe recipients, cut as the
    API allows.

    Deliveries keep their order, so the first calls carry the oldest records. A recipient no
    call can carry (over a body cap on its own) is left out and, with ``refused`` given,
    reported there with the reason; without it, planning raises.
    """
    groups: dict[tuple[str, str, str, bool], dict[str, list[Delivery]]] = {}
    representative: dict[tuple[str, str, str, bool], Route] = {}
    for delivery in deliveries:
        route = delivery.route
        target = route.api.target(route.typed_params)
        group = (route.account, route.action, target, route.repeat_safe)
        representative.setdefault(group, route)
        groups.setdefault(group, {}).setdefault(delivery.recipient.key, []).append(delivery)

    calls = []
    for group, by_key in groups.items():
        route = representative[group]
        recipients = [same_key[0].recipient for same_key in by_key.values()]
        try:
            chunks = route.api.chunk(recipients, route.typed_params)
        except ValueError:
            if refused is None:
                raise
            carried = []
            for recipient in recipients:
                try:
                    route.api.chunk([recipient], route.typed_params)
                except ValueError as exc:
                    refused += [(d, f"{d.route.name}: {exc}") for d in by_key[recipient.key]]
                else:
                    carried.append(recipient)
            chunks = route.api.chunk(carried, route.typed_params) if carried else []
        for index, chunk in enumerate(chunks, 1):
            full = index < len(chunks) or _no_room(route, chunk)
            calls.append(
                PlannedCall(group[0], route, {r.key: by_key[r.key] for r in chunk}, full=full)
            )
    return calls


def _no_room(route: Route, chunk: list[Any]) -> bool:
    """Whether the call could not carry one more recipient like its last: the API would cut
    it in two (its count for these params, such as Altcraft's ``max_values``, or its body cap).
    ``chunk`` must keep a repeated recipient, as every vendor's here does."""
    try:
        return len(route.api.chunk([*chunk, chunk[-1]], route.typed_params)) > 1
    except ValueError:
        return True
