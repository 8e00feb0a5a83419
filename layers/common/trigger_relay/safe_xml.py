"""XML from vendors, parsed without DTDs: no entity expansion, no external entities."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # nosec B405 - DTDs are refused before parsing

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class UnsafeXml(ValueError):
    pass


def parse_xml(data: bytes) -> ET.Element:
    if _DTD.search(data):
        raise UnsafeXml("XML with a DTD or entity declarations is refused")
    try:
        return ET.fromstring(data)  # noqa: S314  # nosec B314 - no DTD: no entity expansion
    except ET.ParseError as exc:
        raise UnsafeXml(f"malformed XML: {exc}") from None
