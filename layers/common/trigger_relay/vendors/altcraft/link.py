"""Altcraft trigger launch v1.0: the per-profile trigger link, GET or POST.
(guides.altcraft.com, developer guide: Trigger launch (API call))

``http://<tracking domain>/trg/<base16 value>/<email | md5 | xxh>`` launches the trigger for
the one profile the last segment names: its email, or the MD5 or XX hash (XXH64) of it. POST
may carry ``fields`` that fill (option 0), override (1) or rewrite (2) profile fields.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
import xxhash
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trigger_relay.vendors.altcraft.common import AltcraftApi, json_body, launch_result
from trigger_relay.vendors.outcomes import CallResult
from trigger_relay.vendors.recipients import Email


class LinkField(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    value: Any
    option: Literal[0, 1, 2] = Field(
        description="0: ignored if the profile has a value; 1: used in the message only; "
        "2: used and written to the profile"
    )


class LinkParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    link: str = Field(description="the trigger's link up to /trg/<value>, as Altcraft shows it")
    addressing: Literal["email", "md5", "xxh"] = "email"
    method: Literal["GET", "POST"] = "GET"
    id: int | None = Field(default=None, description="sent in a POST body when given")
    send_token: bool = Field(default=False, description="put the API token in a POST body")

    @field_validator("link")
    @classmethod
    def _link(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or "/trg/" not in value:
            raise ValueError("link must be http(s)://<tracking domain>/trg/<value>")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _post_only(self) -> LinkParams:
        if self.method == "GET" and (self.id is not None or self.send_token):
            raise ValueError("id and send_token go in a POST body")
        return self


class LinkRecipient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    email: Email
    profile_id: str | None = None
    fields: list[LinkField] | None = None

    @property
    def key(self) -> str:
        extra = json.dumps([f.model_dump() for f in self.fields or []], sort_keys=True, default=str)
        return f"{self.email.lower()}:{extra}" if self.fields else self.email.lower()


def address(email: str, addressing: str) -> str:
    """The link's last segment for a profile."""
    if addressing == "md5":
        return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()
    if addressing == "xxh":
        return xxhash.xxh64_hexdigest(email.lower().encode())
    return quote(email, safe="@")


@dataclass(frozen=True)
class AltcraftLink(AltcraftApi):
    action: str = "altcraft.trigger_link"
    vendor: str = "altcraft"
    needs_base_url: bool = False  # the link in the params is the whole address
    params_model: type[LinkParams] = LinkParams
    recipient_model: type[LinkRecipient] = LinkRecipient
    max_recipients: int = 1  # "allows you to send a trigger to only one profile per request"

    def target(self, params: LinkParams) -> str:
        return params.link

    def check_mapping(self, params: LinkParams, fields: set[str]) -> None:
        if "email" not in fields:
            raise ValueError("this route maps email (the link addresses profiles by it)")
        if params.method == "GET" and fields - {"email"}:
            raise ValueError("fields and profile_id need method POST")

    def chunk(
        self, recipients: list[LinkRecipient], params: LinkParams
    ) -> list[list[LinkRecipient]]:
        return [[r] for r in recipients]

    def document(self, recipient: LinkRecipient, params: LinkParams, token: str) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if params.send_token:
            document["token"] = token
        if params.id is not None:
            document["id"] = params.id
        if recipient.profile_id is not None:
            document["matching"] = "profile_id"
            document["profile_id"] = recipient.profile_id
        if recipient.fields:
            document["fields"] = [f.model_dump() for f in recipient.fields]
        return document

    def build(
        self,
        recipients: list[LinkRecipient],
        params: LinkParams,
        *,
        token: str,
        base_url: str | None = None,
    ) -> httpx.Request:
        (recipient,) = recipients
        url = f"{params.link}/{address(recipient.email, params.addressing)}"
        if base_url:  # the simulator, or a proxy: keep the path, change the host
            url = base_url.rstrip("/") + "/trg/" + url.split("/trg/", 1)[1]
        if params.method == "GET":
            return httpx.Request("GET", url)
        return httpx.Request(
            "POST",
            url,
            content=json_body(self.document(recipient, params, token)),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )

    def parse(
        self,
        response: httpx.Response,
        recipients: list[LinkRecipient],
        lock_codes: frozenset[str] = frozenset(),
    ) -> CallResult:
        return launch_result(response, [r.key for r in recipients])


ALTCRAFT_LINK = AltcraftLink()
