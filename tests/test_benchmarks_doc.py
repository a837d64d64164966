"""Every measured figure in docs/benchmarks.md names the script that wrote it.

Issue 19: figures on that page had drifted from what reran (an onnxruntime
speed-up of 6.6x that was 2x on a quiet machine, a synthtext-mini generation
time of "about 10 s"), and nothing said which command had produced them. The
page's convention, checked here:

- A **provenance line** is a block-quote paragraph of four fields::

      > **Written by** `python benchmarks/bench_x.py --opt ...` ·
      > **machine** 2-core AMD EPYC (KVM guest), no GPU ·
      > **date** 2026-12-07 · **noise** spread over 3 runs: 5.1-5.9 s

  ``Written by`` names at least one script under ``benchmarks/`` that exists
  and parses; ``date`` holds an ISO date; ``machine`` and ``noise`` are not
  empty (for exact figures such as parameter counts the noise says so).
- A provenance line covers the blocks after it, up to the next heading (of
  any level) or the next provenance line.
- Every block (paragraph, table, list, code block) that states a measured
  figure -- a number with a unit of time, speed, size or share (``s``,
  ``ms``, ``min``, ``img/s``, ``MB``, ``GiB``, ``%``), a ratio (``1.43x``),
  a parameter or FLOP count (``25.41M``, ``91.5 GFLOPs``) or a score with
  three or four decimals (``0.8870``), or a table whose header names a
  measured quantity (``plain ms``, ``hmean``) over rows of numbers -- must
  be covered by one.

Figures that no script writes belong on another page (or nowhere); the
checker below is also run on small made-up pages, so that it can fail.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "benchmarks.md"

# A number followed by a unit: time, speed, size, share. `x` (a ratio) must
# touch the number (``1.43x``, not ``8 x 224``, not ``640x640``).
_NUM = r"(?<![\w.])\d[\d,]*(?:\.\d+)?"
FIGURE = re.compile(
    rf"{_NUM}\s?(?:ms|µs|us|s|sec|seconds|min|minutes|hours|img/s|images/s|"
    r"KB|kB|MB|GB|MiB|GiB)(?![\w/])"
    rf"|{_NUM}\s?%"
    rf"|{_NUM}x(?!\w)"
    rf"|{_NUM}M(?!\w)"
    rf"|{_NUM}\s?(?:GFLOPs|GMACs)\b"
    r"|(?<![\w.])[01]\.\d{3,4}(?![\d.])"
)
# A table whose header names a measured quantity states figures even where
# its cells are bare numbers (``| plain ms |`` over ``| 2821 |``).
MEASURED_HEADER = re.compile(
    r"\b(?:ms|s|sec|min|img/s|images/s|MB|GB|GFLOPs|GMACs|params|latency|time|ratio|"
    r"hmean|precision|recall|P|R|H|loss|IoU)\b",
    re.IGNORECASE,
)
HEADING = re.compile(r"^#{1,6}\s")
FENCE = re.compile(r"^\s*(```|~~~)")
PROVENANCE = re.compile(r"^>\s*\*\*Written by\*\*")
FIELDS = ("Written by", "machine", "date", "noise")
SCRIPT = re.compile(r"\bbenchmarks/[\w/-]+\.py\b")
ISO_DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")


@dataclass
class Block:
    """A heading, a fenced code block or a run of non-blank lines."""

    line: int
    text: str

    @property
    def is_heading(self) -> bool:
        return bool(HEADING.match(self.text))


@dataclass
class Provenance:
    line: int
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def scripts(self) -> list[str]:
        return SCRIPT.findall(self.fields.get("Written by", ""))


def split_blocks(text: str) -> list[Block]:
    """The page as blocks; a code block stays whole, blank lines and all."""
    blocks: list[Block] = []
    current: list[str] = []
    start = 0
    in_code = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_code:
            current.append(raw)
            if FENCE.match(raw):
                blocks.append(Block(start, "\n".join(current)))
                current, in_code = [], False
            continue
        if FENCE.match(raw) or HEADING.match(raw) or not raw.strip():
            if current:
                blocks.append(Block(start, "\n".join(current)))
                current = []
            if HEADING.match(raw):
                blocks.append(Block(number, raw))
            elif FENCE.match(raw):
                current, start, in_code = [raw], number, True
            continue
        if not current:
            start = number
        current.append(raw)
    if current:
        blocks.append(Block(start, "\n".join(current)))
    return blocks


def parse_provenance(block: Block) -> Provenance | None:
    """The fields of a provenance line, or None for any other block."""
    if not PROVENANCE.match(block.text):
        return None
    flat = " ".join(line.lstrip(">").strip() for line in block.text.splitlines())
    parts = re.split(r"\*\*(Written by|machine|date|noise)\*\*", flat)
    prov = Provenance(block.line)
    for name, value in zip(parts[1::2], parts[2::2], strict=True):
        prov.fields[name] = value.strip(" ·;,")
    return prov


def figures(text: str) -> list[str]:
    """The measured-looking figures in ``text`` (see the module docstring)."""
    return [m.group(0) for m in FIGURE.finditer(text)]


def block_figures(text: str) -> list[str]:
    """The figures a block states: :func:`figures`, plus a table whose
    header names a measured quantity and whose rows hold numbers."""
    found = figures(text)
    lines = [line for line in text.splitlines() if line.strip()]
    if not found and len(lines) > 2 and all(line.lstrip().startswith("|") for line in lines):
        header, rows = lines[0], lines[2:]
        if MEASURED_HEADER.search(header) and any(re.search(r"\d", row) for row in rows):
            found = [f"a table of {header.strip()}"]
    return found


def provenance_problems(prov: Provenance, repo: Path) -> list[str]:
    """What a provenance line lacks, or names that is not there."""
    where = f"line {prov.line}"
    found = [f"{where}: no **{name}** field" for name in FIELDS if not prov.fields.get(name)]
    if prov.fields.get("Written by") and not prov.scripts:
        found.append(f"{where}: **Written by** names no script under benchmarks/")
    for script in prov.scripts:
        path = repo / script
        if not path.is_file():
            found.append(f"{where}: {script} does not exist")
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=script)
        except SyntaxError as exc:
            found.append(f"{where}: {script} does not parse ({exc.msg}, line {exc.lineno})")
            continue
        if not ast.get_docstring(tree):
            found.append(f"{where}: {script} has no docstring saying how to run it")
    if prov.fields.get("date") and not ISO_DATE.search(prov.fields["date"]):
        found.append(f"{where}: **date** {prov.fields['date']!r} holds no YYYY-MM-DD date")
    return found


def page_problems(text: str, repo: Path) -> list[str]:
    """Every figure block without provenance, and every bad provenance line."""
    found: list[str] = []
    covered = False
    for block in split_blocks(text):
        if block.is_heading:
            covered = False
            continue
        prov = parse_provenance(block)
        if prov is not None:
            found += provenance_problems(prov, repo)
            covered = True
            continue
        stated = block_figures(block.text)
        if stated and not covered:
            shown = ", ".join(stated[:4]) + (", ..." if len(stated) > 4 else "")
            found.append(f"line {block.line}: figures ({shown}) with no **Written by** line above")
    return found


def test_every_figure_in_benchmarks_md_names_its_script() -> None:
    bad = page_problems(PAGE.read_text(encoding="utf-8"), REPO)
    assert not bad, "docs/benchmarks.md:\n" + "\n".join(bad)


def test_benchmarks_md_has_provenance_for_its_scripts() -> None:
    """The page does name scripts (the check above is not vacuous)."""
    blocks = split_blocks(PAGE.read_text(encoding="utf-8"))
    named = {s for b in blocks if (p := parse_provenance(b)) for s in p.scripts}
    assert len(named) >= 5, named
    assert all((REPO / s).is_file() for s in named)


# -- the checker on made-up pages ------------------------------------------

GOOD_LINE = (
    "> **Written by** `python benchmarks/bench_x.py --runs 3` · **machine** 2-core CPU, "
    "no GPU · **date** 2026-12-07 · **noise** 3 runs, 5.1-5.9 s"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "bench_x.py").write_text('"""Time x."""\n')
    (tmp_path / "benchmarks" / "broken.py").write_text('"""Broken."""\ndef f(:\n')
    return tmp_path


def test_a_covered_page_passes(repo: Path) -> None:
    page = f"# B\n\n## x\n\n{GOOD_LINE}\n\nIt takes **5.5 s**.\n\n| a | b |\n|---|---|\n| 1.43x | 0.8870 |\n"
    assert page_problems(page, repo) == []


def test_a_planted_block_without_provenance_fails(repo: Path) -> None:
    page = (
        f"# B\n\n## x\n\n{GOOD_LINE}\n\nIt takes 5.5 s.\n\n"
        "## y\n\nNo figure here, only issue 5 and torch 2.14.1.\n\n"
        "A hand-timed claim: about 40 s.\n"
    )
    bad = page_problems(page, repo)
    assert len(bad) == 1 and "40 s" in bad[0] and "line 13" in bad[0], bad


def test_provenance_does_not_reach_past_a_heading(repo: Path) -> None:
    page = f"## x\n\n{GOOD_LINE}\n\n5.5 s\n\n### x.1\n\n| t |\n|---|\n| 12 ms |\n"
    assert ["12 ms" in b for b in page_problems(page, repo)] == [True]


def test_a_code_block_is_one_block_and_is_checked(repo: Path) -> None:
    page = "## x\n\n```bash\ntcmbench evaluate --limit 30\n\n# 191 s of inference\n```\n"
    blocks = split_blocks(page)
    assert [b.line for b in blocks] == [1, 3]
    assert "191 s" in page_problems(page, repo)[0]


def test_a_table_of_bare_numbers_under_a_measured_header_needs_provenance(repo: Path) -> None:
    timed = "## x\n\n| model | plain ms |\n|---|---|\n| DBNet | 2821 |\n"
    assert "plain ms" in page_problems(timed, repo)[0]
    sizes = "## x\n\n| dataset | typical image |\n|---|---|\n| IC15 | 1280 x 720 |\n"
    assert page_problems(sizes, repo) == []


@pytest.mark.parametrize(
    ("line", "wanted"),
    [
        (GOOD_LINE.replace("bench_x.py", "bench_gone.py"), "bench_gone.py does not exist"),
        (GOOD_LINE.replace("bench_x.py", "broken.py"), "does not parse"),
        (GOOD_LINE.replace("benchmarks/bench_x.py", "tcmbench bench"), "names no script"),
        (GOOD_LINE.replace("2026-12-07", "today"), "holds no YYYY-MM-DD"),
        (GOOD_LINE.replace(" · **noise** 3 runs, 5.1-5.9 s", ""), "no **noise** field"),
        (GOOD_LINE.replace("**machine** 2-core CPU, no GPU · ", ""), "no **machine** field"),
    ],
)
def test_a_bad_provenance_line_fails(repo: Path, line: str, wanted: str) -> None:
    bad = page_problems(f"## x\n\n{line}\n\n5.5 s\n", repo)
    assert any(wanted in b for b in bad), bad


def test_a_provenance_line_may_wrap(repo: Path) -> None:
    wrapped = GOOD_LINE.replace(" · **date**", "\n> · **date**")
    prov = parse_provenance(split_blocks(wrapped)[0])
    assert prov is not None
    assert prov.fields["date"] == "2026-12-07" and prov.scripts == ["benchmarks/bench_x.py"]


@pytest.mark.parametrize(
    "text",
    ["5.5 s", "168 ms", "(5.8 min)", "16.21 img/s", "38 MB", "1 GiB", "96%", "99 %"]
    + ["**1.43x**", "2x", "25.41M", "91.5 GFLOPs", "H 0.8870", "P 0.1911,", "0.029 s"],
)
def test_figures_are_recognised(text: str) -> None:
    assert figures(text), text


@pytest.mark.parametrize(
    "text",
    ["640x640", "torch 2.14.1", "issue 5", "3x3 conv", "8 x 224-px crops", "--runs 11"]
    + ["IMG_1846", "sigmoid(0) = 0.5", "2026-12-07", "x0.45-0.9", "seed 0"],
)
def test_non_figures_are_not(text: str) -> None:
    assert figures(text) == [], text
