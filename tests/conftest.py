"""Shared fixtures: fake AWS credentials for every test, a Lambda context, the vendors' published
samples (tests/contracts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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

    from trigger_relay.functions import clients

    parameters.clear_caches()
    for factory in (
        clients.aws,
        clients.http,
        clients.minted_tokens,
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


CONTRACTS = ROOT / "tests" / "contracts"


def contract(name: str) -> str:
    """A vendor's published sample, as tests/contracts/README.md says where it was taken from."""
    return (CONTRACTS / name).read_text(encoding="utf-8").removesuffix("\n")
