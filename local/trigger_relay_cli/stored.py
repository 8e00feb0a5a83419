"""`trigger-relay rejected list|show`: the records the relay stored instead of delivering -
rejected (with their reasons) and uncertain (a vendor may have acted without answering) - read
from the stack's bucket, locally or on a deployed stack."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from trigger_relay.stores.parking import REJECTED_PREFIX, UNCERTAIN_PREFIX
from trigger_relay_cli.failures import Exit, UserError
from trigger_relay_cli.operations import _read_rows, _route_of, rejected_objects
from trigger_relay_cli.target import Target

STORES = {"rejected": REJECTED_PREFIX, "uncertain": UNCERTAIN_PREFIX}


@dataclass(frozen=True)
class StoredRecord:
    store: str  # rejected | uncertain
    key: str  # the S3 object it is in
    row: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.row.get("event_id") or self.row.get("record_id", ""))

    @property
    def at(self) -> datetime:
        return datetime.fromisoformat(self.row["rejected_at"])

    @property
    def routes(self) -> list[str]:
        """The routes the reasons name, and the routes still to settle."""
        named = [r for r in map(_route_of, self.row.get("reasons", [])) if r is not None]
        pending = (self.row.get("handling") or {}).get("r") or []
        return list(dict.fromkeys([*named, *pending]))


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`30m`, `2h`, `7d`, or an ISO date or time (UTC when it names no zone)."""
    now = now or datetime.now(UTC)
    match = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
        return now - timedelta(**{unit: int(match[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"--since {text!r} is neither a duration nor a date",
            "Use e.g. --since 30m, --since 2h, --since 7d or --since 2026-12-01T09:00.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def stored_records(
    target: Target,
    store: str = "all",
    reason: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
) -> list[StoredRecord]:
    """The stored records that pass every filter given, oldest first. Only the objects of the
    days since `since` are read."""
    found = []
    for name, prefix in STORES.items():
        if store not in ("all", name):
            continue
        for key in rejected_objects(target, prefix):
            day = re.search(r"dt=(\d{4}-\d{2}-\d{2})/", key)
            if since and day and day[1] < f"{since.astimezone(UTC):%Y-%m-%d}":
                continue
            for row in _read_rows(target, key):
                record = StoredRecord(name, key, row)
                if since and record.at < since:
                    continue
                if reason and not any(
                    reason.casefold() in r.casefold() for r in row.get("reasons", [])
                ):
                    continue
                if route and route not in record.routes:
                    continue
                found.append(record)
    return sorted(found, key=lambda r: r.at)


def list_lines(records: list[StoredRecord]) -> list[str]:
    if not records:
        return ["no stored records match"]
    lines = [f"{'STORED (UTC)':<19}  {'STORE':<9}  {'EVENT':<38}  {'ROUTES':<28}  REASON"]
    for record in records:
        reasons = record.row.get("reasons", [])
        more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        lines.append(
            f"{record.at:%Y-%m-%d %H:%M:%S}  {record.store:<9}  {record.event_id[:38]:<38}  "
            f"{','.join(record.routes)[:28] or '-':<28}  {(reasons or ['-'])[0]}{more}"
        )
    lines.append(f"{len(records)} record(s); `trigger-relay rejected show EVENT` for one in full")
    return lines


def show_lines(records: list[StoredRecord], event_id: str) -> list[str]:
    chosen = [r for r in records if event_id in (r.event_id, r.row.get("record_id"))]
    if not chosen:
        raise UserError(
            f"no stored record has the event or record id {event_id!r}",
            "`trigger-relay rejected list` shows the stored ones.",
            code=Exit.FAILED,
        )
    lines: list[str] = []
    for record in chosen:
        row = record.row
        lines += [
            f"event      {record.event_id}",
            f"record     {row.get('record_id', '-')}",
            f"store      {record.store} (s3 key {record.key})",
            f"stored at  {record.at:%Y-%m-%d %H:%M:%S} UTC",
            f"routes     {', '.join(record.routes) or '-'}",
            "reasons",
            *(f"  - {r}" for r in row.get("reasons", [])),
            "body",
            "  " + _pretty(row.get("body", "")).replace("\n", "\n  "),
        ]
        if row.get("attributes"):
            lines += ["attributes", "  " + json.dumps(row["attributes"], ensure_ascii=False)]
        if record.store == "uncertain":
            lines.append(
                "The vendor may have acted on it. Check there first; to send it again on purpose: "
                "`trigger-relay redrive --from uncertain --reason ...`"
            )
        else:
            lines.append("Fix the cause, then `trigger-relay redrive --from rejected --reason ...`")
        lines.append("")
    return lines[:-1]


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return body
