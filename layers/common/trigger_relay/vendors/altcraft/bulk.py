"""Altcraft bulk trigger launch: POST /api/v1.1/campaigns/triggers/start_batch.
(guides.altcraft.com, developer guide: Bulk trigger launch)

One call launches a trigger campaign for many profiles, matched by email or by a custom field.
JSON or XML, as the route asks. Bodies are capped at 10 MB, so calls are cut by encoded size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from trigger_relay.vendors.altcraft.common import (
    MAX_BODY_BYTES,
    AltcraftApi,
    Format,
    error_result,
    json_body,
    read_answer,
    to_xml,
)
from trigger_relay.vendors.outcomes import CallResult, Outcome, RecipientOutcome
from trigger_relay.vendors.recipients import Email

PATH = "/api/v1.1/campaigns/triggers/start_batch"
TOKEN_ALLOWANCE = 256


class BulkParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trigger_id: int = Field(ge=1)
    format: Format = "json"
    matching: Literal["email", "custom"] = "email"
    field_name: str | None = Field(
        default=None, description="the custom field, for matching=custom"
    )
    skip_triggers: bool | None = None
    content: dict[str, Any] | None = None
    custom_data: dict[str, Any] | None = None
    attach: list[dict[str, str]] | None = None
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, ge=1024, le=MAX_BODY_BYTES)

    @model_validator(mode="after")
    def _field_name_for_custom(self) -> BulkParams:
        if (self.matching == "custom") != bool(self.field_name):
            raise ValueError("field_name is needed with matching=custom, and only then")
        return self


class BulkRecipient(BaseModel):
    """One profile: by email, or by the value of the route's custom field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: Email | None = None
    field_value: str | int | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> BulkRecipient:
        if (self.email is None) == (self.field_value is None):
            raise ValueError("exactly one of email and field_value")
        return self

    @property
    def key(self) -> str:
        return self.email.lower() if self.email is not None else f"field:{self.field_value}"

    def data(self) -> dict[str, Any]:
        return (
            {"email": self.email} if self.email is not None else {"field_value": self.field_value}
        )


@dataclass(frozen=True)
class AltcraftBulk(AltcraftApi):
    action: str = "altcraft.bulk_trigger"
    vendor: str = "altcraft"
    params_model: type[BulkParams] = BulkParams
    recipient_model: type[BulkRecipient] = BulkRecipient
    max_recipients: int = 10_000  # no documented count limit; the body size decides

    def target(self, params: BulkParams) -> str:
        return json.dumps(params.model_dump(exclude={"max_body_bytes"}), sort_keys=True)

    def check_mapping(self, params: BulkParams, fields: set[str]) -> None:
        wanted = "email" if params.matching == "email" else "field_value"
        if fields != {wanted}:
            raise ValueError(f"matching={params.matching} maps exactly one field: {wanted}")

    def document(
        self, recipients: list[BulkRecipient], params: BulkParams, token: str
    ) -> dict[str, Any]:
        """The request as the seed orders it: token, trigger_id, format, options, data."""
        document: dict[str, Any] = {
            "token": token,
            "trigger_id": params.trigger_id,
            "format": params.format,
        }
        if params.skip_triggers is not None:
            document["skip_triggers"] = params.skip_triggers
        document["matching"] = params.matching
        if params.field_name:
            document["field_name"] = params.field_name
        for name in ("content", "custom_data", "attach"):
            if getattr(params, name) is not None:
                document[name] = getattr(params, name)
        document["data"] = [r.data() for r in recipients]
        return document

    def encode(self, document: dict[str, Any], fmt: Format) -> bytes:
        return to_xml("xml", document) if fmt == "xml" else json_body(document)

    def chunk(
        self, recipients: list[BulkRecipient], params: BulkParams
    ) -> list[list[BulkRecipient]]:
        """Cut into calls whose encoded body stays under the cap (measured, not guessed)."""
        # The real token is not known here: allow for a long one.
        base = len(self.encode(self.document([], params, "x" * TOKEN_ALLOWANCE), params.format))
        chunks: list[list[BulkRecipient]] = []
        current: list[BulkRecipient] = []
        size = base
        for recipient in recipients:
            item = self._item_size(recipient, params.format)
            if item + base > params.max_body_bytes:
                raise ValueError("one recipient alone exceeds the body cap")
            if current and (
                size + item > params.max_body_bytes or len(current) >= self.max_recipients
            ):
                chunks.append(current)
                current, size = [], base
            current.append(recipient)
            size += item
        if current:
            chunks.append(current)
        return chunks

    @staticmethod
    def _item_size(recipient: BulkRecipient, fmt: Format) -> int:
        if fmt == "xml":
            return len(to_xml("data", recipient.data()))
        return len(json_body(recipient.data())) + len(", ")

    def build(
        self, recipients: list[BulkRecipient], params: BulkParams, *, token: str, base_url: str
    ) -> httpx.Request:
        body = self.encode(self.document(recipients, params, token), params.format)
        if len(body) > params.max_body_bytes:
            raise ValueError(f"body of {len(body)} bytes is over the {params.max_body_bytes} cap")
        content_type = "application/xml" if params.format == "xml" else "application/json"
        return httpx.Request(
            "POST",
            base_url.rstrip("/") + PATH,
            content=body,
            headers={"Content-Type": f"{content_type}; charset=utf-8"},
        )

    def parse(
        self,
        response: httpx.Response,
        recipients: list[BulkRecipient],
        lock_codes: frozenset[str] = frozenset(),
        fmt: Format = "json",
    ) -> CallResult:
        keys = [r.key for r in recipients]
        try:  # the format the request was sent in; a response built without one has none
            sent = response.request.headers.get("content-type", "")
        except RuntimeError:
            sent = ""
        answer = read_answer(response, keys, "xml" if "xml" in sent else fmt)
        if isinstance(answer, CallResult):
            return answer
        error = error_result(answer, keys, response.status_code)
        if error is not None:
            return error
        profiles = answer.get("result") or []
        detail = f"launched; {len(profiles)} profile(s) of {len(keys)} matched"
        return CallResult(
            {k: RecipientOutcome(Outcome.DELIVERED, detail) for k in keys}, vendor_code="0"
        )


ALTCRAFT_BULK = AltcraftBulk()
