"""Handler CPU per event: parsing, routing, mapping, planning, building and parsing vendor calls,
with the network stubbed out - next to the cost of `json.loads` of the same events.

10,000 signup events (SQS bodies) go through TriggerPipeline with an in-memory ledger, no quota
waits and a canned Zoho answer per call. CPU time, one core. Target: >= 2,000 events/s, so a
1,000-record batch costs under half a second of CPU.

Run: .venv/bin/python bench/bench_cpu.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path[:0] = [str(Path(__file__).parent)]
from report import Row, finish, print_table  # noqa: E402

from trigger_relay.pipeline.relay import InboundRecord, TriggerPipeline  # noqa: E402
from trigger_relay.pipeline.routes import load_routes  # noqa: E402
from trigger_relay.stores.ledger import Claims  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVENTS = 10_000


class CannedCaller:
    """Builds each request and parses a Zoho answer for it, as the real caller does, offline."""

    def __init__(self) -> None:
        self.calls = []
        self.locks = 0

    def call(
        self,
        account_name: str,
        account: Any,
        api: Any,
        params: Any,
        recipients: list[Any],
        *,
        repeat_safe: bool = True,
        wait: bool = True,
    ) -> Any:
        request = api.build(recipients, params, token="t", base_url="https://campaigns.zoho.com")
        emails = json.loads(request.url.params["details"])["lead_email"].split(",")
        answer = httpx.Response(
            200, json={"code": "200", "status": "success", "triggered_leads": emails}
        )
        self.calls.append(request)
        return api.parse(answer, recipients)


class MemoryLedger:
    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.requests = 0

    def claim(self, keys: Any, strict: Any = ()) -> Claims:
        wanted = set(keys)
        return Claims(mine=wanted - self.seen, delivered=wanted & self.seen)

    def remember(self, keys: Any, outcome: str = "delivered") -> None:
        self.seen.update(keys)

    def release(self, keys: Any) -> None:
        return None


class Nowhere:
    def park(self, records: Any) -> dict[str, str]:
        return {}

    def store(self, records: Any) -> None:
        return None


def main() -> None:
    routes = load_routes(ROOT / "layers" / "common" / "routes.yaml")
    bodies = [
        json.dumps(
            {"type": "user.signed_up", "id": f"e{i}", "user": {"email": f"user{i}@example.com"}}
        )
        for i in range(EVENTS)
    ]
    records = [InboundRecord(f"m{i}", body) for i, body in enumerate(bodies)]

    started = time.process_time()
    for body in bodies:
        json.loads(body)
    loads = time.process_time() - started

    caller = CannedCaller()
    pipeline = TriggerPipeline(routes, caller, MemoryLedger(), Nowhere(), Nowhere())  # type: ignore[arg-type]
    started = time.process_time()
    for start in range(0, EVENTS, 1000):  # 1,000-record batches, as Lambda delivers them
        report = pipeline.process(records[start : start + 1000])
        assert report.calls == 5
    handled = time.process_time() - started

    rows = [
        Row("events", EVENTS),
        Row("vendor calls built and parsed", len(caller.calls)),
        Row("json.loads: events per CPU second", round(EVENTS / loads)),
        Row("pipeline: events per CPU second", round(EVENTS / handled), ">= 2000"),
        Row("pipeline CPU per event (microseconds)", round(handled / EVENTS * 1e6, 1)),
        Row("pipeline / json.loads", round(handled / loads, 1)),
    ]
    finish(print_table("Handler CPU per event (network stubbed)", rows))


if __name__ == "__main__":
    main()
