"""The one Logger and Metrics of the package, and how personal data is kept out of logs."""

from __future__ import annotations

import hashlib
import os
import re

from aws_lambda_powertools import Logger, Metrics

# The stack's name (template.yaml sets it): the `service` dimension of every metric, so the
# alarms of two stacks in one account each count their own events.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "trigger-relay"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="TriggerRelay", service=SERVICE)


def mask_email(email: str) -> str:
    """A log-safe stand-in for an address: first letter, domain and a short stable hash.

    >>> mask_email("patricia@zylker.com")
    'p***@zylker.com#36285d37'
    """
    local, _, domain = email.strip().partition("@")
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:8]
    return f"{local[:1]}***@{domain}#{digest}"


_ADDRESS = re.compile(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+")


def scrub(text: str) -> str:
    """Text with every address in it masked, for a reason or message that may quote one.

    >>> scrub("9002: p.r@zylker.com is invalid")
    '9002: p***@zylker.com#0a24740b is invalid'
    """
    return _ADDRESS.sub(lambda match: mask_email(match.group()), text)
