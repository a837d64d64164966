"""The docs are self-contained: nothing they cite lies outside the repository.

Issue 19: docs/datasets.md and a dataset YAML (printed by ``datasets
show``) cited ``PROTOCOLS.md``, a design note that never shipped. This scans
every page under docs/, README.md and the YAMLs a user reads (dataset
configs, experiment grids) for

- markdown links to relative files: each must resolve;
- design-note names (an upper-case ``NAME.md`` such as ``TCM.md``): each
  must be a file in docs/ or at the repository root;
- paths into the sibling ``../shared`` tree other than ``../shared/data``,
  the optional reference data of the ``realdata`` tests (not documentation).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCANNED = sorted(
    [
        *REPO.glob("docs/**/*.md"),
        REPO / "README.md",
        *REPO.glob("datasets_cfg/*.yaml"),
        *REPO.glob("tcmbench/**/*.yaml"),
    ]
)

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# An upper-case note name standing alone (not DIR/README.md, a placeholder path).
NOTE = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_-]*\.md)\b")
OUTSIDE = re.compile(r"(?:\.\./)+shared/(?!data\b)[\w./-]*|(?<![\w/])shared/design\b[\w./-]*")


def problems(path: Path) -> list[str]:
    """Every reference in ``path`` to something not in the repository."""
    text = path.read_text(encoding="utf-8")
    found: list[str] = []

    def line(pos: int) -> int:
        return text.count("\n", 0, pos) + 1

    for m in LINK.finditer(text):
        target = m.group(1).split("#", 1)[0]
        is_url = re.match(r"[a-z][a-z0-9+.-]*:", target)
        if target and not is_url and not (path.parent / target).exists():
            found.append(f"line {line(m.start())}: link to missing {target}")
    for m in NOTE.finditer(text):
        name = m.group(1)
        if not ((REPO / "docs" / name).exists() or (REPO / name).exists()):
            found.append(f"line {line(m.start())}: {name} is not a file in the repository")
    for m in OUTSIDE.finditer(text):
        found.append(f"line {line(m.start())}: {m.group(0)} lies outside the repository")
    return found


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_cite_only_files_in_the_repository(path: Path) -> None:
    bad = problems(path)
    assert not bad, f"{path.relative_to(REPO)}: " + "; ".join(bad)


def test_the_scan_catches_what_issue_19_found(tmp_path: Path) -> None:
    """The checks above flag the three kinds of reference (so they can fail)."""
    page = tmp_path / "page.md"
    page.write_text(
        "the sweep (PROTOCOLS.md); see [tcm](no-such-page.md) and "
        "../shared/design/TCM.md; data in ../shared/data/README.md is fine\n"
    )
    bad = problems(page)
    assert len(bad) == 3, bad  # PROTOCOLS.md, the link, ../shared/design/TCM.md
    assert not any("shared/data" in b for b in bad)
