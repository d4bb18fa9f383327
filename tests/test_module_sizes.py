"""Modules stay small enough to read in one sitting: none of the shipped packages' modules is
over 400 lines, and the median is under 150."""

from __future__ import annotations

import statistics
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("paybot", "paybot_cli", "actions", "voice_bridge", "rasa_plugins", "twilio_sim")
MAX_LINES = 400
MAX_MEDIAN = 150


def module_sizes() -> dict[str, int]:
    """Lines of every module in the shipped packages, by path from the repository root."""
    return {
        path.relative_to(REPO).as_posix(): len(path.read_text().splitlines())
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def too_long(sizes: dict[str, int]) -> dict[str, int]:
    return {path: n for path, n in sizes.items() if n > MAX_LINES}


def test_no_module_is_over_the_limit():
    assert too_long(module_sizes()) == {}


def test_the_median_module_is_small():
    assert statistics.median(module_sizes().values()) < MAX_MEDIAN


def test_a_long_module_is_caught():
    assert too_long({"a.py": MAX_LINES, "b.py": MAX_LINES + 1}) == {"b.py": MAX_LINES + 1}
