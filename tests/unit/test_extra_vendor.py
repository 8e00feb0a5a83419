"""A vendor is described once, in its package: registering one more touches no generic code.

"Acme" here is a vendor the relay has never heard of, with a bearer token from its secret and
up to 3 emails a call. It is registered the way a package in vendors/ registers itself, and
then validated, planned, called, counted by the quota, and explained by the same code that
serves Zoho and Altcraft.
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from tests.conftest import ROOT
from tests.helpers.relay import relay
from trigger_relay.pipeline.relay import Status
from trigger_relay.pipeline.routes import Account, RoutesError, parse_routes
from trigger_relay.stores.quota import Limit
from trigger_relay.vendors import registry
from trigger_relay.vendors.outcomes import CallResult, Outcome, http_failure
from trigger_relay.vendors.recipients import EmailRecipient
from trigger_relay.vendors.vendor import Vendor
from trigger_relay_cli.explain import MASK, explain

TOKEN = "acme-api-token"


class AcmeParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    campaign: str


@dataclass(frozen=True)
class AcmeTrigger:
    action: str = "acme.trigger"
    vendor: str = "acme"
    deduplicates: bool = False
    needs_base_url: bool = True
    params_model: type[AcmeParams] = AcmeParams
    recipient_model: type[EmailRecipient] = EmailRecipient
    max_recipients: int = 3
    quota_api: str = "acme.calls"  # the quota its APIs share, as Zoho's recipients API does

    def target(self, params: AcmeParams) -> str:
        return params.campaign

    def base_url(self, data_centre: str, base_url: str | None) -> str | None:
        return base_url

    def check_mapping(self, params: AcmeParams, fields: set[str]) -> None:
        if fields != {"email"}:
            raise ValueError("Acme routes map exactly one field: email")

    def chunk(self, recipients: list[Any], params: AcmeParams) -> list[list[Any]]:
        return [recipients[i : i + 3] for i in range(0, len(recipients), 3)]

    def build(
        self, recipients: list[Any], params: AcmeParams, *, token: str, base_url: str
    ) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{base_url}/campaigns/{params.campaign}/fire",
            json={"emails": [r.email for r in recipients]},
            headers={"Authorization": f"Bearer {token}"},
        )

    def parse(
        self, response: httpx.Response, recipients: list[Any], lock_codes: frozenset[str] = ...
    ) -> CallResult:
        keys = [r.key for r in recipients]
        failure = http_failure(response, keys)
        return failure or CallResult.same_for_all(keys, Outcome.DELIVERED, "fired")


ACME = Vendor(
    name="acme",
    apis=(AcmeTrigger(),),
    limits={"acme.calls": Limit(calls=600, window_seconds=60, lock_seconds=60)},
)

ROUTES = """
accounts:
  acme-main: {vendor: acme, secret: trigger-relay/acme, base_url: "https://api.acme.test"}
routes:
  - name: welcome
    match: {type: user.signed_up}
    action: acme.trigger
    account: acme-main
    params: {campaign: welcome}
    mapping: {email: user.email}
    max_hold_seconds: 0  # every call goes out in this invocation: the test counts them
