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
from typing import TYPE_CHECKING, Any

from trigger_relay.pipeline.routes import RoutesError, RoutesFile, parse_routes
from trigger_relay_cli.failures import Exit, UserError, describe, outcome_code
from trigger_relay_cli.progress import following
from trigger_relay_cli.target import WORKDIR, NoStack, Target, resolve

if TYPE_CHECKING:
    from trigger_relay_local.stack.embedded import Embedded


def _invalid_routes(exc: RoutesError, path: Path | str = "FILE") -> UserError:
    return UserError(
        f"invalid routes file: {exc}", f"Fix it; `trigger-relay validate {path}` checks it."
    )


def _read_routes(path: Path) -> tuple[str, RoutesFile]:
    """The routes file's text and what it says, checked as `validate` checks it (and read as
    load_routes reads it, an unreadable file included)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _invalid_routes(RoutesError(f"{path}: cannot read: {exc}"), path) from None
    try:
        return text, parse_routes(text, str(path))
    except RoutesError as exc:
        raise _invalid_routes(exc, path) from None


def _load_routes(path: Path) -> RoutesFile:
    return _read_routes(path)[1]


def _routes(path: Path | None, target: Target | None = None) -> RoutesFile | None:
    """The routes the target runs: given, the local stack's, or for a deployed stack the
    repository's routes file, which `sam build` packs into its layer."""
    from trigger_relay_cli.repository import ROUTES

    if path is not None:
        return _load_routes(path)
    if target is not None and target.local is not None:
        return _load_routes(target.local.routes_file)
    if target is not None:
        return _load_routes(ROUTES)
    return None


def _event_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the event file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(
            f"{path} is not JSON: {exc}", "An event file holds one SQS, EventBridge or app event."
        ) from None
    except RecursionError:
        raise UserError(f"{path} is nested too deeply to be an event") from None
    if not isinstance(document, dict):
        raise UserError(f"{path} must hold a JSON object (an SQS, EventBridge or app event)")
    if "Records" in document and not _sqs_records(document["Records"]):
        raise UserError(
            f"{path}: Records must be a list of SQS records whose body is a string "
            "(and messageAttributes, if any, name: {stringValue: text})",
            "As Lambda hands them over: events/sqs-signup.json is one.",
        )
    if "Records" not in document and "detail-type" in document:
        fields = (document.get("source"), document.get("detail-type"), document.get("detail"))
        if not (isinstance(fields[0], str) and isinstance(fields[1], str)) or not isinstance(
            fields[2], dict
        ):
            raise UserError(
                f"{path}: an EventBridge event needs a text source and detail-type and an "
                "object detail",
                "events/eventbridge-signup.json is one.",
            )
    return document


