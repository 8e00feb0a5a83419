"""trigger-relay: check routes, explain events, send and follow them, see quota and queues,
redrive, sync recipients - against the local stack (default) or a deployed stack (--stack)."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from trigger_relay.routes import RoutesError, RoutesFile, load_routes

from .target import WORKDIR, NoStack, resolve


def _routes(path: Path | None, target: Any = None) -> RoutesFile | None:
    if path is not None:
        return load_routes(path)
    if target is not None and target.local is not None:
        return load_routes(target.local.routes_file)
    return None


def _event_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: not a readable JSON event file: {exc}") from None
    if not isinstance(document, dict):
        raise SystemExit(f"{path}: must hold a JSON object (an SQS, EventBridge or app event)")
    return document


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trigger-relay", description=__doc__)
    parser.add_argument("--stack", help="a deployed stack's name (default: the local stack)")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the whole app once on the embedded local stack")
    local = commands.add_parser("local", help="the local stack: `local up` runs it until Ctrl-C")
    local.add_argument("action", choices=["up"])
    local.add_argument(
        "--routes", type=Path, help="routes file (default: layers/common/routes.yaml)"
    )
    validate = commands.add_parser("validate", help="check a routes file offline")
    validate.add_argument("routes_file", type=Path)
    explain = commands.add_parser("explain", help="dry run: routes fired and the exact requests")
    explain.add_argument("event_file", type=Path)
    explain.add_argument("--routes", type=Path, default=None)
    explain.add_argument(
        "--source-prefix",
        default=None,
        help="the stack's EventSourcePrefix (default: template.yaml's): EventBridge events "
        "whose source does not start with it never reach the relay",
    )
    send = commands.add_parser("send", help="publish an event file and follow it to its outcome")
    send.add_argument("event_file", type=Path)
    send.add_argument("--routes", type=Path, help="routes file, to know what delivered means")
    send.add_argument("--timeout", type=float, default=60.0)
    status = commands.add_parser("status", help="quota, locks, queue and DLQ depth, rejected count")
    status.add_argument("--routes", type=Path, help="routes file, for each API's limits")
    redrive = commands.add_parser(
        "redrive",
        help="DLQ and rejected records back to the ingest queue; uncertain ones only when named",
    )
    redrive.add_argument(
        "--from",
        dest="source",
        choices=["all", "dlq", "rejected", "uncertain"],
        default="all",
        help="all = dlq + rejected. uncertain: calls the vendor may have acted on; sending them "
        "again may trigger twice, so they are redriven only when asked for by name",
    )
    redrive.add_argument("--reason", help="only records whose reason contains this text")
    redrive.add_argument("--route", help="only records rejected on this route")
    sync = commands.add_parser("sync", help="run the recipients sync now")
    sync.add_argument("--campaign", action="append", help="campaign key (repeatable); default: all")
    simulator = commands.add_parser("simulator", help="run the vendor simulator until Ctrl-C")
    simulator.add_argument("--port", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except RoutesError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    except NoStack as exc:
        print(str(exc), file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from .demo import run_demo

        result = run_demo()
        return 0 if result["drained"] and not result["dlq"] else 1
    if args.command == "validate":
        routes = load_routes(args.routes_file)
        print(
            f"ok: {len(routes.accounts)} account(s), {len(routes.routes)} route(s)"
            + (", recipients sync" if routes.recipients_sync else "")
        )
        return 0
    if args.command == "explain":
        from .explain import explain

        routes = _routes(args.routes) or load_routes(Path("layers/common/routes.yaml"))
        print("\n".join(explain(_event_file(args.event_file), routes, args.source_prefix)))
        return 0
    if args.command == "local":
        return _local_up(args)
    if args.command == "simulator":
        from .simulator import Simulator

        with Simulator() as sim:
            print(f"vendor simulator on {sim.url} (Ctrl-C stops it)", flush=True)
            _wait_for_signal()
        return 0

    from . import operations

    target = resolve(args.stack, args.workdir)
    if args.command == "send":
        document = _event_file(args.event_file)
        routes = _routes(args.routes, target)
        sent = operations.send(target, document, routes)
        print(f"sent {len(sent)} event(s) to {target.name}; following (up to {args.timeout:.0f} s)")
        outcomes = operations.follow(target, sent, timeout=args.timeout)
        for event_id, outcome in outcomes.items():
            print(f"  {event_id}: {outcome}")
        return (
            0 if all(not o.startswith(("pending", "NOT RELAYED")) for o in outcomes.values()) else 1
        )
    if args.command == "status":
        print("\n".join(operations.status_lines(target, _routes(args.routes, target))))
        return 0
    if args.command == "redrive":
        moved = 0
        if args.source in ("all", "dlq"):
            moved += operations.redrive_dlq(
                target, lambda body: args.reason is None or args.reason in body
            )
        if args.source in ("all", "rejected"):
            moved += operations.redrive_rejected(target, args.reason, args.route)
        if args.source == "uncertain":
            moved += operations.redrive_rejected(
                target, args.reason, args.route, prefix=operations.UNCERTAIN
            )
        print(f"redriven: {moved} record(s) back on the ingest queue")
        return 0
    if args.command == "sync":
        print(f"syncing recipients on {target.name} ...", flush=True)
        result = target.run_sync({"campaigns": args.campaign} if args.campaign else {})
        for run in result["runs"]:
            print(
                f"  {run['campaign']} {run['action']:<17} {run['rows']:>7} rows  {run['stopped']}"
            )
        if result.get("skipped"):
            print(f"  skipped: {result['skipped']}")
        print(f"{result['rows']} rows in {result['pages']} pages")
        return 0
    return 2


def _wait_for_signal() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def _local_up(args: argparse.Namespace) -> int:
    from .embedded import embedded_stack
    from .fleet import PollerFleet
    from .stack import ROUTES
    from .target import STATE_FILE

    with embedded_stack(args.workdir, routes_source=args.routes or ROUTES) as env:
        fleet = PollerFleet(
            env.stack, env.stack.functions["TriggerFunction"], concurrency=2
        ).start()
        state = args.workdir / STATE_FILE
        env.stack.save(state, simulator_url=env.simulator.url)
        print(
            f"local stack up: AWS (moto) {env.moto_endpoint}, vendor simulator {env.simulator.url}"
        )
        queue = env.stack.outputs["IngestQueueUrl"].rsplit("/", 1)[1]
        print(f"queue {queue}; TriggerFunction polling.")
        print(
            "Use `trigger-relay send|status|redrive|sync` in another terminal; Ctrl-C stops.",
            flush=True,
        )
        try:
            _wait_for_signal()
        finally:
            state.unlink(missing_ok=True)
            fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