"""


@pytest.fixture
def acme() -> Iterator[Vendor]:
    registry.register(ACME)
    try:
        yield ACME
    finally:
        registry.unregister(ACME.name)


@dataclass
class FakeAcme:
    fired: list[str]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        self.fired += json.loads(request.content)["emails"]
        return httpx.Response(200, json={"ok": True})


def test_an_unknown_vendor_is_refused_by_name_until_it_is_registered() -> None:
    with pytest.raises(RoutesError, match=r"vendor must be one of .*not 'acme'"):
        parse_routes(ROUTES)


def test_a_registered_vendor_is_routed_batched_called_and_counted(acme: Vendor) -> None:
    vendor = FakeAcme([])
    with relay(ROUTES, vendor) as r:
        r.secrets["trigger-relay/acme"] = {"token": TOKEN}
        for n in range(7):
            r.send({"type": "user.signed_up", "user": {"email": f"user{n}@example.com"}})
        records = []
        while batch := r.receive():
            records += batch
        report = r.pipeline().process(records)
        assert set(report.statuses.values()) == {Status.DELIVERED}
        assert sorted(vendor.fired) == sorted(f"user{n}@example.com" for n in range(7))
        # 7 recipients in calls of at most 3: 3 calls, each counted by the shared quota
        quota = r.aws["dynamodb"].get_item(
            TableName="quota", Key={"pk": {"S": "acme#acme-main#acme.calls"}}
        )["Item"]
        assert quota["granted"]["N"] == "3"


def test_explain_shows_a_registered_vendors_request_with_its_token_masked(acme: Vendor) -> None:
    event = {"type": "user.signed_up", "user": {"email": "ana@example.com"}}
    lines = "\n".join(explain(event, parse_routes(ROUTES), source_prefix=""))
    assert "POST https://api.acme.test/campaigns/welcome/fire" in lines
    assert f"Bearer {MASK}" in lines and TOKEN not in lines


def test_an_account_gets_its_own_vendors_data_centre_default_and_no_other(acme: Vendor) -> None:
    routes = parse_routes(ROUTES)
    assert routes.accounts["acme-main"].data_centre == ""  # acme has no data centres
    zoho = parse_routes(
        "accounts:\n  z: {vendor: zoho, secret: s}\nroutes:\n"
        "  - {name: r, match: {type: t}, action: zoho_campaigns.workflow_trigger, account: z,\n"
        "     params: {workflow_key: w, trigger_key: t, list_key: l}, mapping: {email: e}}\n"
    )
    assert zoho.accounts["z"].data_centre == "com"
    built = Account.model_validate(MappingProxyType({"vendor": "zoho", "secret": "s"}))
    assert built.data_centre == "com"  # from any mapping, not only a dict


def test_a_name_action_or_limit_taken_by_a_vendor_cannot_be_registered_again() -> None:
    zoho = registry.vendor("zoho")
    assert zoho is not None
    with pytest.raises(ValueError, match="already registered"):
        registry.register(zoho)
    workflow = "zoho_campaigns.workflow_trigger"
    before = registry.DEFAULT_LIMITS[workflow]
    poacher = Vendor(
        name="poacher",
        apis=(),
        limits={workflow: Limit(calls=2, window_seconds=3600)},
    )
    with pytest.raises(ValueError, match="already registered"):
        registry.register(poacher)
    assert registry.DEFAULT_LIMITS[workflow] == before and "poacher" not in registry.VENDORS


# Generic code: everything but vendors/ (and the simulator, which plays the vendors).
GENERIC = [
    "layers/common/trigger_relay/functions",
    "layers/common/trigger_relay/pipeline",
    "layers/common/trigger_relay/stores",
    "layers/common/trigger_relay/observability.py",
    "local/trigger_relay_cli",
    "local/trigger_relay_local/stack",
    "local/trigger_relay_local/lambda_runtime",
]
# The recipients sync is built on one vendor's API by design (Zoho Campaigns' "get campaign
# recipients data" is its source, docs/architecture.md); routes.py imports that API's actions.
ON_ONE_VENDOR_BY_DESIGN = {
    "layers/common/trigger_relay/pipeline/recipients_sync.py",
    "layers/common/trigger_relay/pipeline/routes.py:vendors.zoho.recipients",
}


# names, strings, and the text of f-strings (a token of its own from Python 3.12)
CODE_TOKENS = {tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def _code_tokens(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, token, the line's text) for every name and string that is code, not a comment
    or a docstring."""
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(body[0].lineno, (body[0].end_lineno or 0) + 1))
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in CODE_TOKENS and token.start[0] not in docstrings:
            yield token.start[0], token.string, lines[token.start[0] - 1]


def test_generic_code_names_no_vendor() -> None:
    names = set(registry.names())
    found = []
    for root in GENERIC:
        top = ROOT / root
        for path in sorted(top.rglob("*.py")) if top.is_dir() else [top]:
            relative = str(path.relative_to(ROOT))
            if relative in ON_ONE_VENDOR_BY_DESIGN:
                continue
            for line, token, text in _code_tokens(path):
                allowed = any(
                    entry.startswith(relative + ":") and entry.split(":", 1)[1] in text
                    for entry in ON_ONE_VENDOR_BY_DESIGN
                )
                if not allowed and any(name in token.lower() for name in names):
                    found.append(f"{relative}:{line}: {token}")
    assert not found, "generic code names a vendor (describe it in vendors/):\n" + "\n".join(found)


def test_a_routes_file_loads_only_the_vendors_it_uses() -> None:
    """A cold start imports the vendor packages its routes file names, not every vendor's:
    a fresh interpreter validates a Zoho-only file and has imported nothing of Altcraft's.
    An unknown action still lists every vendor's."""
    zoho_only = ROOT / "layers" / "common" / "routes.yaml"
    code = (
        "import pathlib, sys; from trigger_relay.pipeline.routes import load_routes; "
        f"load_routes(pathlib.Path({str(zoho_only)!r})); "
        "print(sorted(m for m in sys.modules if m.startswith('trigger_relay.vendors.')))"
    )
    path = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # this process's, pytest's
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=path
    ).stdout
    assert "trigger_relay.vendors.zoho" in loaded
    assert "altcraft" not in loaded
    # what a package not imported yet owns is taken all the same
    poach = (
        "from trigger_relay.vendors import registry, vendor; from trigger_relay.stores.quota "
        "import Limit; registry.register(vendor.Vendor(name='poacher', apis=(), limits="
        "{'altcraft.bulk_trigger': Limit(calls=2, window_seconds=60)}))"
    )
    refused = subprocess.run(
        [sys.executable, "-c", poach], capture_output=True, text=True, check=False, env=path
    )
    assert "already registered: ['altcraft.bulk_trigger']" in refused.stderr
    with pytest.raises(RoutesError, match=r"known: \['altcraft\.bulk_trigger'"):
        parse_routes(
            "accounts:\n  z: {vendor: zoho, secret: s}\nroutes:\n"
            "  - {name: r, match: {type: t}, action: nope, account: z, mapping: {email: e}}\n"
        )
