"""The report page: one HTML file, inline CSS and a few lines of inline JS.

Nothing is fetched from a network (no CDN, fonts or scripts): the page must
open on an air-gapped machine, and a report that needs the internet to be
read is a report that stops being readable. Images are relative links into
the report folder. Every string that comes from data (ids, paths, settings)
is escaped, and the script reads data only from attributes and writes it
only as text (``textContent``), never as markup.

Every row of the per-image table links to its drawn image
(``thumbs/NNNN.jpg``, see :mod:`tcmbench.report.build`). A click on a row
opens it in a viewer on the page (arrow keys: the previous / next row in
the table's current order; Escape closes); the image is fetched only
then, so a page of thousands of rows loads as fast as one of ten. Without
JavaScript the link opens the JPEG itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from typing import Any

from tcmbench.eval.result import Result
from tcmbench.report.breakdown import Breakdown
from tcmbench.report.curve import Curve
from tcmbench.report.drawing import COLOURS, LEGEND
from tcmbench.report.outcomes import ImageOutcome

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:12px 20px;
max-width:1400px;color:#222;background:#fff}
h1{font-size:20px;margin:4px 0 10px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.top{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.figures td.v{font-weight:600;font-size:16px}
tr.unofficial td{color:#8a3b00;background:#fff4ec}
.badge{display:inline-block;font-size:11px;padding:1px 5px;border-radius:3px;margin-left:4px}
.official{background:#e3f3e7;color:#135c24}.notofficial{background:#d55e00;color:#fff}
.setup th{color:#555;font-weight:500;white-space:nowrap;vertical-align:top}
.setup code{font-size:12px;word-break:break-all}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}
.plots img{max-width:100%;border:1px solid #eee}
figcaption{font-size:12px;color:#555;max-width:520px}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:6px 0 10px;font-size:13px}
.sw{display:inline-block;width:22px;height:10px;border:2px solid;margin-right:5px;vertical-align:middle}
.thumbs{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.thumbs figure{margin:0;border:1px solid #ddd;padding:4px}
.thumbs img{width:100%;height:auto;display:block}
.thumbs figcaption{max-width:none}.err{color:#c00;font-weight:600}
table.sortable th{cursor:pointer;user-select:none;background:#f6f6f6;position:sticky;top:0}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
.bar{display:inline-block;height:9px;background:#e69f00;vertical-align:middle}
.note{color:#555;font-size:12px;max-width:1000px}
#per-image tbody tr{cursor:pointer}#per-image tbody tr:hover{background:#f3f7ff}
#per-image tbody tr.current{background:#e3ecff}
#viewer{position:fixed;inset:0;background:rgba(0,0,0,.55);display:flex;align-items:center;
justify-content:center;z-index:10}#viewer[hidden]{display:none}
#viewer .vbox{background:#fff;padding:8px 12px;border-radius:4px;max-width:96vw;max-height:96vh;
overflow:auto}
#viewer .vbar{display:flex;gap:12px;align-items:center;justify-content:space-between}
#viewer .vbar b{word-break:break-all}#viewer button{font-size:16px;min-width:32px}
#viewer .legend{max-width:760px}
#viewer-frame img{display:block;max-width:92vw;max-height:78vh;width:auto;height:auto}
"""

