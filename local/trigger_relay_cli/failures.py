"""How the operator CLI ends: an exit code per outcome, and for every failure a line that says
what is wrong and a line that says what to do. Only `--debug` shows a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Exit(IntEnum):
    """The CLI's exit codes (docs/operations.md#exit-codes)."""

    OK = 0  # done; every event sent was delivered
    FAILED = 1  # the command ran and failed: a sync with errors, a demo that did not drain
    CONFIG = 2  # usage or configuration: routes file, event file, stack, region, credentials
    REJECTED = 3  # some event ended rejected (and none worse)
    PENDING = 4  # some event was still queued or deferred when `send` stopped following
    UNCERTAIN = 5  # a vendor may have acted on some event without answering
    NOT_RELAYED = 6  # the stack's EventBridge rule drops some event: it was not published


@dataclass
class UserError(Exception):
    """A failure the user can act on: what is wrong, and what to do about it."""

    what: str
    todo: str = ""
    code: Exit = Exit.CONFIG

    def __str__(self) -> str:
        return self.what

    def lines(self) -> list[str]:
        return [f"error: {self.what}"] + ([self.todo] if self.todo else [])


def outcome_code(outcomes: list[str]) -> Exit:
    """The exit code of `send`: the worst outcome among the events."""
    worst = Exit.OK
    for outcome in outcomes:
        if outcome.startswith("NOT RELAYED"):
            code = Exit.NOT_RELAYED
        elif outcome.startswith("uncertain"):
            code = Exit.UNCERTAIN
        elif outcome.startswith("pending"):
            code = Exit.PENDING
        elif outcome.startswith("rejected"):
            code = Exit.REJECTED
        else:
            code = Exit.OK
        worst = max(worst, code, key=_severity)
    return worst


_ORDER = [Exit.OK, Exit.REJECTED, Exit.PENDING, Exit.NOT_RELAYED, Exit.UNCERTAIN]


def _severity(code: Exit) -> int:
    return _ORDER.index(code)


def describe(exc: BaseException, stack: str | None) -> UserError:
    """The user's view of an exception the CLI did not expect to end in: known AWS, file and
    configuration failures get their own sentence; anything else names its type."""
    if isinstance(exc, UserError):
        return exc
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        TokenRetrievalError,
    )

    where = f"stack {stack!r}" if stack else "the local stack"
    if isinstance(exc, NoRegionError):
        return UserError(
            f"no AWS region is set, so {where} cannot be found",
            "Pass --region REGION, or set AWS_DEFAULT_REGION (or a region in your AWS profile).",
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | TokenRetrievalError):
        return UserError(
            f"no usable AWS credentials to reach {where}",
            "Run `aws configure` or `aws sso login`, or set AWS_PROFILE; see docs/deploy.md.",
        )
    if isinstance(exc, EndpointConnectionError):
        return UserError(
            f"cannot reach AWS at {exc.kwargs.get('endpoint_url', 'its endpoint')}",
            "Check the network and the region; for the local stack, is `local up` running?",
            Exit.FAILED,
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "Error"), error.get("Message", "")
        operation = getattr(exc, "operation_name", "a request")
        if code == "ValidationError" and "does not exist" in message and stack:
            return UserError(
                f"no stack named {stack!r} in this account and region",
                "Check the name (`aws cloudformation list-stacks`) and --region.",
            )
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            return UserError(
                f"AWS refused {operation} on {where}: {message}",
                "Your credentials lack that permission; docs/deploy.md lists what operators need.",
                Exit.FAILED,
            )
        return UserError(f"AWS refused {operation}: {code}: {message}", "", Exit.FAILED)
    if isinstance(exc, OSError):
        return UserError(
            f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), "", Exit.FAILED
        )
    return UserError(
        f"{type(exc).__name__}: {exc}",
        "This looks like a bug; run again with --debug for the traceback and report it.",
        Exit.FAILED,
    )
