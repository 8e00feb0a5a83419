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

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


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
    return transform(template, parameters or {}, _NoManagedPolicies())  # type: ignore[arg-type]
