"""The README and docs/ name real files: every repository path they cite in backticks exists.

A path is a backticked token that starts with one of the repository's top-level folders (or is a
top-level file such as `Makefile`), optionally followed by `::name` or `:line`. The README's
layout table must also name every top-level package, so the table cannot fall behind the tree.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ROOTS = ("actions", "bench", "bot", "deploy", "docs", "examples", "nlu_data", "paybot",
         "paybot_cli", "rasa_plugins", "tests", "twilio_sim", "voice_bridge", ".ci")
TOKEN = re.compile(r"`([^`\s]+)`")


def cited_paths(text: str) -> list[str]:
    """Repository paths cited in backticks, `::test` and `:123` suffixes removed."""
    paths = []
    for token in TOKEN.findall(text):
        path = re.split(r"::|:(?=\d)", token)[0].rstrip(",.;")
        head = path.split("/", 1)[0]
        top_level_file = path in ("Makefile", "pyproject.toml", "constraints.txt", "README.md")
        if (head in ROOTS and ("/" in path or path == head)) or top_level_file:
            paths.append(path)
    return paths


def is_real(path: str) -> bool:
    if any(ch in path for ch in "*<>{}"):  # a pattern or a placeholder: its folder must exist
        path = re.split(r"[*<>{}]", path)[0].rsplit("/", 1)[0]
    return (REPO / path).exists()


def test_every_path_the_docs_cite_exists():
    missing = {}
    for doc in DOCS:
        gone = [p for p in cited_paths(doc.read_text()) if not is_real(p)]
        if gone:
            missing[doc.name] = sorted(set(gone))
    assert not missing, f"paths named in the docs that are not in the tree: {missing}"


def test_the_readme_layout_table_names_every_package():
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    named = {p.split("/")[0] for p in cited_paths(table)}
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    missing = packages - named
    assert not missing, f"top-level packages missing from the layout table: {missing}"


def test_a_wrong_path_is_caught():
    text = "see `voice_bridge/no_such_module.py` and `tests/test_docs_paths.py::test_x`, `x.y`"
    assert cited_paths(text) == ["voice_bridge/no_such_module.py", "tests/test_docs_paths.py"]
    assert not is_real("voice_bridge/no_such_module.py")
    assert is_real("tests/test_docs_paths.py")
