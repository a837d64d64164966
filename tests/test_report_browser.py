"""The evaluation report in a real headless browser (Chromium via Playwright).

Checks what only a browser can: the page renders from file:// with no
network, every <img> decodes (naturalWidth > 0), the plots are there, and
a click on the error-count header sorts the per-image table, a click on
any row (not only the worst images') opens that image drawn in the page's
viewer, with no console error, also for a hostile sample id. The checker
is shown to catch a broken thumbnail and a corrupt plot, so a passing run
means something.

Needs Debian's Chromium (/usr/bin/chromium; no browser download) and the
``playwright`` package (in the test extra); skips with a reason otherwise.
Environment:

* ``TCMBENCH_REPORT_DIR``: also check this report folder (e.g. one written
  by ``tcmbench evaluate --report``);
* ``TCMBENCH_REPORT_SCREENSHOT``: where to save the screenshot of that
  report (default: the test's temporary folder; docs/report-screenshot.png
  is made this way, see docs/evaluate.md);
* ``TCMBENCH_VIEWER_SCREENSHOT``: where to save a screenshot of the page
  with a drawn image open in the viewer (of TCMBENCH_REPORT_DIR when set,
  else of the scene).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_scene import HEIGHT, N_IMAGES, WIDTH, expected_errors, write_scene_report

from tcmbench.report.drawing import COLOURS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_MAX_BYTES = 400_000

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} not found (install Debian's chromium: apt-get install -y chromium)",
        allow_module_level=True,
    )
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
pytest.importorskip("matplotlib", reason="the report extra (matplotlib) is not installed")

from playwright.sync_api import sync_playwright

# The page's own view of its images: src, decoded width, class.
IMAGES_JS = """Array.from(document.images).map(function (i) {
  return {src: i.getAttribute('src'), width: i.naturalWidth, complete: i.complete,
          plot: i.classList.contains('plot')};
})"""
COLUMN_JS = """function (col) {
  return Array.from(document.querySelectorAll('#per-image tbody tr')).map(function (r) {
    return r.cells[col].textContent.trim();
  });
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def scene_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene_report(tmp_path_factory.mktemp("scene"))


def open_report(
    browser: Any, page_path: Path, width: int = 1300, errors: list[str] | None = None
) -> tuple[Any, list[str]]:
    """Load the page from file://; returns it and every URL it requested.
    ``errors`` collects the page's console errors and uncaught exceptions."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    if errors is not None:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(page_path.resolve().as_uri(), wait_until="load")
    return page, requested


def page_problems(browser: Any, page_path: Path) -> list[str]:
    """What is wrong with the rendered page (empty when nothing is)."""
    page, requested = open_report(browser, page_path)
    try:
        problems = []
        if not page.inner_text("h1").startswith("tcmbench evaluation report"):
            problems.append("no title")
        images = page.evaluate(IMAGES_JS)
        for img in images:
            if not img["complete"] or img["width"] <= 0:
                problems.append(f"image did not load: {img['src']}")
        if sum(i["plot"] for i in images) < 3:
            problems.append("fewer than 3 plots")
        if page.locator("#figures tbody tr").count() < 1:
            problems.append("no figures table")
        for url in requested:
            if not url.startswith("file://"):
                problems.append(f"network request: {url}")
        return problems
    finally:
        page.close()


def test_scene_report_renders_offline_with_every_image(browser: Any, scene_report: Path) -> None:
    assert page_problems(browser, scene_report) == []
    page, requested = open_report(browser, scene_report)
    try:
        srcs = [i["src"] for i in page.evaluate(IMAGES_JS)]
        assert sum(s.startswith("thumbs/") for s in srcs) == N_IMAGES - 1
        assert page.locator("#legend").is_visible()
        assert page.locator("#viewer").is_hidden()  # opens on a click only
        assert "NOT OFFICIAL" in page.inner_text("#figures")
        assert len(requested) == len(srcs) + 1  # the page and its images, nothing else
    finally:
        page.close()


def test_clicking_the_error_header_sorts_the_table(browser: Any, scene_report: Path) -> None:
    page, _ = open_report(browser, scene_report)
    try:
        header = page.locator("#errors-header")
        col = page.evaluate(
            "Array.from(document.querySelectorAll('#per-image thead th')).findIndex("
            "function (h) { return h.id === 'errors-header'; })"
        )

        def ids() -> list[str]:
            return page.evaluate(COLUMN_JS, 1)

        def errors() -> list[int]:
            return [int(v) for v in page.evaluate(COLUMN_JS, col)]

        assert errors() == [expected_errors(k) for k in range(N_IMAGES)]  # dataset order
        header.click()
        assert header.get_attribute("aria-sort") == "descending"
        assert errors() == sorted(errors(), reverse=True) == [6, 4, 4, 2, 2, 0]
        # ties keep the dataset order
        assert ids() == ["img_6", "img_4", "img_5", "img_2", "img_3", "img_1"]
        header.click()
        assert header.get_attribute("aria-sort") == "ascending"
        assert ids() == [f"img_{k + 1}" for k in range(N_IMAGES)]
        # another column takes over the sort
        page.locator("#per-image").get_by_role("columnheader", name="FN", exact=True).click()
        assert header.get_attribute("aria-sort") is None
        assert ids()[:3] == ["img_2", "img_4", "img_6"]  # one miss each, dataset order
    finally:
        page.close()


@pytest.mark.parametrize("breakage", ["missing thumbnail", "corrupt plot", "wrong src"])
def test_the_check_catches_an_image_that_does_not_load(
    browser: Any, scene_report: Path, tmp_path: Path, breakage: str
) -> None:
    """Break one image of a copy of the report: the check must say which."""
    copy = tmp_path / "copy"
    shutil.copytree(scene_report.parent, copy)
    if breakage == "missing thumbnail":
        culprit = re.findall(
            r"<figure id='thumb-0'><a href='([^']+)'", (copy / "index.html").read_text()
        )[0]
        (copy / culprit).unlink()
    elif breakage == "corrupt plot":
        (copy / "plots" / "pr_curve.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
        culprit = "plots/pr_curve.png"
    else:
        html = (copy / "index.html").read_text()
        (copy / "index.html").write_text(html.replace("plots/thresholds.png", "plots/nope.png"))
        culprit = "plots/nope.png"
    problems = page_problems(browser, copy / "index.html")
    assert problems == [f"image did not load: {culprit}"]


VIEWER_JS = """function () {
  var img = document.getElementById('viewer-img');
  return img && {src: img.getAttribute('src'), width: img.naturalWidth, height: img.naturalHeight,
                 complete: img.complete};
}"""


def row_of(page: Any, sample_id: str) -> Any:
    return page.locator("#per-image tbody tr").filter(
        has=page.locator("a.open").get_by_text(sample_id, exact=True)
    )


def colours_seen(png: bytes, keys: list[str], tolerance: int = 40) -> dict[str, int]:
    """How many pixels of a screenshot are within ``tolerance`` (per
    channel) of each outcome colour (JPEG blurs a line's colour a little)."""
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return {
        k: int((np.abs(rgb - np.array(COLOURS[k])).max(axis=2) <= tolerance).sum()) for k in keys
    }


def wait_for_viewer(page: Any, src: str) -> dict[str, Any]:
    """The viewer's image once ``src`` has loaded in it."""
    page.wait_for_function(
        "function (src) { var i = document.getElementById('viewer-img');"
        " return i && i.getAttribute('src') === src && i.complete && i.naturalWidth > 0; }",
        arg=src,
    )
    return page.evaluate(VIEWER_JS)


def open_in_viewer(page: Any, sample_id: str, cell: int = 4) -> dict[str, Any]:
    """Click a cell of the row of ``sample_id`` (not its link); returns the
    viewer's image once it has loaded."""
    row = row_of(page, sample_id)
    src = row.locator("a.open").get_attribute("href")
    row.locator("td").nth(cell).click()
    return wait_for_viewer(page, src)


def test_any_row_opens_its_image_drawn(browser: Any, tmp_path: Path) -> None:
    """With two worst images only, img_2 (one FP, one miss) and img_1 (no
    error) are drawn in no gallery: a click on their rows shows them drawn."""
    page_path = write_scene_report(tmp_path, worst=2)
    errors: list[str] = []
    page, requested = open_report(browser, page_path, errors=errors)
    try:
        gallery = [i["src"] for i in page.evaluate(IMAGES_JS) if not i["plot"]]
        assert len(gallery) == 2 and page.evaluate(VIEWER_JS) is None  # nothing else loaded
        shown = open_in_viewer(page, "img_2")
        assert shown["src"] not in gallery and (page_path.parent / shown["src"]).is_file()
        assert (shown["width"], shown["height"]) == (WIDTH, HEIGHT)  # never enlarged
        assert page.locator("#viewer").is_visible()
        assert page.inner_text("#viewer-caption").startswith("img_2: 2 errors (1 FP, 1 FN)")
        # the miss, the false positive and the true positive, each in its colour (the
        # found GT lies under its detection, 1 px away: not checked)
        seen = colours_seen(page.locator("#viewer-img").screenshot(), ["gt_fn", "det_tp", "det_fp"])
        assert all(n >= 20 for n in seen.values()), seen
        # the arrow keys follow the table's order; Escape closes
        page.keyboard.press("ArrowRight")
        nxt = wait_for_viewer(page, row_of(page, "img_3").locator("a.open").get_attribute("href"))
        assert page.inner_text("#viewer-caption").startswith("img_3: 2 errors (2 FP, 0 FN)")
        assert nxt["src"] != shown["src"]
        page.keyboard.press("Escape")
        assert page.locator("#viewer").is_hidden()
        perfect = open_in_viewer(page, "img_1", cell=0)
        assert perfect["src"] not in (shown["src"], nxt["src"])
        seen = colours_seen(page.locator("#viewer-img").screenshot(), ["gt_fn", "det_fp"])
        assert seen == {"gt_fn": 0, "det_fp": 0}  # the check can fail: no error, no error colour
        page.keyboard.press("Escape")
        assert page.locator("#viewer").is_hidden()
        assert errors == []
        assert all(u.startswith("file://") for u in requested)
    finally:
        page.close()


def test_a_hostile_sample_id_is_shown_as_text(browser: Any, tmp_path: Path) -> None:
    hostile = "<img src=x onerror=alert(1)>'\"&amp;"
    page_path = write_scene_report(tmp_path, worst=0, rename={"img_3": hostile})
    errors: list[str] = []
    page, _ = open_report(browser, page_path, errors=errors)
    try:
        shown = open_in_viewer(page, hostile)
        assert shown["width"] == WIDTH
        assert page.inner_text("#viewer-caption").startswith(hostile + ": 2 errors")
        assert page.locator("#viewer img").count() == 1 and errors == []
    finally:
        page.close()


def save_screenshot(browser: Any, page_path: Path, out: Path) -> int:
    """A screenshot of the report's top (figures, plots, the worst images),
    shrunk and palette-quantised to stay under SCREENSHOT_MAX_BYTES."""
    from PIL import Image

    page, _ = open_report(browser, page_path)
    try:
        worst = page.locator("#worst figure")
        bottom = 1400
        if worst.count():
            box = worst.nth(min(worst.count(), 6) - 1).bounding_box()
            bottom = int(box["y"] + box["height"] + 10)
        raw = page.screenshot(
            clip={"x": 0, "y": 0, "width": 1300, "height": bottom}, full_page=True
        )
    finally:
        page.close()
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    for width in (1000, 900, 800, 700, 600):
        small = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        buf = io.BytesIO()
        small.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            buf, format="PNG", optimize=True
        )
        if buf.tell() < SCREENSHOT_MAX_BYTES:
            break
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    return buf.tell()


def save_viewer_screenshot(browser: Any, page_path: Path, out: Path, sample_id: str) -> None:
    """The page with ``sample_id``'s drawn image open in the viewer."""
    page, _ = open_report(browser, page_path)
    try:
        page.evaluate("document.getElementById('per-image').scrollIntoView()")
        open_in_viewer(page, sample_id)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
    finally:
        page.close()


def test_screenshot(browser: Any, scene_report: Path, tmp_path: Path) -> None:
    """The screenshot of TCMBENCH_REPORT_DIR when set, else of the scene."""
    given = os.environ.get("TCMBENCH_REPORT_DIR")
    page_path = Path(given) / "index.html" if given else scene_report
    if given:
        assert page_problems(browser, page_path) == []
    out = Path(os.environ.get("TCMBENCH_REPORT_SCREENSHOT") or tmp_path / "report-screenshot.png")
    size = save_screenshot(browser, page_path, out)
    assert 0 < size < SCREENSHOT_MAX_BYTES and out.stat().st_size == size
    viewer_out = os.environ.get("TCMBENCH_VIEWER_SCREENSHOT")
    if viewer_out:
        doc = json.loads((page_path.parent / "report.json").read_text())
        # the first image in dataset order that is not among the worst (one with errors)
        others = [sid for sid in doc["per_image"] if sid not in doc["worst"]]
        wrong = [sid for sid in others if doc["per_image"][sid]["fp"] + doc["per_image"][sid]["fn"]]
        save_viewer_screenshot(browser, page_path, Path(viewer_out), (wrong or others)[0])
