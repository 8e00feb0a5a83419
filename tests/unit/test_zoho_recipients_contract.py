"""Contract: Zoho Campaigns recipients data (tests/contracts/zoho) in JSON and XML, paging, error
codes."""

from __future__ import annotations

from urllib.parse import unquote_plus

import httpx
import pytest

from tests.conftest import contract
from trigger_relay.pipeline.recipients_sync import normalise
from trigger_relay.vendors.safe_xml import UnsafeXml, parse_xml
from trigger_relay.vendors.zoho import recipients as api
from trigger_relay.vendors.zoho.recipients import ACTIONS, Page, PageError


def test_the_nine_actions_are_the_documented_ones() -> None:
    documented = contract("zoho/campaigns-recipients.actions.txt")
    assert sorted(a.strip() for a in documented.split("|")) == sorted(ACTIONS)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_build_matches_the_sample_request(fmt: str) -> None:
    request = api.build(
        "CK1", "sentcontacts", 1, 20, token="t", base_url="https://campaigns.zoho.com", fmt=fmt
    )
    url = unquote_plus(str(request.url))
    assert url.startswith("https://campaigns.zoho.com/api/v1.1/getcampaignrecipientsdata?")
    assert f"resfmt={fmt.upper()}&campaignkey=CK1&action=sentcontacts" in url
    assert url.endswith("&fromindex=1&range=20")
    assert request.method == "POST"
    assert request.headers["Authorization"] == "Zoho-oauthtoken t"


def test_documented_json_response() -> None:
    body = contract("zoho/campaigns-recipients.response.json")
    page = api.parse(httpx.Response(200, text=body), 1, 20, "json")
    assert isinstance(page, Page) and page.last
    assert page.rows[0]["contactemailaddress"] == "john.doe@xyz.com"
    row = normalise(page.rows[0], "CK1", "sentcontacts", "2026-11-23T00:00:00.000Z")
    assert row["sent_time"] == "2013-08-02T15:09:21.000Z"
    assert row["phone"] is None and row["companyname"] is None and row["lastname"] == ""
    assert (row["campaign_key"], row["action"]) == ("CK1", "sentcontacts")


def test_documented_xml_response() -> None:
    body = contract("zoho/campaigns-recipients.response.xml")
    page = api.parse(httpx.Response(200, text=body), 1, 20, "xml")
    assert isinstance(page, Page)
    assert page.rows == [
        {
            "sentdate": "02 Aug 2013, 12:39 PM",
            "firstname": "meganath.v",
            "lastname": None,
            "companyname": None,
            "phone": None,
            "contactemailaddress": "john.doe@xyz.com",
        }
    ]


@pytest.mark.parametrize("code", ["6601", "6607", "6303", "6002"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_documented_codes_end_the_campaign_run(code: str, fmt: str) -> None:
    if fmt == "json":
        response = httpx.Response(200, json={"code": code, "status": "error", "message": "m"})
    else:
        response = httpx.Response(
            200, text=f"<response><status>error</status><code>{code}</code></response>"
        )
    result = api.parse(response, 1, 20, fmt)
    assert isinstance(result, PageError) and result.final and result.code == code


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, text="{not json"),
        httpx.Response(200, json={"code": "0", "status": "success", "list_of_details": "x"}),
    ],
)
def test_transient_failures_are_not_final(response: httpx.Response) -> None:
    result = api.parse(response, 1, 20, "json")
    assert isinstance(result, PageError) and not result.final


def test_full_page_is_not_last() -> None:
    rows = [{"contactemailaddress": f"a{i}@b.co"} for i in range(20)]
    page = api.parse(
        httpx.Response(200, json={"code": "0", "status": "success", "list_of_details": rows}),
        21,
        20,
    )
    assert isinstance(page, Page) and not page.last and page.from_index == 21


def test_xml_with_entities_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>'
    )
    with pytest.raises(UnsafeXml, match="DTD"):
        parse_xml(bomb)
    result = api.parse(httpx.Response(200, content=bomb), 1, 20, "xml")
    assert isinstance(result, PageError) and "DTD" in result.reason


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_dtd_is_refused_in_any_encoding(encoding: str) -> None:
    """A byte search for "<!DOCTYPE" misses it in UTF-16: the parser itself must refuse."""
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        '<!DOCTYPE r [<!ENTITY a "' + "x" * 100 + '"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<response><code>0</code><contacts>&b;</contacts></response>"
    )
    bomb = text.encode(encoding)
    assert b"<!DOCTYPE" not in bomb
    # UTF-16 with its byte order mark is read, and its DTD refused; encodings expat cannot
    # read are refused as unreadable: never expanded, never a crash
    why = "DTD" if encoding == "utf-16" else "XML"
    with pytest.raises(UnsafeXml, match=why):
        parse_xml(bomb)
    result = api.parse(httpx.Response(200, content=bomb), 1, 20, "xml")
    assert isinstance(result, PageError) and why in result.reason
