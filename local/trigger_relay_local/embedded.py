"""The whole local stack in one context manager: moto server, vendor simulator, the stack."""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from . import moto_patches
from .simulator import SimConfig, Simulator
from .simulator.state import learn_routes
from .stack import ROUTES, LocalStack, provision


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
    """Every account's secret, holding the simulator's OAuth client."""
    document = yaml.safe_load(routes_source.read_text(encoding="utf-8"))
    zoho = {
        "client_id": config.client_id,
        "client_secret": config.client_secret,
        "refresh_token": config.refresh_token,
    }
    altcraft = {"token": config.altcraft_token}
    return {
        account["secret"]: zoho if account["vendor"] == "zoho" else altcraft
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

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    config = sim_config or SimConfig.demo()
    learn_routes(config, yaml.safe_load(routes_source.read_text(encoding="utf-8")))
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
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
