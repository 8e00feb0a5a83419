"""The Lambda runs python3.13, but the package and the local stack must load on 3.11 too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

SOURCES = sorted(
    p
    for folder in ("layers/common", "local", "functions")
    for p in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_parses_as_python_3_11(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 11))
