"""Who a trigger is for, as field mappings produce it, validated before any call is planned."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

# Deliberately plain: one @, no spaces, a dotted domain; the vendor has the last word.
_EMAIL = re.compile(r"^[^@\s\"(),:;<>\[\\\]]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MAX_EMAIL_LENGTH = 254


def normalise_email(value: str) -> str:
    email = value.strip()
    try:
        email.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8") from None
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValueError(f"email longer than {MAX_EMAIL_LENGTH} characters")
    if not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    local, _, domain = email.partition("@")
    return f"{local}@{domain.lower()}"


Email = Annotated[str, AfterValidator(normalise_email)]
"""An email address, checked and with its domain lower-cased, for any recipient model."""


class EmailRecipient(BaseModel):
    model_config = ConfigDict(frozen=True)

    email: Email

    @property
    def key(self) -> str:
        return self.email.lower()
