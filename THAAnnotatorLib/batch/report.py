"""The build's quality report: one static HTML page (no server, no network), ``report.html``.

Counts, the failures with their reasons, and a table of cases, sortable by clicking a column
header (head diameter, the surface check's drop, the THA planning measurements, each segment's
volume and mean HU, warnings, run time ...), with each case's overview picture (an axial slice
through each head with the masks, Hough circle and boundary points drawn) as thumbnail.
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from .. import __version__
from ..measure.hip import REPORTED
from ..model.files import write_bytes_atomic
from ..result import CLASS_NAMES, SIDES
from ..statistics import SEGMENT_KEYS
from .case import OVERVIEW_FILE, THUMBNAIL_FILE

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; } .meta { color: #666; font-size: 0.9em; }
.counts span { display: inline-block; margin: 0.6em 1.2em 0.6em 0; font-size: 1.1em; }
.counts b { font-size: 1.4em; }
table { border-collapse: collapse; margin-top: 0.6em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.sorted-up::after { content: " \\25B2"; } th.sorted-down::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.failed { color: #b00020; font-weight: 600; } .done { color: #17703a; }
.pending { color: #8a6d00; } .warn { color: #8a4b00; font-size: 0.9em; }
img.thumb { width: 360px; display: block; }
"""

_SORT_SCRIPT = """
document.querySelectorAll('table.cases th').forEach((th, column) => {
  th.addEventListener('click', () => {
    const body = th.closest('table').tBodies[0];
    const up = !th.classList.contains('sorted-up');
    th.closest('tr').querySelectorAll('th').forEach(h => h.classList.remove('sorted-up', 'sorted-down'));
    th.classList.add(up ? 'sorted-up' : 'sorted-down');
    const key = row => row.cells[column].dataset.sort ?? row.cells[column].textContent;
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      const order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return up ? order : -order;
    });
    rows.forEach(row => body.appendChild(row));
  });
});
"""


def write_report(out_dir: str | Path, records: list[dict]) -> Path:
    """Write ``out_dir/report.html`` for the manifest ``records``; returns its path."""
    path = Path(out_dir) / REPORT_FILE
    write_bytes_atomic(path, render_report(records).encode("utf-8"))
    return path


def render_report(records: list[dict]) -> str:
    """The report page for the manifest ``records``, as HTML text."""
    count = {s: sum(r["status"] == s for r in records)
             for s in ("done", "failed", "pending", "duplicate")}
    hips = [r for rec in records for r in rec.get("results", {}).values()]
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>THA Annotator build report</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>THA Annotator build report</h1>",
        f'<div class="meta">{len(records)} scans, written {written}, tha-annotator '
        f"{html.escape(__version__)}. Click a column header to sort.</div>",
        '<div class="counts">',
        f"<span><b>{count['done']}</b> done</span>",
        f'<span class="failed"><b>{count["failed"]}</b> failed</span>',
        f"<span><b>{count['pending']}</b> not run yet</span>",
        *([f"<span><b>{count['duplicate']}</b> duplicate scans (built once)</span>"]
          if count["duplicate"] else []),
        f"<span><b>{sum(h['status'] == 'segmented' for h in hips)}</b> hips segmented</span>",
        f'<span class="warn"><b>{sum(bool(h.get("needs_review")) for h in hips)}</b> marked for '
        "review</span>",
        f"<span><b>{sum(h['status'] == 'metal' for h in hips)}</b> with metal</span>",
        f"<span><b>{sum(h['status'] == 'not_found' for h in hips)}</b> not found</span>",
        "</div>",
    ]
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        parts.append("<h2>Failures</h2><ul>")
        parts += [f"<li><b>{html.escape(r['case'])}</b>: "
                  f"{html.escape('; '.join(r.get('reasons', [])))}</li>" for r in failed]
        parts.append("</ul>")
    header = "".join(f"<th>{name}</th>" for name in (
        "Case", "Status", *(f"{side.capitalize()} head &#8960; (mm)" for side in SIDES),
        "Right &minus; left (mm)",
        *(f"{side.capitalize()} surface drop (HU)" for side in SIDES),
        *(html.escape(f"{side.capitalize()} {heading}") for side in SIDES
          for heading in REPORTED.values()),
        *(f"{side.capitalize()} {CLASS_NAMES[label]} {heading}" for side in SIDES
          for label in SEGMENT_KEYS for heading in ("(ml)", "mean (HU)")),
        "Warnings", "Run time (s)", "Overview"))
    parts.append(f'<h2>Cases</h2><table class="cases"><thead><tr>{header}</tr></thead><tbody>')
    parts += [_case_row(record) for record in records]
    parts += ["</tbody></table>", f"<script>{_SORT_SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def _case_row(record: dict) -> str:
    results = record.get("results", {})
    notes = list(record.get("reasons", [])) + [
        f"{side} hip: {w}" for side, r in results.items() for w in r.get("warnings", [])]
    cells = [f"<td>{html.escape(record['case'])}</td>",
             f'<td class="{html.escape(record["status"])}">{html.escape(record["status"])}</td>']
    diameters = [results.get(side, {}).get("head_diameter_mm") for side in SIDES]
    for diameter in diameters:
        cells.append(_number_cell(diameter))
    # the two femoral heads of one patient rarely differ by more than a millimetre or two: a
    # large difference points at a hip worth checking
    cells.append(_number_cell(None if None in diameters else diameters[0] - diameters[1],
                              signed=True))
    # the surface check's cortex-to-joint-space drop: sorted up, the least certain hips first
    for side in SIDES:
        cells.append(_number_cell(results.get(side, {}).get("surface_drop_hu")))
    # THA planning measurements (measure.hip.REPORTED); empty where not computed
    for side in SIDES:
        measurements = results.get(side, {}).get("measurements") or {}
        cells += [_number_cell(measurements.get(name)) for name in REPORTED]
    # each segment's volume (0 ml when empty) and mean CT value (none when empty): statistics.py
    for side in SIDES:
        statistics = results.get(side, {}).get("statistics") or {}
        for key in SEGMENT_KEYS.values():
            segment = statistics.get(key) or {}
            cells += [_number_cell(segment.get("volume_ml")), _number_cell(segment.get("mean_hu"))]
    cells.append(f'<td class="warn" data-sort="{len(notes)}">'
                 f"{'<br>'.join(html.escape(n) for n in notes)}</td>")
    cells.append(_number_cell(record.get("run_time_s")))
    if record["status"] == "done":
        folder = f"cases/{quote(record['case'])}"
        cells.append(f'<td data-sort="{len(notes)}"><a href="{folder}/{OVERVIEW_FILE}">'
                     f'<img class="thumb" src="{folder}/{THUMBNAIL_FILE}" loading="lazy" '
                     f'alt="overview of {html.escape(record["case"])}"></a></td>')
    else:
        cells.append('<td data-sort="-1"></td>')
    return f'<tr id="case-{html.escape(record["case"])}">{"".join(cells)}</tr>'


def _number_cell(value: float | None, signed: bool = False) -> str:
    """A right-aligned number to one decimal; empty, and sorted first, when there is none. A
    ``signed`` number is shown with its sign and sorted by its size."""
    if value is None:
        return '<td class="num" data-sort="-1"></td>'
    if signed:
        return f'<td class="num" data-sort="{abs(value):.2f}">{value:+.1f}</td>'
    return f'<td class="num">{value:.1f}</td>'
