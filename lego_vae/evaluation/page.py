"""Building blocks of the HTML report pages: style, table sorting, escaping, number formats, embedded pictures."""

from __future__ import annotations

import base64
import html
import io
import math

from PIL import Image

# Face pictures are blown up by a whole number (2x to 4x for small faces) so that one face is about this
# many CSS pixels, nearest-neighbour: every face pixel is a square of the same size, none is invented.
TARGET_FACE_PX = 96
MAX_PIXEL_SCALE = 4
MAX_PICTURE_WIDTH = 1100  # CSS pixels a picture may take in <main> without being squeezed
MISSING = "\u2014"  # em dash

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#222;background:#fafafa;margin:0;line-height:1.45}
main{max-width:1160px;margin:0 auto;padding:1.5rem}
h1{margin:0 0 .2rem}h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.context{color:#666;margin:0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:.25rem .7rem;border-bottom:1px solid #e4e4e4;text-align:left}
td.num,th.num{text-align:right}
.reason{color:#a05a00;font-size:.9em}
table.metrics{font-size:.92em}
table.metrics th,table.metrics td{padding:.15rem .6rem}
table.metrics td:first-child,table.metrics td.num{white-space:nowrap}
table.metrics td.note{color:#555;max-width:40rem;overflow-wrap:anywhere}
table.sortable th{cursor:pointer;user-select:none;background:#f0f0f0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.gallery{display:flex;flex-wrap:wrap;gap:1.2rem;align-items:flex-start}
figure{margin:0;background:#fff;border:1px solid #e4e4e4;padding:.5rem;max-width:100%}
figure img{display:block;max-width:100%;height:auto}
img.pixel{image-rendering:crisp-edges;image-rendering:pixelated}
figcaption{color:#555;font-size:.9em;margin-top:.3rem}
.missing{color:#b00020}
pre{background:#fff;border:1px solid #e4e4e4;padding:.8rem;overflow:auto;font-size:.85em}
"""

# Sorts by a cell's data-sort (numbers for num columns, text otherwise); empty keys sort last both ways.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var num = th.dataset.type === "num", body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (r) { return r.cells[col].dataset.sort; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var d = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt(value: object) -> str:
    """Ints as they are, floats to 4 significant digits (no exponent for large ones), None as a dash."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        text = f"{value:.4g}"
        # 12345.6 s as "1.235e+04" is harder to read than "12346"
        return f"{value:.0f}" if "e+" in text and abs(value) < 1e15 else text
    return str(value)


def pixel_scale(width: int, face_px: int | None) -> int:
    """The whole-number blow-up of a picture of faces face_px wide (None: one face): 1 to 4, and within the page."""
    k = min(MAX_PIXEL_SCALE, max(1, math.ceil(TARGET_FACE_PX / max(1, face_px or width))))
    return max(1, min(k, MAX_PICTURE_WIDTH // max(1, width)))


def figure_html(data: bytes, caption: str, pixel: bool, face_px: int | None = None) -> str:
    """A picture's bytes embedded as a data: URI; pixel pictures blown up by pixel_scale, without blur."""
    with Image.open(io.BytesIO(data)) as im:  # also refuses a file that is not a picture
        w, h = im.size
    mime = "image/gif" if data[:4] == b"GIF8" else "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"
    k = pixel_scale(w, face_px)
    attrs = f' class="pixel" width="{w * k}" height="{h * k}"' if pixel else ""
    src = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    caption = esc(caption)
    return f'<figure><img alt="{caption}"{attrs} src="{src}"><figcaption>{caption}</figcaption></figure>'