def _sqs_records(records: Any) -> bool:
    """Records as Lambda hands them over, in the parts the CLI reads."""
    if not isinstance(records, list):
        return False
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("body", ""), str):
            return False
        attributes = record.get("messageAttributes") or {}
        if not isinstance(attributes, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("stringValue", ""), str)
            for v in attributes.values()
        ):
            return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trigger-relay",
        description=__doc__,
        epilog="Exit codes: 0 ok / delivered, 1 failed, 2 usage or configuration error, "
        "3 rejected, 4 pending, 5 uncertain, 6 not relayed by the EventBridge rule "
        "(docs/operations.md#exit-codes).",
    )
    parser.add_argument("--stack", help="a deployed stack's name (default: the local stack)")
    parser.add_argument("--region", help="the deployed stack's AWS region")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=WORKDIR,
        help="the local stack's directory (default .local-stack/up); one stack per directory",
    )
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
    rejected = commands.add_parser(
        "rejected", help="list or show the records stored as rejected or uncertain"
    )
    rejected.add_argument("action", choices=["list", "show"])
    rejected.add_argument("event_id", nargs="?", help="show: the event (or record) id")
    rejected.add_argument("--store", choices=["all", "rejected", "uncertain"], default="all")
    rejected.add_argument("--reason", help="only records with a reason containing this text")
    rejected.add_argument("--route", help="only records on this route")
    rejected.add_argument("--since", help="only records stored since: 30m, 2h, 7d or a date")
    sync = commands.add_parser("sync", help="run the recipients sync now")
    sync.add_argument("--campaign", action="append", help="campaign key (repeatable); default: all")
    simulator = commands.add_parser("simulator", help="run the vendor simulator until Ctrl-C")
    simulator.add_argument("--port", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import os

    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    elif os.environ.get("AWS_REGION"):  # it overrides AWS_DEFAULT_REGION, as the AWS CLI has it
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    try:
        return int(_run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trigger-relay explain ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.OK)
    except Exception as exc:
        if args.debug:
            raise
        failure = describe(_as_user_error(exc), args.stack)
        print("\n".join(failure.lines()), file=sys.stderr)
        return int(failure.code)


def _as_user_error(exc: Exception) -> Exception:
    if isinstance(exc, RoutesError):
        return _invalid_routes(exc)
    if isinstance(exc, NoStack):
        return UserError(str(exc))
    return exc


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from trigger_relay_local.demo import run_demo

        result = run_demo()
        return Exit.OK if result["drained"] and not result["dlq"] else Exit.FAILED
    if args.command == "validate":
        routes = _load_routes(args.routes_file)
        print(
            f"ok: {len(routes.accounts)} account(s), {len(routes.routes)} route(s)"
            + (", recipients sync" if routes.recipients_sync else "")
        )
        return 0
    if args.command == "explain":
        from trigger_relay_cli.explain import explain
        from trigger_relay_cli.repository import ROUTES
        from trigger_relay_cli.target import STATE_FILE

        running = args.workdir / STATE_FILE  # a running local stack's routes, else the repo's
        if args.routes is None and running.exists():
            from trigger_relay_local.stack.local_stack import LocalStack

            routes = _load_routes(LocalStack.load(running).routes_file)
        else:
            routes = _routes(args.routes) or _load_routes(ROUTES)
        print("\n".join(explain(_event_file(args.event_file), routes, args.source_prefix)))
        return Exit.OK
    if args.command == "local":
        return _local_up(args)
    if args.command == "simulator":
        from trigger_relay_local.simulator import Simulator

        with Simulator() as sim:
            print(f"vendor simulator on {sim.url} (Ctrl-C stops it)", flush=True)
            _wait_for_signal()
        return 0

    from trigger_relay_cli import operations

    target = resolve(args.stack, args.workdir)
    if args.command == "send":
        document = _event_file(args.event_file)
        sent = operations.send(target, document, _routes(args.routes, target))
        print(f"sent {len(sent)} event(s) to {target.name}; following (up to {args.timeout:.0f} s)")
        outcomes = operations.follow(target, sent, timeout=args.timeout, progress=following())
        for s in sent:
            print(f"  {s.event_id}: {outcomes[s.event_id]}")
        return outcome_code(list(outcomes.values()))
    if args.command == "status":
        print("\n".join(operations.status_lines(target, _routes(args.routes, target))))
        return Exit.OK
    if args.command == "rejected":
        from trigger_relay_cli.stored import list_lines, parse_since, show_lines, stored_records

        if args.action == "show" and not args.event_id:
            raise UserError("`rejected show` needs an event id", "`rejected list` shows them.")
        records = stored_records(
            target,
            args.store,
            args.reason,
            args.route,
            parse_since(args.since) if args.since else None,
        )
        lines = list_lines(records) if args.action == "list" else show_lines(records, args.event_id)
        print("\n".join(lines))
        return Exit.OK
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
        from trigger_relay.pipeline.recipients_sync import SKIPPED, STOPS_EVERYTHING

        print(f"syncing recipients on {target.name} ...", flush=True)
        result = target.run_sync({"campaigns": args.campaign} if args.campaign else {})
        if result.get("skipped"):
            print(f"  skipped: {result['skipped']}")
        failed = [
            r
            for r in result["runs"]
            if r["stopped"] not in ("complete", *STOPS_EVERYTHING)
            and not r["stopped"].startswith(SKIPPED)
        ]
        for line in sync_lines(result["runs"]):
            print(line)
        print(f"{result['rows']} rows in {result['pages']} pages")
        if failed:
            print(
                f"error: {len(failed)} of {len(result['runs'])} (campaign, action) runs failed; "
                "the reasons are above (docs/operations.md#sync)",
                file=sys.stderr,
            )
            return Exit.FAILED
        return Exit.OK
    return Exit.CONFIG


def sync_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One line per (campaign, action), saying where it started; a campaign whose every action
    ended the same way (an invalid key: nine times Zoho 6002) is one line."""
    lines = []
    by_campaign: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_campaign.setdefault(run["campaign"], []).append(run)
    for campaign, its in by_campaign.items():
        if (
            len(its) > 1
            and len({r["stopped"] for r in its}) == 1
            and its[0]["stopped"] != "complete"
            and not any(r["rows"] for r in its)
        ):
            lines.append(f"  {campaign} all {len(its)} actions: {its[0]['stopped']}")
            continue
        for run in its:
            start = run.get("from_index")
            where = ""
            if start is not None:
                where = "from the start" if start <= 1 else f"resumed at index {start}"
            lines.append(
                f"  {campaign} {run['action']:<17} {run['rows']:>7} rows  {where:<22} "
                f"{run['stopped']}"
            )
    return lines


def _wait_for_signal() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


def _local_up(args: argparse.Namespace) -> int:
    import tempfile

    from trigger_relay_cli.repository import ROUTES

    source = (args.routes or ROUTES).resolve()
    seen = RoutesWatcher.mtime(source)  # an edit from now on is reloaded, even during start-up
    with tempfile.TemporaryDirectory() as scratch:
        # one read, validated, is what the stack starts from
        snapshot, routes = _validated_copy(source, Path(scratch))
        return _run_local_stack(args, source, snapshot, routes, seen)


def _validated_copy(source: Path, directory: Path) -> tuple[Path, RoutesFile]:
    """The routes file read once, checked as `validate` checks it, and written to directory:
    what is installed is exactly what was checked, whatever happens to the file meanwhile."""
    text, routes = _read_routes(source)
    copy = directory / "routes.yaml"
    copy.write_text(text, encoding="utf-8")
    return copy, routes


def _run_local_stack(
    args: argparse.Namespace, source: Path, snapshot: Path, routes: RoutesFile, seen: int
) -> int:
    from trigger_relay_cli.target import STATE_FILE
    from trigger_relay_local.lambda_runtime.fleet import PollerFleet
    from trigger_relay_local.stack.embedded import embedded_stack

    with embedded_stack(args.workdir, routes_source=snapshot) as env:
        fleet = PollerFleet(
            env.stack, env.stack.functions["TriggerFunction"], concurrency=2
        ).start()
        state = args.workdir / STATE_FILE
        env.stack.save(state, simulator_url=env.simulator.url)
        print(
            f"local stack up: AWS (moto) {env.moto_endpoint}, vendor simulator {env.simulator.url}"
        )
        queue = env.stack.outputs["IngestQueueUrl"].rsplit("/", 1)[1]
        print(
            f"queue {queue}; TriggerFunction polling; {len(routes.routes)} route(s) from {source}"
        )
        print(
            "Use `trigger-relay send|status|rejected|redrive|sync` in another terminal. Edits to "
            "the routes file apply at once (checked first); Ctrl-C stops.",
            flush=True,
        )
        watcher = RoutesWatcher(env, source, seen)
        watcher.start()
        try:
            _wait_for_signal()
        finally:
            watcher.stop()
            state.unlink(missing_ok=True)
            fleet.stop()
    return Exit.OK


class RoutesWatcher(threading.Thread):
    """Reloads the local stack's routes when the file changes, keeping every other piece of
    state: a valid file replaces the routes the functions read (they re-read a changed file
    on their next invocation, as a new deploy's would); an invalid one is reported and the
    previous routes stay."""

    def __init__(self, env: Embedded, source: Path, seen: int, every: float = 1.0) -> None:
        super().__init__(daemon=True)
        self._env, self._source, self._every = env, source, every
        self._stopped = threading.Event()
        self._seen = seen

    @staticmethod
    def mtime(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return 0

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(self._every):
            mtime = self.mtime(self._source)
            if mtime == self._seen:
                continue
            self._seen = mtime
            try:
                self.reload()
            except Exception as exc:  # a half-written file, a stack going down: keep watching
                print(f"routes not reloaded ({type(exc).__name__}: {exc}); keeping the previous")

    def reload(self) -> None:
        import tempfile

        import yaml

        from trigger_relay_local.simulator.state import learn_routes
        from trigger_relay_local.stack.embedded import simulator_secrets
        from trigger_relay_local.stack.local_stack import local_routes

        stack, simulator = self._env.stack, self._env.simulator
        with tempfile.TemporaryDirectory() as scratch:
            try:
                checked, routes = _validated_copy(self._source, Path(scratch))
            except UserError as exc:
                print(f"routes file changed but is invalid; keeping the previous routes: {exc}")
                return
            config = simulator.state.config
            learn_routes(config, yaml.safe_load(checked.read_text(encoding="utf-8")))
            secrets = stack.client("secretsmanager")
            existing = {s["Name"] for s in secrets.list_secrets().get("SecretList", [])}
            for name, value in simulator_secrets(config, checked).items():
                if name not in existing:
                    secrets.create_secret(Name=name, SecretString=json.dumps(value))
            staged = local_routes(simulator.url, Path(scratch), checked)
            beside = stack.routes_file.with_name(stack.routes_file.name + ".new")
            beside.write_bytes(staged.read_bytes())
            beside.replace(stack.routes_file)  # one rename: a reader sees the old or the new file
        print(f"routes reloaded from {self._source}: {len(routes.routes)} route(s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
