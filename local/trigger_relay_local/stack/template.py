"""template.yaml as plain CloudFormation that moto can create: code uploaded, SAM translated.

The local stack provisions itself from the same template.yaml that `sam deploy` uses, so local
and deployed resources cannot drift apart.
"""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from trigger_relay_cli.repository import ROOT, TEMPLATE


class _NoManagedPolicies:
    """The template names no AWS managed policy by name, so there is nothing to look up."""

    def load(self) -> dict[str, str]:
        return {}


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml_parse(path.read_text(encoding="utf-8"))


def zip_directory(directory: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(directory.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, prefix + file.relative_to(directory).as_posix())
    return buffer.getvalue()


def package(template: dict[str, Any], s3: Any, bucket: str, root: Path = ROOT) -> dict[str, Any]:
    """Upload every CodeUri / ContentUri folder as a zip and point the template at it."""
    packaged = copy.deepcopy(template)
    for name, resource in packaged.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        for field, prefix in (("CodeUri", ""), ("ContentUri", "python/")):
            uri = properties.get(field)
            if isinstance(uri, str) and not uri.startswith("s3://"):
                key = f"code/{name}.zip"
                s3.put_object(Bucket=bucket, Key=key, Body=zip_directory(root / uri, prefix))
                properties[field] = f"s3://{bucket}/{key}"
    return packaged


def translate(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """SAM to plain CloudFormation, as the AWS::Serverless transform does it."""
    return transform(template, parameters or {}, _NoManagedPolicies())


class RuleFailed(ValueError):
    """A template rule refused the parameters, as CloudFormation would before creating
    anything; the message is the rule's AssertDescription."""


def check_rules(template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
    """Evaluate the template's Rules against the parameters (defaults filled in), as
    CloudFormation does when a stack is created or updated; moto skips them.
    https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html
    """
    values = {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    values.update({k: str(v) for k, v in (parameters or {}).items()})
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], values):
            continue
        for assertion in rule.get("Assertions", []):
            if not _rule_value(assertion["Assert"], values):
                description = " ".join(str(assertion.get("AssertDescription", name)).split())
                raise RuleFailed(f"{name}: {description}")


def _rule_value(node: Any, values: dict[str, str]) -> Any:
    """The rule-specific intrinsic functions, over string parameter values."""
    if isinstance(node, list):
        return [_rule_value(item, values) for item in node]
    if not isinstance(node, dict):
        return str(node)
    if len(node) != 1:
        raise ValueError(f"not a rule function: {node}")
    function, argument = next(iter(node.items()))
    if function == "Ref":
        return values[argument]
    args = _rule_value(argument, values)
    if function == "Fn::Equals":
        return args[0] == args[1]
    if function == "Fn::Not":
        return not args[0]
    if function == "Fn::And":
        return all(args)
    if function == "Fn::Or":
        return any(args)
    if function == "Fn::Contains":
        return args[1] in args[0]
    if function == "Fn::EachMemberEquals":
        return all(member == args[1] for member in args[0])
    if function == "Fn::EachMemberIn":
        return all(member in args[1] for member in args[0])
    raise ValueError(f"rule function {function} is not evaluated locally")
