"""docs/security.md names the test that proves each defence: every one it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "security.md"
# `tests/test_x.py`, `tests/test_x.py::test_name` and, after one of those, `::test_name`
CITATION = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?[^`]*`")


def cited_tests(text: str) -> list[tuple[str, str | None]]:
    """(file, test name or None) for every test citation, in order."""
    found: list[tuple[str, str | None]] = []
    current: str | None = None
    for line in text.splitlines():
        current = None  # a bare `::name` refers to the last file named on the same line
        for match in CITATION.finditer(line):
            path, name = match.groups()
            if path:
                current = path
            if path or (name and current):
                found.append((path or current, name))  # type: ignore[arg-type]
    return found


def test_every_cited_test_exists():
    citations = cited_tests(DOC.read_text())
    assert len(citations) > 40
    missing = []
    for path, name in citations:
        source = REPO / path
        if not source.is_file():
            missing.append(path)
        elif name and not re.search(rf"^(async )?def {name}\b", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"


def test_a_wrong_citation_is_caught():
    text = "| x | y | `tests/test_security_doc.py::test_every_cited_test_exists`, `::nope` |"
    assert cited_tests(text) == [
        ("tests/test_security_doc.py", "test_every_cited_test_exists"),
        ("tests/test_security_doc.py", "nope"),
    ]
