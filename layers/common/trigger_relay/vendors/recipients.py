"""Who a trigger is for, as field mappings produce it, validated before any call is planned."""

from __future__ import annotations

import re
from typing import Annotated

import idna
from pydantic import AfterValidator, BaseModel, ConfigDict

# Deliberately plain: one @, no spaces, a dotted ASCII domain; the vendor has the last word.
_EMAIL = re.compile(r"^[^@\s\"(),:;<>\[\\\]]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MAX_EMAIL_LENGTH = 254


def normalise_email(value: str) -> str:
    """The address as every vendor call carries it, or ValueError with why not.

    One rule for internationalised addresses, applied wherever a recipient is made (the
    pipeline, `explain`, `send`): a domain in Unicode is converted to its ASCII (IDNA, "xn--")
    form, which every mail system and both vendors read; a local part (before the @) must be
    ASCII, because neither Zoho nor Altcraft documents internationalised (SMTPUTF8)
    mailboxes (RFC 6531), so such an address is refused here rather than by the vendor. The
    domain is lower-cased; the local part is kept as given.

    >>> normalise_email(" Ann@Bücher.DE ")
    'Ann@xn--bcher-kva.de'
    """
    email = value.strip()
    try:
        email.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid UTF-8") from None
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("not a valid email address")
    if not local.isascii():
        raise ValueError(
            "not accepted: the part before @ has non-ASCII characters (an internationalised "
            "mailbox, which Zoho and Altcraft do not document support for)"
        )
    if not domain.isascii():
        try:  # IDNA 2008 with UTS 46 mapping, as browsers and mail systems convert domains
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise ValueError("not a valid email address: the domain is not a valid IDN") from None
    email = f"{local}@{domain.lower()}"
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValueError(f"email longer than {MAX_EMAIL_LENGTH} characters")
    if not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


Email = Annotated[str, AfterValidator(normalise_email)]
"""An email address, checked and with its domain lower-cased, for any recipient model."""


class EmailRecipient(BaseModel):
    model_config = ConfigDict(frozen=True)

    email: Email

    @property
    def key(self) -> str:
        return self.email.lower()
