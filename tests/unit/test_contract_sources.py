"""Every vendor sample the contract tests replay lives in the repository and names the vendor
documentation page it was copied from; no test reads anything outside the repository."""

from __future__ import annotations

import re

from tests.conftest import CONTRACTS, ROOT


def test_every_sample_names_the_page_it_was_taken_from() -> None:
    listed = {}
    for line in (CONTRACTS / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and re.match(r"https://", cells[1]):
            listed[cells[0]] = cells[1]
    samples = {p.relative_to(CONTRACTS).as_posix() for p in CONTRACTS.rglob("*") if p.is_file()} - {
        "README.md"
    }
    assert samples == set(listed), samples ^ set(listed)
    vendors = {"zoho": "zoho.com/", "altcraft": "altcraft.com/"}
    for sample, url in listed.items():
        assert vendors[sample.split("/")[0]] in url, (sample, url)


def test_no_test_reads_outside_the_repository() -> None:
    outside = re.compile(r"""(ROOT|parents\[\d\])\.parent|["']\.\./""")
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("*.py")
        if outside.search(p.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders
