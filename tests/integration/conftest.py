"""The embedded local stack for integration tests: moto, the vendor simulator, template.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trigger_relay_local.stack.embedded import Embedded, embedded_stack


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    workdir: Path = tmp_path_factory.mktemp("local-stack")
    with embedded_stack(workdir) as env:
        yield env