# Sorting: a click on a header sorts by that column, numbers from the
# largest first, a second click reverses; ties keep the dataset order.
JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var num = th.dataset.type === 'num';
      var cur = th.getAttribute('aria-sort');
      var dir = cur ? (cur === 'descending' ? 'ascending' : 'descending')
                    : (num ? 'descending' : 'ascending');
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', dir);
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (r) {
        var c = r.cells[col];
        var v = c.dataset.value !== undefined ? c.dataset.value : c.textContent;
        if (!num) { return v; }
        var f = parseFloat(v);
        return isNaN(f) ? -Infinity : f;
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = num ? (x === y ? 0 : (x < y ? -1 : 1))
                    : String(x).localeCompare(String(y), undefined, {numeric: true});
        if (c === 0) { return a.dataset.order - b.dataset.order; }
        return dir === 'ascending' ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
(function () {
  var viewer = document.getElementById('viewer');
  var body = document.querySelector('#per-image tbody');
  if (!viewer || !body) { return; }
  var frame = document.getElementById('viewer-frame');
  var caption = document.getElementById('viewer-caption');
  var current = null;
  var links = function () {
    return Array.prototype.slice.call(body.querySelectorAll('a.open'));
  };
  var show = function (a) {
    if (current) { current.closest('tr').classList.remove('current'); }
    current = a;
    a.closest('tr').classList.add('current');
    var img = frame.querySelector('img');
    if (!img) {
      img = document.createElement('img');
      img.id = 'viewer-img';
      frame.appendChild(img);
    }
    img.alt = a.dataset.caption;
    img.src = a.getAttribute('href');
    caption.textContent = a.dataset.caption;
    viewer.hidden = false;
    document.getElementById('viewer-close').focus();
  };
  var close = function () {
    viewer.hidden = true;
    if (current) { current.focus(); }
  };
  var step = function (d) {
    var all = links();
    var i = all.indexOf(current);
    if (i >= 0 && i + d >= 0 && i + d < all.length) { show(all[i + d]); }
  };
  body.addEventListener('click', function (e) {
    if (e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
    var tr = e.target.closest('tr');
    var a = tr ? tr.querySelector('a.open') : null;
    if (!a) { return; }
    e.preventDefault();
    show(a);
  });
  document.getElementById('viewer-close').addEventListener('click', close);
  document.getElementById('viewer-prev').addEventListener('click', function () { step(-1); });
  document.getElementById('viewer-next').addEventListener('click', function () { step(1); });
  viewer.addEventListener('click', function (e) { if (e.target === viewer) { close(); } });
  document.addEventListener('keydown', function (e) {
    if (viewer.hidden) { return; }
    if (e.key === 'Escape') { close(); }
    else if (e.key === 'ArrowLeft') { step(-1); }
    else if (e.key === 'ArrowRight') { step(1); }
  });
})();
"""

PR_CAPTION = (
    "Each point re-scores the split with the protocol after dropping detections with score < t. "
    "Only the star (every detection) is the official figure."
)
SWEEP_CAPTION = (
    "Precision, recall and hmean against the score threshold: not official figures, except at "
    "t = {start:g} (every detection)."
)
SWEEP_START = (
    "Detections below the model's box threshold {value:g} ({key} of the run's test settings) "
    "were never produced; the sweep starts there."
)


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "&mdash;"
    if isinstance(x, float):
        return "&mdash;" if math.isnan(x) else f"{x:.{digits}f}"
    return escape(str(x))


def _value(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return escape(str(x), quote=True)


def _setting(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return f"<code>{escape(json.dumps(value, default=str, separators=(', ', ': ')))}</code>"
    return escape(str(value))


def _figures(result: Result) -> str:
    # (figure, precision, recall, hmean, note, unofficial)
    rows: list[tuple[str, float | None, float | None, float | None, str, bool]] = [
        (
            f"official <span class='badge official'>{escape(result.protocol)}</span>",
            result.precision,
            result.recall,
            result.hmean,
            "the protocol's official rules, every submitted detection",
            False,
        )
    ]
    if result.tiou_hmean is not None:
        rows.append(
            (
                "TIoU",
                result.tiou_precision,
                result.tiou_recall,
                result.tiou_hmean,
                "tightness-aware figures of the same matches",
                False,
            )
        )
    sweep = result.sweep or {}
    if sweep.get("best_hmean") is not None:
        rows.append(
            (
                "best-threshold sweep <span class='badge notofficial'>NOT OFFICIAL</span>",
                sweep.get("best_precision"),
                sweep.get("best_recall"),
                sweep.get("best_hmean"),
                f"score >= {sweep.get('best_threshold')}: {escape(str(sweep.get('label', '')))}",
                True,
            )
        )
    body = "".join(
        f"<tr{' class=unofficial' if unofficial else ''}><td>{name}</td>"
        f"<td class='n v'>{_fmt(p)}</td><td class='n v'>{_fmt(r)}</td>"
        f"<td class='n v'>{_fmt(h)}</td><td class=note>{note}</td></tr>"
        for name, p, r, h, note, unofficial in rows
    )
    ap = f"<p class=note>AP: {_fmt(result.ap)}</p>" if result.ap is not None else ""
    return (
        "<table class=figures id=figures><thead><tr><th>figure</th><th class=n>precision</th>"
        "<th class=n>recall</th><th class=n>hmean</th><th></th></tr></thead>"
        f"<tbody>{body}</tbody></table>{ap}"
    )


def _setup(result: Result, meta: Mapping[str, Any], outcomes: Mapping[str, ImageOutcome]) -> str:
    scored = [o for o in outcomes.values() if o.scored]
    counts = (
        f"{sum(o.num_gt_care for o in scored)} care GT, {sum(o.num_det_care for o in scored)} "
        f"care detections: {sum(o.tp for o in scored)} GT found, "
        f"{sum(o.fp for o in scored)} false positives, {sum(o.fn for o in scored)} misses"
    )
    rows = [(k, v) for k, v in meta.items() if v is not None]
    rows += [("protocol", result.protocol), ("protocol thresholds", result.params)]
    rows.append(("outcomes (counted)", counts))
    rows.append(("report written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")))
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{_setting(v)}</td></tr>" for k, v in rows)
    return f"<table class=setup id=setup>{body}</table>"


def _plots(plot_files: Mapping[str, str], curve: Curve | None) -> str:
    items = []
    if "pr" in plot_files:
        items.append(
            (
                plot_files["pr"],
                "precision-recall curve",
                PR_CAPTION,
            )
        )
    start = curve.thresholds[0] if curve is not None and curve.thresholds else 0.0
    if "thresholds" in plot_files:
        items.append(
            (
                plot_files["thresholds"],
                "threshold sweep",
                SWEEP_CAPTION.format(start=start),
            )
        )
    out = "".join(
        f"<figure><img src='{escape(src, quote=True)}' alt='{escape(alt, quote=True)}' "
        f"class=plot><figcaption>{escape(cap)}</figcaption></figure>"
        for src, alt, cap in items
    )
    if curve is None:
        out += "<p class=note>No threshold curve: the detections carry no scores.</p>"
    lead = ""
    if curve is not None and curve.model_threshold is not None:
        key, value = curve.model_threshold
        lead = (
            f"<p class=note id=sweep-start>{escape(SWEEP_START.format(key=key, value=value))}</p>"
        )
    return f"{lead}<div class=plots id=plots>{out}</div>"


def _names(parts: Sequence[Breakdown]) -> str:
    """'size', 'size and curvature', 'size, orientation and curvature'."""
    names = [p.name for p in parts]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _breakdowns(
    parts: Sequence[Breakdown], plot_files: Mapping[str, str], left_out: Sequence[str] = ()
) -> str:
    img = ""
    if "breakdown" in plot_files:
        img = (
            f"<div class=plots><figure><img src='{escape(plot_files['breakdown'], quote=True)}' "
            f"alt='{escape('recall by ' + _names(parts), quote=True)}' class=plot></figure></div>"
        )
    tables = []
    for part in parts:
        rows = "".join(
            f"<tr><td>{escape(b.label)}</td><td class=n>{b.gt}</td><td class=n>{b.matched}</td>"
            f"<td class=n>{_fmt(b.recall, 3)}</td><td><span class=bar style='width:"
            f"{0 if b.recall is None else round(120 * b.recall)}px'></span></td></tr>"
            for b in part.bins
        )
        tables.append(
            f"<div><h3>{escape(part.name)}</h3><p class=note>{escape(part.description)}</p>"
            "<table class=breakdown><thead><tr><th>bin</th><th class=n>care GT</th>"
            f"<th class=n>found</th><th class=n>recall</th><th></th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )
    note = (
        "<p class=note>Recall per bin counts found care GTs over care GTs (any match kind); "
        "DetEval's partial credits are not in it. The official recall is the one above.</p>"
    )
    if left_out:
        lines = "<br>".join(escape(line) for line in left_out)
        note += f"<p class=note id=left-out>{lines}</p>"
    return f"{img}<div class=top id=breakdowns>{''.join(tables)}</div>{note}"


def _legend(html_id: str = "legend") -> str:
    items = "".join(
        f"<span><span class=sw style='border-color:rgb{COLOURS[k]};"
        f"background:rgba{(*COLOURS[k], 0.25) if k in ('gt_fn', 'det_fp') else (255, 255, 255, 0)}'>"
        f"</span>{escape(text)}</span>"
        for k, text in LEGEND.items()
    )
    return f"<div class=legend id={html_id}>{items}</div>"


def _caption(o: ImageOutcome) -> str:
    """One line about an image, as plain text (escaped where it is used)."""
    if not o.scored:
        return f"{o.sample_id}: not scored by the protocol"
    return (
        f"{o.sample_id}: {o.errors} error{'' if o.errors == 1 else 's'} ({o.fp} FP, {o.fn} FN); "
        f"{o.tp}/{o.num_gt_care} care GT found"
    )


def _thumbs(thumbs: Sequence[tuple[ImageOutcome, str]]) -> str:
    more = "<p class=note>Click a row of the per-image table below to open any image drawn.</p>"
    if not thumbs:
        return f"<p class=note>No image has a false positive or a miss.</p>{more}"
    figs = "".join(
        f"<figure id='thumb-{k}'><a href='{escape(src, quote=True)}'>"
        f"<img src='{escape(src, quote=True)}' alt='{escape(o.sample_id, quote=True)}' "
        "loading=eager></a>"
        f"<figcaption><b>{escape(o.sample_id)}</b>: <span class=err>{o.errors} error{'' if o.errors == 1 else 's'}</span> "
        f"({o.fp} FP, {o.fn} FN); {o.tp}/{o.num_gt_care} care GT found</figcaption></figure>"
        for k, (o, src) in enumerate(thumbs)
    )
    return f"{_legend()}<div class=thumbs id=worst>{figs}</div>{more}"


def _per_image(outcomes: Mapping[str, ImageOutcome], drawn: Mapping[str, str]) -> str:
    heads = [
        ("#", "num"),
        ("image", "text"),
        ("care GT", "num"),
        ("care det", "num"),
        ("found", "num"),
        ("FP", "num"),
        ("FN", "num"),
        ("errors (FP+FN)", "num"),
        ("precision", "num"),
        ("recall", "num"),
        ("hmean", "num"),
    ]
    head = "".join(
        f"<th data-type={t}{' class=n' if t == 'num' else ''}"
        f"{' id=errors-header' if name.startswith('errors') else ''}>{escape(name)}</th>"
        for name, t in heads
    )
    rows = []
    for i, (sid, o) in enumerate(outcomes.items()):
        e = o.entry
        name = escape(sid)
        if sid in drawn:
            name = (
                f"<a class=open href='{escape(drawn[sid], quote=True)}' "
                f"data-caption='{escape(_caption(o), quote=True)}'>{name}</a>"
            )
        if not o.scored:
            name += " <span class=note>(not scored)</span>"
        cells = [i + 1, None, o.num_gt_care, o.num_det_care, o.tp, o.fp, o.fn, o.errors]
        nums = "".join(f"<td class=n data-value={_value(c)}>{_fmt(c)}</td>" for c in cells[2:])
        figs = "".join(
            f"<td class=n data-value='{_value(e.get(k))}'>{_fmt(e.get(k), 3)}</td>"
            for k in ("precision", "recall", "hmean")
        )
        rows.append(
            f"<tr data-order={i}><td class=n data-value={i + 1}>{i + 1}</td><td>{name}</td>"
            f"{nums}{figs}</tr>"
        )
    return (
        "<p class=note>Click a row to open its image drawn (arrow keys: previous / next row, "
        "Escape closes). Click a column header to sort (numbers: largest first, click again to "
        "reverse). Per-image precision / recall / hmean are the protocol's own.</p>"
        f"<table class=sortable id=per-image><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _viewer() -> str:
    """The viewer a row click opens; its <img> is made by the script on the
    first click, so the page holds no image without a source."""
    return (
        "<div id=viewer hidden role=dialog aria-modal=true aria-label='drawn image'>"
        "<div class=vbox><div class=vbar><b id=viewer-caption></b><span>"
        "<button id=viewer-prev title='previous row (left arrow)'>&larr;</button> "
        "<button id=viewer-next title='next row (right arrow)'>&rarr;</button> "
        "<button id=viewer-close title='close (Escape)' aria-label=close>&times;</button>"
        f"</span></div>{_legend('viewer-legend')}<div id=viewer-frame></div></div></div>"
    )


def render(
    *,
    result: Result,
    meta: Mapping[str, Any],
    outcomes: Mapping[str, ImageOutcome],
    parts: Sequence[Breakdown],
    curve: Curve | None,
    plot_files: Mapping[str, str],
    thumbs: Sequence[tuple[ImageOutcome, str]],
    drawn: Mapping[str, str] | None = None,
    left_out: Sequence[str] = (),
) -> str:
    """The whole page as a string. ``drawn`` maps a sample id to its drawn
    image in the folder; ``left_out`` holds one line per breakdown left
    out (:func:`tcmbench.report.breakdown.left_out_reason`)."""
    title = " ".join(str(meta.get(k, "")) for k in ("dataset", "split") if meta.get(k))
    breakdown_title = f"Recall by {_names(parts)}" if parts else "Recall breakdowns"
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>tcmbench report: {escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>tcmbench evaluation report: {escape(title)}</h1>"
        f"<div class=top><div>{_figures(result)}</div><div>{_setup(result, meta, outcomes)}</div>"
        "</div>"
        f"<h2>Precision-recall and threshold sweep</h2>{_plots(plot_files, curve)}"
        f"<h2>Worst images ({len(thumbs)}, by false positives + misses)</h2>{_thumbs(thumbs)}"
        f"<h2>{escape(breakdown_title)}</h2>{_breakdowns(parts, plot_files, left_out)}"
        f"<h2>Per image</h2>{_per_image(outcomes, drawn or {})}{_viewer()}"
        f"<script>{JS}</script></body></html>\n"
    )
