"""One record in, what the relay will do with it out: the event, each route's verdict, and the
deliveries to call. Pure: no I/O, no clock.

The pipeline, `trigger-relay explain` and `trigger-relay send` all decide through here, so what
the CLI shows and follows is what the function does: the same decoding (an EventBridge event
inside an SQS body included), the same match errors, the same recipient rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trigger_relay.pipeline.events import BadEvent, InboundEvent, from_sqs_body
from trigger_relay.pipeline.planning import Delivery
from trigger_relay.pipeline.routes import BadRecipient, MatchError, Route, RoutesFile


@dataclass(frozen=True, slots=True)
class RouteVerdict:
    """One route's answer for one event: exactly one of the three is set."""

    route: Route
    delivery: Delivery | None = None  # matched, with a valid recipient: to be called
    rejected: str | None = None  # matched (or could not be evaluated) but refused, and why
    not_matched: str | None = None  # the first condition the event fails


@dataclass(frozen=True)
class Decision:
    event: InboundEvent | None  # None: the record is not an event (``rejected`` says why)
    verdicts: list[RouteVerdict] = field(default_factory=list)
    # the routes the record is handled on: matched, refused on its match, or no longer there
    handled: list[str] = field(default_factory=list)
    # every reason the record is (partly) rejected, in the order the rejected store keeps them
    rejected: list[str] = field(default_factory=list)

    @property
    def deliveries(self) -> list[Delivery]:
        return [v.delivery for v in self.verdicts if v.delivery is not None]


def decide(
    routes: RoutesFile,
    record_id: str,
    body: str,
    attributes: dict[str, str],
    carried_id: str | None = None,
    only: tuple[str, ...] | None = None,
) -> Decision:
    """Decode the body, match it against every route, and map each matching route's recipient.

    ``carried_id`` and ``only`` come with a re-enqueued copy (queue_messages.Handling): its
    identity, and the routes still to settle. A route settled before is not handled again; one
    of ``only`` that no longer matches (renamed, removed, its match changed) is rejected."""
    try:
        event = from_sqs_body(body, record_id, attributes, carried_id)
    except BadEvent as exc:
        return Decision(None, rejected=[str(exc)])
    return route_event(routes, event, record_id, only)


def route_event(
    routes: RoutesFile, event: InboundEvent, record_id: str, only: tuple[str, ...] | None = None
) -> Decision:
    """decide() for an event already decoded."""
    verdicts: list[RouteVerdict] = []
    matched: list[str] = []  # in the routes file's order, whether or not the recipient is valid
    errors: dict[str, str] = {}  # route -> why its match could not be evaluated
    refused: list[str] = []  # why a matched route's recipient is invalid
    for route in routes.routes:
        if only is not None and route.name not in only:
            continue
        try:
            why = route.match.why_not(event)
        except MatchError as exc:
            errors[route.name] = f"route {route.name}: {exc}"
            verdicts.append(RouteVerdict(route, rejected=errors[route.name]))
            continue
        if why is not None:
            verdicts.append(RouteVerdict(route, not_matched=why))
            continue
        matched.append(route.name)
        try:
            recipient = route.recipient(event)
        except BadRecipient as exc:
            refused.append(str(exc))
            verdicts.append(RouteVerdict(route, rejected=str(exc)))
            continue
        delivery = Delivery(record_id, event.event_id, route, recipient)
        verdicts.append(RouteVerdict(route, delivery=delivery))
    for name in only or ():
        if name not in errors and name not in matched:
            errors[name] = f"route {name}: no longer in the routes file or no longer matching"
    rejected = list(errors.values())
    if not matched and not errors:
        rejected.append(_no_route(event))
    return Decision(event, verdicts, matched + list(errors), rejected + refused)


def _no_route(event: InboundEvent) -> str:
    where = f"type {event.type!r}"
    if event.source is not None:
        where += f", source {event.source!r}"
    return f"no route matches event {where}"
