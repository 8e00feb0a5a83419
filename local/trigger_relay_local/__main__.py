"""trigger-relay-local: the embedded local stack's commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trigger-relay-local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the app end to end on moto + the vendor simulator")
    validate = commands.add_parser("validate", help="check a routes file offline")
    validate.add_argument("routes_file", type=Path)
    status = commands.add_parser("status", help="each vendor API's quota use and lock state")
    status.add_argument("--stack", default="trigger-relay", help="deployed stack name")
    status.add_argument("--routes", type=Path, help="routes file, for each API's limits")
    simulator = commands.add_parser("simulator", help="run the vendor simulator until Ctrl-C")
    simulator.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from .demo import run_demo

        result = run_demo()
        return 0 if result["drained"] and not result["dlq"] else 1
    if args.command == "validate":
        from trigger_relay.routes import RoutesError, load_routes

        try:
            routes = load_routes(args.routes_file)
        except RoutesError as exc:
            print(f"invalid: {exc}", file=sys.stderr)
            return 1
        print(f"ok: {len(routes.accounts)} account(s), {len(routes.routes)} route(s)")
        return 0
    if args.command == "status":
        import boto3

        from trigger_relay.routes import load_routes

        from .status import format_status, quota_status

        outputs = boto3.client("cloudformation").describe_stacks(StackName=args.stack)
        table = next(
            o["OutputValue"]
            for o in outputs["Stacks"][0]["Outputs"]
            if o["OutputKey"] == "QuotaTableName"
        )
        routes = load_routes(args.routes) if args.routes else None
        for line in format_status(quota_status(boto3.client("dynamodb"), table, routes)):
            print(line)
        return 0
    if args.command == "simulator":
        import time

        from .simulator import Simulator

        with Simulator() as sim:
            print(f"vendor simulator on {sim.url} (Ctrl-C stops it)", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
