"""The repository's files the CLI reads: the routes file the layer ships, and template.yaml's
parameter defaults. PyYAML only: the CLI works against a deployed stack without the SAM
translator or moto installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # the checkout
ROUTES = ROOT / "layers" / "common" / "routes.yaml"
TEMPLATE = ROOT / "template.yaml"


class _TemplateLoader(yaml.SafeLoader):
    """CloudFormation's short forms (``!Ref``, ``!Sub`` ...) read as plain values."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_TemplateLoader.add_multi_constructor("!", _short_form)


def template_default(parameter: str, template: Path = TEMPLATE) -> str:
    """A parameter's default in template.yaml."""
    document = yaml.load(template.read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506 - a SafeLoader subclass
    return str(document["Parameters"][parameter]["Default"])
