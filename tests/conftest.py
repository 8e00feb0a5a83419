"""Shared fixtures: fake AWS credentials for every test, a Lambda context, the seeds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
EVENTS = ROOT / "events"


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach real AWS: fake credentials and a region, no profile."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


@pytest.fixture(autouse=True)
def _clear_caches() -> None:
    from aws_lambda_powertools.utilities import parameters

    from trigger_relay import clients

    parameters.clear_caches()
    for factory in (
        clients.aws,
        clients.http,
        clients.zoho_tokens,
        clients.quota_gate,
        clients._routes,
    ):
        factory.cache_clear()


@dataclass
class FakeContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:test-function"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()


def seed(prefix: str) -> str:
    """The text of the seed whose file name starts with prefix (e.g. "000")."""
    matches = sorted(SEEDS.glob(f"{prefix}_*.txt"))
    assert matches, f"seed {prefix} not found under {SEEDS}"
    return matches[0].read_text(encoding="utf-8")


def seed_block(text: str, after: str, opener: str = "{") -> str:
    """The first balanced JSON object (or XML element) that follows the line `after`."""
    start = text.index(after) + len(after)
    if opener == "{":
        begin = text.index("{", start)
        depth = 0
        for index in range(begin, len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                return text[begin : index + 1]
        raise AssertionError("unbalanced JSON in seed")
    begin = text.index(opener, start)
    tag = re.match(r"<(\w+)", text[begin:]).group(1)  # type: ignore[union-attr]
    end = text.index(f"</{tag}>", begin) + len(f"</{tag}>")
    return text[begin:end]
