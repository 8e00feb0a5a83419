"""Altcraft trigger launch v1.1: POST /api/v1.1/campaigns/triggers/start/.
(guides.altcraft.com, developer guide: Trigger launch (API call))

Matching by email, phone, profile_id or a custom field launches for one profile per call.
With ``custom_request_field`` the route batches instead: many events' values go into one call
as a MongoDB query ``{field: {"$in": [...]}}`` (the ``custom_request`` mode).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trigger_relay.vendors.altcraft.common import AltcraftApi, json_body, launch_result
from trigger_relay.vendors.outcomes import CallResult
from trigger_relay.vendors.recipients import Email

PATH = "/api/v1.1/campaigns/triggers/start/"
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+;base64,(?P<data>[A-Za-z0-9+/=]+)$")


class Attachment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str = Field(description="a data URL: data:<mime>;base64,<content>")
    name: str = Field(min_length=1, description="file name; any language")

    @field_validator("data")
    @classmethod
    def _data_url(cls, value: str) -> str:
        match = _DATA_URL.match(value)
        if not match:
            raise ValueError("attach data must be a base64 data URL")
        try:
            base64.b64decode(match["data"], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"attach data is not valid base64: {exc}") from None
        return value


class SubscriptionFilter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    subscription_id: str | None = None
    provider: str | None = None
    email: Email | None = None  # the same rule as every recipient's address
    phone: str | None = None
    not_strict: bool = Field(description="true: use another fitting subscription if not found")

    @model_validator(mode="after")
    def _one_kind(self) -> SubscriptionFilter:
        kinds = [self.subscription_id is not None, self.email is not None, self.phone is not None]
        if sum(kinds) != 1:
            raise ValueError("one of subscription_id (push), email or phone")
        return self


class TriggerParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int = Field(ge=1, description="trigger campaign id")
    matching: Literal["email", "phone", "profile_id", "custom"] | None = "email"
    field_name: str | None = None
    resource_id: int | None = None
    custom_request_field: str | None = Field(
        default=None, description="batch events into custom_request {field: {$in: [...]}}"
    )
    max_values: int = Field(default=1000, ge=1, le=10_000)
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    attach: list[Attachment] | None = None
    subscription_filter: SubscriptionFilter | None = None

    @model_validator(mode="after")
    def _modes(self) -> TriggerParams:
        if self.custom_request_field:
            if self.matching not in (None, "email"):
                raise ValueError("custom_request_field is used without matching")
            if self.subscription_filter is not None:
                raise ValueError("subscription_filter is not used with custom_request")
        if (self.matching == "custom") != bool(self.field_name):
            raise ValueError("field_name is needed with matching=custom, and only then")
        if self.resource_id is not None and self.matching not in ("email", "phone"):
            raise ValueError("resource_id applies to email and phone matching")
        return self

    @property
    def batched(self) -> bool:
        return self.custom_request_field is not None


class ProfileRecipient(BaseModel):
    """One profile (or, in custom_request mode, one value of the query's field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: Email | None = None
    phone: str | None = None
    profile_id: str | None = None
    field_value: str | int | None = None
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None

    @field_validator("phone")
    @classmethod
    def _valid_phone(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\+?[0-9]{5,15}", value.replace(" ", "")):
            raise ValueError("not a phone number")
        return None if value is None else value.replace(" ", "")

    @model_validator(mode="after")
    def _one_address(self) -> ProfileRecipient:
        if (
            sum(v is not None for v in (self.email, self.phone, self.profile_id, self.field_value))
            != 1
        ):
            raise ValueError("exactly one of email, phone, profile_id and field_value")
        return self

    @property
    def key(self) -> str:
        for name in ("email", "phone", "profile_id", "field_value"):
            value = getattr(self, name)
            if value is not None:
                extra = json.dumps([self.content, self.custom_data], sort_keys=True, default=str)
                return f"{name}:{str(value).lower()}" + (
                    "" if extra == "[null, null]" else f":{extra}"
                )
        raise AssertionError("unreachable")


_ADDRESS = {"email": "email", "phone": "phone", "profile_id": "profile_id", "custom": "field_value"}


@dataclass(frozen=True)
class AltcraftTrigger(AltcraftApi):
    action: str = "altcraft.trigger"
    vendor: str = "altcraft"
    params_model: type[TriggerParams] = TriggerParams
    recipient_model: type[ProfileRecipient] = ProfileRecipient
    max_recipients: int = 1

    def target(self, params: TriggerParams) -> str:
        return json.dumps(params.model_dump(mode="json"), sort_keys=True)

    def check_mapping(self, params: TriggerParams, fields: set[str]) -> None:
        address = "field_value" if params.batched else _ADDRESS[params.matching or "email"]
        if address not in fields:
            raise ValueError(f"this route maps {address}")
        others = fields - {address, "content", "custom_data"}
        if others:
            raise ValueError(f"this route does not take {sorted(others)}")
        if params.batched and fields & {"content", "custom_data"}:
            raise ValueError("custom_request calls share content; map only field_value")

    def chunk(
        self, recipients: list[ProfileRecipient], params: TriggerParams
    ) -> list[list[ProfileRecipient]]:
        size = params.max_values if params.batched else 1
        return [recipients[i : i + size] for i in range(0, len(recipients), size)]

    def document(
        self, recipients: list[ProfileRecipient], params: TriggerParams, token: str
    ) -> dict[str, Any]:
        document: dict[str, Any] = {"token": token, "id": params.id}
        if params.batched:
            values = [r.field_value for r in recipients]
            document["custom_request"] = {params.custom_request_field: {"$in": values}}
        else:
            (recipient,) = recipients
            matching = params.matching or "email"
            document["matching"] = matching
            if matching == "custom":
                document["field_name"] = params.field_name
            address = _ADDRESS[matching]
            document[address] = getattr(recipient, address)
            if params.resource_id is not None:
                document["resource_id"] = params.resource_id
        if params.attach:
            document["attach"] = [a.model_dump() for a in params.attach]
        single = recipients[0] if len(recipients) == 1 and not params.batched else None
        content = {**(params.content or {}), **((single.content if single else None) or {})}
        custom_data = {
            **(params.custom_data or {}),
            **((single.custom_data if single else None) or {}),
        }
        if content:
            document["content"] = content
        if custom_data:
            document["custom_data"] = custom_data
        if params.subscription_filter is not None:
            document["subscription_filter"] = params.subscription_filter.model_dump(
                exclude_none=True
            )
        return document

    def build(
        self,
        recipients: list[ProfileRecipient],
        params: TriggerParams,
        *,
        token: str,
        base_url: str,
    ) -> httpx.Request:
        return httpx.Request(
            "POST",
            base_url.rstrip("/") + PATH,
            content=json_body(self.document(recipients, params, token)),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

    def parse(
        self,
        response: httpx.Response,
        recipients: list[ProfileRecipient],
        lock_codes: frozenset[str] = frozenset(),
    ) -> CallResult:
        return launch_result(response, [r.key for r in recipients])


ALTCRAFT_TRIGGER = AltcraftTrigger()
