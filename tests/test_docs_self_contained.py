"""The docs, the code and the tests speak of mixhouse alone: every rule they cite names Mixpanel's public page
(developer.mixpanel.com, docs.mixpanel.com) or states the behaviour in plain words. They never point at notes
that are not in this repository: numbered sections ("§7.3"), the research files they came from, or numbered
source documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Case-insensitive. "§" alone catches every section citation, with or without a file name before it.
FORBIDDEN = ("§", "reference §", "seed 00", "seeds 0", "real-clients", "peers.md", "mixpanel-api-semantics")
PATTERN = re.compile("|".join(re.escape(word) for word in FORBIDDEN), re.IGNORECASE)


def checked_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "mixhouse").rglob("*.py"))]
    files += sorted((ROOT / "bench").glob("*.py"))
    files += [path for path in sorted((ROOT / "tests").glob("*.py")) if path != Path(__file__).resolve()]
    files += sorted((ROOT / "tests" / "golden").rglob("*.json")) + sorted((ROOT / "tests" / "golden").rglob("*.md"))
    return [path for path in files if path.is_file()]


def offending_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        text = text.replace("\\u00a7", "§").replace("\\u00A7", "§")
    return [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if PATTERN.search(line)
    ]


def test_the_checked_files_exist() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in checked_files()}
    assert "README.md" in names
    assert any(name.startswith("docs/") for name in names)
    assert any(name.startswith("mixhouse/") for name in names)


@pytest.mark.parametrize("word", FORBIDDEN)
def test_pattern_catches(word: str) -> None:
    assert PATTERN.search(f"as {word.upper()} says")


def test_no_citation_of_files_outside_the_repository() -> None:
    offending = [line for path in checked_files() for line in offending_lines(path)]
    assert not offending, "cite Mixpanel's public page or state the rule instead:\n" + "\n".join(offending)
