"""The whole local stack in one context manager: moto server, vendor simulator, the stack."""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from trigger_relay_local.simulator import ACCOUNT_SECRETS, SimConfig, Simulator
from trigger_relay_local.simulator.state import learn_routes
from trigger_relay_local.stack import moto_patches
from trigger_relay_local.stack.local_stack import ROUTES, LocalStack, provision


@dataclass
class Embedded:
    stack: LocalStack
    simulator: Simulator
    moto_endpoint: str


def _quiet() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto")


def simulator_secrets(config: SimConfig, routes_source: Path) -> dict[str, dict[str, str]]:
    """Every account's secret, holding what the simulated vendor expects of it."""
    document = yaml.safe_load(routes_source.read_text(encoding="utf-8"))
    return {
        account["secret"]: ACCOUNT_SECRETS[account["vendor"]](config)
        for account in document.get("accounts", {}).values()
    }


@contextmanager
def embedded_stack(
    workdir: Path,
    sim_config: SimConfig | None = None,
    parameters: dict[str, str] | None = None,
    routes_source: Path = ROUTES,
) -> Iterator[Embedded]:
    _quiet()
    moto_patches.apply()
    from moto.server import ThreadedMotoServer  # the dev extra; imported only here

    workdir = _own_directory(workdir)
    with _only_stack_in(workdir):
        yield from _stack(workdir, sim_config, parameters, routes_source, ThreadedMotoServer)


MARKER = ".trigger-relay-local-stack"  # in every directory a local stack made for itself


def _own_directory(workdir: Path) -> Path:
    """The stack's directory, resolved (no `..`, no symlink), and only one the stack may wipe:
    new, empty, or made by a local stack before. Never the current directory, the checkout or
    a directory above them."""
    from trigger_relay_cli.failures import UserError
    from trigger_relay_local.stack.template import ROOT

    workdir = workdir.resolve()
    keep = {Path.cwd().resolve(), ROOT, *Path.cwd().resolve().parents, *ROOT.parents}
    if workdir in keep:
        raise UserError(
            f"{workdir} holds your work; a local stack needs a directory of its own",
            "Give --workdir a new directory, e.g. .local-stack/mine.",
        )
    inside = next((p for p in workdir.parents if (p / MARKER).exists()), None)
    if inside is not None:  # that stack clears its whole directory when it restarts
        raise UserError(
            f"{workdir} is inside the local stack directory {inside}",
            "Give --workdir a directory outside it, e.g. a sibling.",
        )
    if workdir.is_dir() and any(workdir.iterdir()) and not (workdir / MARKER).exists():
        raise UserError(
            f"{workdir} is not empty and is not a local stack's directory",
            "Give --workdir a new or empty directory: a local stack clears its directory "
            "when it starts.",
        )
    return workdir


@contextmanager
def _only_stack_in(workdir: Path) -> Iterator[None]:
    """Each local stack owns its directory: a second one started on the same directory (a
    `make demo` beside `local up`, two `local up`s) is refused instead of wiping the running
    one's state. The lock is the OS's, so a stack that crashed leaves none behind."""
    import fcntl
    import os

    from trigger_relay_cli.failures import UserError

    workdir.parent.mkdir(parents=True, exist_ok=True)
    lock_path = workdir.parent / f"{workdir.name}.lock"
    with open(lock_path, "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "another process"
            raise UserError(
                f"a local stack is already running in {workdir} (pid {owner})",
                "Use it (`trigger-relay send|status ...`), stop it with Ctrl-C in its terminal, "
                "or start another in its own directory: `trigger-relay --workdir DIR local up`.",
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stack(
    workdir: Path,
    sim_config: SimConfig | None,
    parameters: dict[str, str] | None,
    routes_source: Path,
    server_class: Any,
) -> Iterator[Embedded]:
    if (workdir / MARKER).exists():  # what a stopped or crashed stack left: its lock is free
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by trigger-relay local up / demo; cleared on start\n")
    config = sim_config or SimConfig.demo()
    learn_routes(config, yaml.safe_load(routes_source.read_text(encoding="utf-8")))
    moto = server_class(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto's backends live in the process: start from nothing, as a new account would.
        httpx.post(f"{endpoint}/moto-api/reset").raise_for_status()
        with Simulator(config) as simulator:
            stack = provision(
                endpoint,
                simulator.url,
                workdir,
                parameters,
                secrets=simulator_secrets(config, routes_source),
                routes_source=routes_source,
            )
            yield Embedded(stack, simulator, endpoint)
    finally:
        moto.stop()
