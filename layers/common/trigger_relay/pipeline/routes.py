"""The routes file: which events fire which vendor triggers, with what fields.

```yaml
accounts:
  zoho-main: {vendor: zoho, data_centre: eu, secret: trigger-relay/zoho-main}
routes:
  - name: welcome-workflow
    match: {type: user.signed_up}
    action: zoho_campaigns.workflow_trigger
    account: zoho-main
    params: {workflow_key: ..., trigger_key: ..., list_key: ...}
    mapping: {email: user.email}
```

A file that fails validation raises RoutesError naming the route and the field, at cold start
or from ``trigger-relay-local validate``, never at the first event that needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import jmespath
import yaml
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from trigger_relay.pipeline.events import InboundEvent
from trigger_relay.stores.quota import Limit
from trigger_relay.vendors import registry
from trigger_relay.vendors.vendor import TriggerApi
from trigger_relay.vendors.zoho.recipients import ACTIONS as RECIPIENT_ACTIONS
from trigger_relay.vendors.zoho.recipients import VENDOR_NAME as RECIPIENTS_VENDOR
from trigger_relay.vendors.zoho.recipients import Action as RecipientsAction


class RoutesError(ValueError):
    """The routes file is invalid; the message names where."""


class BadRecipient(ValueError):
    """An event matched a route but its fields do not make a valid recipient."""


class MatchError(ValueError):
    """A route's match condition could not be evaluated on this event (a JMESPath type error:
    ``contains(user.tags, 'vip')`` where tags is a number)."""


class Account(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    vendor: str = Field(description="the name of a vendor package in vendors/")
    secret: str = Field(min_length=1, description="Secrets Manager name or ARN")
    data_centre: str = Field(default="", description="the vendor's default when not given")
    base_url: str | None = Field(default=None, description="overrides the vendor host")
    lock_codes: list[str] = Field(default_factory=list, description="extra codes meaning locked")
    limits: dict[str, Limit] = Field(
        default_factory=dict,
        description="overrides by quota API (an API's action unless it shares a quota)",
    )

    @model_validator(mode="before")
    @classmethod
    def _vendor_default_data_centre(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "data_centre" not in data:
            vendor = registry.vendor(str(data.get("vendor")))
            if vendor is not None and vendor.default_data_centre:
                return {**data, "data_centre": vendor.default_data_centre}
        return data

    @model_validator(mode="after")
    def _known_vendor(self) -> Account:
        vendor = registry.vendor(self.vendor)
        if vendor is None:
            raise ValueError(f"vendor must be one of {registry.names()}, not {self.vendor!r}")
        why = vendor.check_account(self.data_centre)
        if why is not None:
            raise ValueError(why)
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self

    def limit(self, quota_api: str) -> Limit:
        """The limit of a quota (an API's ``quota_api``: its action, unless it shares one)."""
        found = self.limits.get(quota_api) or registry.limit(quota_api)
        if found is None:
            raise KeyError(quota_api)
        return found


class Match(BaseModel):
    """All given conditions must hold. Lists mean "any of"."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: str | list[str] | None = None
    source: str | list[str] | None = None
    detail_type: str | list[str] | None = Field(default=None, alias="detail-type")
    fields: dict[str, Any] = Field(default_factory=dict, description="JMESPath -> expected value")
    attributes: dict[str, str] = Field(default_factory=dict, description="SQS message attributes")

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not (self.type or self.source or self.detail_type or self.fields or self.attributes):
            raise ValueError("match needs at least one of type, source, detail-type, fields")
        for expression in self.fields:
            _compile(expression, "match.fields")
        return self

    @cached_property
    def _compiled_fields(self) -> list[tuple[ParsedResult, Any]]:
        return [(_compile(expr), expected) for expr, expected in self.fields.items()]

    def why_not(self, event: InboundEvent) -> str | None:
        """None when the event matches, else the first condition it fails."""
        for name, wanted, actual in (
            ("type", self.type, event.type),
            ("source", self.source, event.source),
            ("detail-type", self.detail_type, event.detail_type),
        ):
            if wanted is not None and actual not in (
                [wanted] if isinstance(wanted, str) else wanted
            ):
                if actual is None:  # an SQS app event has no source or detail-type
                    return f"the event has no {name}, route wants {wanted!r}"
                return f"{name} is {actual!r}, route wants {wanted!r}"
        for key, expected in self.attributes.items():
            if event.attributes.get(key) != expected:
                return f"attribute {key} is {event.attributes.get(key)!r}, route wants {expected!r}"
        for compiled, expected in self._compiled_fields:
            try:
                actual = compiled.search(event.data)
            except JMESPathError as exc:
                raise MatchError(
                    f"match.fields {compiled.expression}: {_first_line(exc)}"
                ) from None
            if actual != expected:
                return f"{compiled.expression} is {actual!r}, route wants {expected!r}"
        return None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line, where it is (1-based) and what is wrong."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


# A value like "<workflow key>": the docs' placeholders, copied without being filled in.
_PLACEHOLDER = re.compile(r"<[^<>]+>")


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a params tree, with its path."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}.{index}")


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    match: Match
    action: str
    account: str
    params: dict[str, Any] = Field(default_factory=dict)
    mapping: dict[str, str] = Field(description="recipient field -> JMESPath over the event data")
    delivery: Literal["at_most_once", "at_least_once"] = Field(
        default="at_most_once",
        description="for vendors that do not deduplicate: whether a call the vendor may have "
        "acted on (a timeout after sending) is repeated automatically (at_least_once) or "
        "stored as uncertain for an operator to redrive (at_most_once)",
    )
    max_hold_seconds: float = Field(
        default=60.0,
        ge=0,
        le=900,
        description="while the vendor's quota has no free slot, how long a record may be held "
        "back so that it goes out in a fuller call; 0 sends every call as soon as a slot comes",
    )

    @model_validator(mode="after")
    def _check_action(self) -> Route:
        api = registry.api(self.action)
        if api is None:
            raise ValueError(f"unknown action {self.action!r}; known: {registry.actions()}")
        for where, value in _strings(self.params, "params"):
            if _PLACEHOLDER.fullmatch(value.strip()):
                raise ValueError(
                    f"{where} is {value!r}, a placeholder: put the real value from the "
                    "vendor's console there"
                )
        params = api.params_model.model_validate(self.params)
        required = {n for n, f in api.recipient_model.model_fields.items() if f.is_required()}
        missing = required - self.mapping.keys()
        if missing:
            raise ValueError(f"mapping lacks {sorted(missing)} for {self.action}")
        unknown = self.mapping.keys() - api.recipient_model.model_fields.keys()
        if unknown:
            raise ValueError(
                f"mapping has fields {sorted(unknown)} that {self.action} does not take"
            )
        api.check_mapping(params, set(self.mapping))
        for name, expression in self.mapping.items():
            _compile(expression, f"mapping.{name}")
        return self

    @cached_property
    def api(self) -> TriggerApi:
        found = registry.api(self.action)
        if found is None:  # validated: every route's action has an API
            raise KeyError(self.action)
        return found

    @property
    def repeat_safe(self) -> bool:
        """A repeated call is harmless: the vendor deduplicates, or the route accepts it."""
        return self.api.deduplicates or self.delivery == "at_least_once"

    @cached_property
    def typed_params(self) -> Any:
        return self.api.params_model.model_validate(self.params)

    @cached_property
    def _compiled_mapping(self) -> dict[str, ParsedResult]:
        return {name: _compile(expr) for name, expr in self.mapping.items()}

    def recipient(self, event: InboundEvent) -> Any:
        """The recipient this event names under this route's mapping, or BadRecipient."""
        values = {}
        for name, compiled in self._compiled_mapping.items():
            try:
                value = compiled.search(event.data)
            except JMESPathError as exc:
                raise BadRecipient(
                    f"route {self.name}: {name} ({compiled.expression}): {_first_line(exc)}"
                ) from None
            if value is None:
                raise BadRecipient(f"route {self.name}: {name} ({compiled.expression}) is missing")
            values[name] = value
        try:
            return self.api.recipient_model.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"])
            raise BadRecipient(f"route {self.name}: {field}: {error['msg']}") from None


class RecipientsSyncConfig(BaseModel):
    """Which campaigns' recipient lists RecipientsSyncFunction copies to S3. The source is Zoho
    Campaigns' "get campaign recipients data" (vendors/zoho/recipients.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: str
    campaigns: list[str] = Field(min_length=1, description="campaign keys")
    actions: list[RecipientsAction] = Field(default_factory=lambda: list(RECIPIENT_ACTIONS))
    page_size: int = Field(default=200, ge=1, le=1000)
    format: Literal["json", "xml"] = "json"


class RoutesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    accounts: dict[str, Account]
    routes: list[Route] = Field(min_length=1)
    recipients_sync: RecipientsSyncConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RoutesFile:
        seen: set[str] = set()
        for index, route in enumerate(self.routes):
            if route.name in seen:
                raise ValueError(f"routes.{index}: duplicate route name {route.name!r}")
            seen.add(route.name)
            account = self.accounts.get(route.account)
            if account is None:
                raise ValueError(
                    f"routes.{index} ({route.name}): unknown account {route.account!r}"
                )
            if account.vendor != route.api.vendor:
                raise ValueError(
                    f"routes.{index} ({route.name}): {route.action} needs a {route.api.vendor} "
                    f"account, {route.account!r} is {account.vendor}"
                )
            api = route.api
            if api.needs_base_url and api.base_url(account.data_centre, account.base_url) is None:
                raise ValueError(
                    f"routes.{index} ({route.name}): account {route.account!r} needs base_url"
                )
        sync = self.recipients_sync
        if sync is not None:
            account = self.accounts.get(sync.account)
            if account is None or account.vendor != RECIPIENTS_VENDOR:
                raise ValueError(
                    f"recipients_sync.account {sync.account!r} is not a {RECIPIENTS_VENDOR} account"
                )
        return self


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _compile(expression: str, where: str = "") -> ParsedResult:
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        reason = str(exc).splitlines()[0]
        raise ValueError(
            f"{where + ': ' if where else ''}bad JMESPath {expression!r}: {reason}"
        ) from None


MAX_ROUTES_BYTES = 1024 * 1024


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a few aliases can expand into billions of nodes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"aliases (*{event.anchor}) are not allowed, line {event.start_mark.line + 1}"
            )
        return super().compose_node(parent, index)


def parse_routes(text: str, where: str = "routes file") -> RoutesFile:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_ROUTES_BYTES:
        raise RoutesError(f"{where}: larger than {MAX_ROUTES_BYTES} bytes")
    try:
        document = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506  # nosec B506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RoutesError(f"{where}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(document, dict):
        raise RoutesError(f"{where}: must be a mapping with accounts and routes")
    try:
        return RoutesFile.model_validate(document)
    except ValidationError as exc:
        raise RoutesError(f"{where}: {_describe(exc, document)}") from None


def load_routes(path: Path) -> RoutesFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesError(f"{path}: cannot read: {exc}") from None
    return parse_routes(text, str(path))


def _describe(exc: ValidationError, document: dict[str, Any]) -> str:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ".".join(str(p) for p in loc) or "file"
        if len(loc) >= 2 and loc[0] == "routes" and isinstance(loc[1], int):
            routes = document.get("routes") or []
            name = (
                routes[loc[1]].get("name")
                if loc[1] < len(routes) and isinstance(routes[loc[1]], dict)
                else None
            )
            if name:
                where = f"route {name!r} ({where})"
        lines.append(f"{where}: {error['msg']}")
    return "; ".join(lines)
